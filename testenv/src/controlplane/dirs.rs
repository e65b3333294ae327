//! Working directories of the control plane (and of the tests' kreload instances): each
//! records its owner's pid, so directories left by a killed run are swept on the next start.

use std::fs;
use std::io;
use std::path::Path;

pub(super) const DIR_PREFIX: &str = "kreload-controlplane-";
const OWNER_FILE: &str = "owner.pid";

/// A temporary directory named `<prefix>…` that records its owner's pid, after removing
/// the ones whose owners died without cleaning up (see [`sweep_stale`]).
pub fn owned_tempdir(prefix: &str) -> io::Result<tempfile::TempDir> {
    sweep_stale(&std::env::temp_dir(), prefix);
    let dir = tempfile::Builder::new().prefix(prefix).tempdir()?;
    fs::write(dir.path().join(OWNER_FILE), std::process::id().to_string())?;
    Ok(dir)
}

/// Removes `<prefix>…` directories left by processes that died without running their
/// cleanup (SIGKILL, OOM): their owner pid no longer exists. Their children died with them
/// (parent-death signal), so nothing uses the files any more.
fn sweep_stale(tmp: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_ours = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(prefix));
        if !is_ours {
            continue;
        }
        let Ok(pid) = fs::read_to_string(path.join(OWNER_FILE)) else {
            continue; // still being set up, or not ours to judge
        };
        let alive = pid
            .trim()
            .parse::<u32>()
            .map(|pid| Path::new("/proc").join(pid.to_string()).exists())
            .unwrap_or(true);
        if !alive {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_directories_of_dead_owners_are_swept_and_live_ones_kept() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dead = tmp.path().join(format!("{DIR_PREFIX}dead"));
        let live = tmp.path().join(format!("{DIR_PREFIX}live"));
        let young = tmp.path().join(format!("{DIR_PREFIX}young"));
        let other = tmp.path().join("someone-else");
        for d in [&dead, &live, &young, &other] {
            fs::create_dir(d).expect("mkdir");
        }
        // Pids are below 2^22 on Linux; this one cannot exist.
        fs::write(dead.join(OWNER_FILE), "4294967295").expect("write");
        fs::write(live.join(OWNER_FILE), std::process::id().to_string()).expect("write");
        fs::write(other.join(OWNER_FILE), "4294967295").expect("write");
        sweep_stale(tmp.path(), DIR_PREFIX);
        assert!(!dead.exists());
        assert!(live.exists());
        assert!(young.exists(), "no owner file yet: left alone");
        assert!(other.exists(), "not ours");
    }
}
