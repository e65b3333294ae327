//! Reading heaptrack_print's report: the totals, and for each of the top peak consumers the
//! code that asked for the memory: the first frame outside the standard library, and the
//! first frame in kreload's own source. heaptrack cannot demangle Rust's v0 symbols, so
//! frames are named by their source file and line.

use std::path::Path;

use crate::results::Scenario;

pub fn summarise(s: &mut Scenario, text: &str) {
    for line in text.lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("peak heap memory consumption: ")
            && let Some(mib) = size_mib(v.split_whitespace().next().unwrap_or_default())
        {
            s.figure(
                "heap peak under heaptrack, population C",
                "kreload",
                mib,
                "MiB",
            );
        }
        if l.starts_with("peak heap memory consumption")
            || l.starts_with("peak RSS")
            || l.starts_with("total memory leaked")
        {
            s.note(format!("heaptrack: {l}"));
        }
    }
    let root = kreload_testenv::tools::repo_root().display().to_string();
    let mut entries: Vec<(String, Vec<String>)> = Vec::new();
    let mut in_peaks = false;
    for line in text.lines() {
        if line.starts_with("PEAK MEMORY CONSUMERS") {
            in_peaks = true;
        } else if in_peaks && line.starts_with("MOST ") {
            break;
        } else if in_peaks && line.contains("peak memory consumed over") {
            let amount = line.split_whitespace().next().unwrap_or("?").to_owned();
            entries.push((amount, Vec::new()));
        } else if let (true, Some(entry)) = (in_peaks, entries.last_mut())
            && let Some(at) = line.trim().strip_prefix("at ")
        {
            entry.1.push(at.to_owned());
        }
    }
    // The same call site reached by different backtraces is one line, with their sum.
    let mut sites: Vec<(String, f64)> = Vec::new();
    for (amount, frames) in &entries {
        let outside_std = frames.iter().find(|f| !f.starts_with("/rustc/"));
        // Workspace crates' frames carry paths relative to the repository root.
        let own = frames.iter().find(|f| {
            let file = f.rsplit_once(':').map_or(f.as_str(), |(file, _)| file);
            f.starts_with(&root) || (f.starts_with("src/") && Path::new(&root).join(file).is_file())
        });
        let short = |f: &String| {
            let f = f.strip_prefix(&root).unwrap_or(f).trim_start_matches('/');
            // …/index.crates.io-<hash>/<crate>-<version>/src/x.rs:1 → <crate>-<version>/src/x.rs:1
            f.split_once("index.crates.io-")
                .and_then(|(_, rest)| rest.split_once('/'))
                .map_or_else(|| f.to_owned(), |(_, p)| p.to_owned())
        };
        let site = format!(
            "{} (kreload code: {})",
            outside_std.map_or_else(|| "the standard library".to_owned(), short),
            own.map_or_else(|| "none in the backtrace".to_owned(), short)
        );
        let mib = size_mib(amount).unwrap_or(0.0);
        match sites.iter_mut().find(|(s, _)| *s == site) {
            Some(entry) => entry.1 += mib,
            None => sites.push((site, mib)),
        }
    }
    sites.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (site, mib) in sites.iter().take(10) {
        s.note(format!("heap at peak: {mib:.2} MiB allocated from {site}"));
    }
}

/// heaptrack's sizes (`1.59M`, `81.58K`, `405B`; powers of 1024) in MiB.
fn size_mib(v: &str) -> Option<f64> {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = num.parse().ok()?;
    let bytes = match unit {
        "B" => n,
        "K" => n * 1024.0,
        "M" => n * 1024.0 * 1024.0,
        "G" => n * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(bytes / 1024.0 / 1024.0)
}
