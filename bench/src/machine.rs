//! The machine and the versions a run is recorded with.

use std::process::Command;

use crate::results::{Machine, Versions};

pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: f64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    Machine {
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        memory_gib: (mem_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned(),
        cpu_model: cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default(),
    }
}

/// The commit of the tree the benchmark runs from, `-dirty` when it has changes.
pub fn kreload_commit() -> String {
    let root = kreload_testenv::tools::repo_root();
    let git = |args: &[&str]| {
        Command::new("git")
            .current_dir(&root)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]);
    let dirty = !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty();
    if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    }
}

pub fn versions(reloader_path: &str, reloader_sha1: &str, kubernetes: String) -> Versions {
    let name = std::path::Path::new(reloader_path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    // The peer's file name carries its version (reloader-v1.4.21-linux-amd64.gz); the
    // binary has no version flag.
    let reloader = name
        .split('-')
        .find(|p| p.starts_with('v') && p[1..].starts_with(|c: char| c.is_ascii_digit()))
        .map_or_else(|| name.to_owned(), |v| format!("Reloader {v}"));
    Versions {
        kreload_commit: kreload_commit(),
        reloader,
        reloader_sha1: reloader_sha1.to_owned(),
        kubernetes,
    }
}
