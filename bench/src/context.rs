//! What every scenario shares: the control plane, the two binaries, kreload's serving
//! certificate and ports, the working directory (removed at the end, also on failure or
//! Ctrl-C), and the probe objects the controllers are checked against before a measurement.

use std::io::Read as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context as _, Result, bail};
use sha1::Digest as _;

use crate::cluster::Cluster;
use crate::populate::{self, Object};
use kreload::certs::BundlePaths;
use kreload_testenv::controlplane::{free_port, owned_tempdir};

pub const PROBE_NS: &str = "bench-probe";

pub struct Bench {
    // Declared first so the control plane stops before its directory goes.
    pub cluster: Cluster,
    dir: tempfile::TempDir,
    pub kreload_bin: PathBuf,
    pub reloader_bin: PathBuf,
    pub reloader_sha1: String,
    pub serving: BundlePaths,
    pub kreload_ports: (u16, u16),
    pub scale: f64,
    run: AtomicU64,
}

impl Bench {
    pub async fn setup(
        assets: &Path,
        kreload_bin: PathBuf,
        reloader: &Path,
        scale: f64,
    ) -> Result<Self> {
        let dir = owned_tempdir("kreload-bench-").context("creating the working directory")?;
        let (reloader_bin, reloader_sha1) = unpack(reloader, dir.path())?;
        let serving = kreload::certs::write_serving_bundle(
            dir.path(),
            &["localhost".to_owned()],
            &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
        )
        .context("kreload's serving certificate")?;
        let cluster = Cluster::start(assets, dir.path()).await?;
        let bench = Self {
            cluster,
            dir,
            kreload_bin,
            reloader_bin,
            reloader_sha1,
            serving,
            kreload_ports: (free_port()?, free_port()?),
            scale,
            run: AtomicU64::new(0),
        };
        let objects = vec![
            Object::Namespace(PROBE_NS.to_owned()),
            populate::configmap(PROBE_NS, "probe", 16),
            populate::deployment(PROBE_NS, "probe", &["probe"], &[]),
        ];
        for o in objects {
            populate::create_all(&bench.cluster.client, "probe objects", vec![o]).await?;
        }
        Ok(bench)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A number unique within this run (log names, probe values).
    pub fn next_run(&self) -> u64 {
        self.run.fetch_add(1, Ordering::Relaxed)
    }

    /// A fixed-size scenario's size (`base` at scale 1 and above), smaller below scale 1
    /// so a development run is quick.
    pub fn n(&self, base: usize) -> usize {
        ((base as f64 * self.scale.min(1.0)).round() as usize).max(1)
    }
}

/// The Reloader binary to run (a `.gz` is unpacked into `dir`) and its SHA-1.
fn unpack(path: &Path, dir: &Path) -> Result<(PathBuf, String)> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .with_context(|| format!("reading --reloader-bin {}", path.display()))?;
    let bin = if path.extension().is_some_and(|e| e == "gz") {
        let out = dir.join("reloader");
        let file = std::fs::File::create(&out).context("unpacking Reloader")?;
        let status = Command::new("gunzip")
            .arg("-c")
            .arg(path)
            .stdout(file)
            .status()
            .context("running gunzip")?;
        if !status.success() {
            bail!("gunzip -c {} failed ({status})", path.display());
        }
        bytes = std::fs::read(&out).context("reading the unpacked Reloader")?;
        out
    } else {
        path.to_owned()
    };
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))
        .context("making Reloader executable")?;
    Ok((bin, hex::encode(sha1::Sha1::digest(&bytes))))
}

/// Builds kreload's release binary with `features` and returns its path (cargo prints it).
/// `line_tables` adds line tables, so a profiler names the call sites.
pub fn build_kreload(
    root: &Path,
    features: &[&str],
    target_dir: Option<&Path>,
    line_tables: bool,
) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "-p", "kreload", "--bin", "kreload"])
        .arg("--message-format=json-render-diagnostics");
    if !features.is_empty() {
        cmd.arg("--features").arg(features.join(","));
    }
    if line_tables {
        cmd.env("CARGO_PROFILE_RELEASE_DEBUG", "line-tables-only");
    }
    if let Some(dir) = target_dir {
        cmd.arg("--target-dir").arg(dir);
    }
    println!("building kreload ({cmd:?})");
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build")?;
    if !out.status.success() {
        bail!("cargo build of kreload failed ({})", out.status);
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"]["name"] == "kreload")
        .filter_map(|v| v["executable"].as_str().map(PathBuf::from))
        .next_back()
        .context("cargo build printed no kreload executable")
}
