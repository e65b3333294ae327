//! The table (printed and in BENCHMARKS.md) and BENCHMARKS.md itself, both rendered from
//! the results alone, so the file always matches benchmarks/results.json.

use std::fmt::Write as _;

use crate::controller::Variant;
use crate::results::{Results, Scenario};

/// Scenarios in the order they run and are shown.
pub const ORDER: [&str; 7] = [
    "memory",
    "latency",
    "burst",
    "fanout",
    "missed",
    "admission",
    "apiserver",
];

const COLUMNS: [Variant; 3] = [Variant::Reloader, Variant::Kreload, Variant::KreloadW0];

pub fn format_value(value: f64, unit: &str) -> String {
    match unit {
        "ms" if value < 10.0 => format!("{value:.2} ms"),
        "ms" if value < 1000.0 => format!("{value:.0} ms"),
        "ms" => format!("{value:.1} ms"),
        "s" => format!("{value:.2} s"),
        "MiB" => format!("{value:.1} MiB"),
        "/s" => format!("{value:.0}/s"),
        "" if value.fract() == 0.0 => format!("{value:.0}"),
        "" => format!("{value:.2}"),
        other => format!("{value:.0} {other}"),
    }
}

fn scenarios(r: &Results) -> impl Iterator<Item = (&'static str, &Scenario)> {
    ORDER
        .iter()
        .filter_map(|name| r.scenarios.get(*name).map(|s| (*name, s)))
}

/// The figures: one row per metric, one column per controller.
pub fn table(r: &Results) -> String {
    let mut out = String::new();
    let header: Vec<&str> = COLUMNS.iter().map(|v| v.label()).collect();
    let _ = writeln!(out, "| scenario | figure | {} |", header.join(" | "));
    let _ = writeln!(out, "|---|---|{}", "---|".repeat(COLUMNS.len()));
    for (name, s) in scenarios(r) {
        let mut metrics: Vec<&str> = Vec::new();
        for f in &s.figures {
            if !metrics.contains(&f.metric.as_str()) {
                metrics.push(&f.metric);
            }
        }
        for m in metrics {
            let cells: Vec<String> = COLUMNS
                .iter()
                .map(|v| {
                    s.figures
                        .iter()
                        .find(|f| f.metric == m && f.variant == v.key())
                        .map_or_else(|| "–".to_owned(), |f| format_value(f.value, &f.unit))
                })
                .collect();
            let _ = writeln!(out, "| {name} | {m} | {} |", cells.join(" | "));
        }
    }
    out
}

/// CPU seconds and API requests per controller and scenario.
pub fn cost_table(r: &Results) -> String {
    let mut out = String::new();
    let header: Vec<String> = COLUMNS
        .iter()
        .map(|v| format!("{}: CPU s / API requests", v.label()))
        .collect();
    let _ = writeln!(out, "| scenario | {} |", header.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(COLUMNS.len()));
    for (name, s) in scenarios(r) {
        let cells: Vec<String> = COLUMNS
            .iter()
            .map(|v| {
                s.costs.get(v.key()).map_or_else(
                    || "–".to_owned(),
                    |c| format!("{:.1} s / {}", c.cpu_seconds, c.requests.total),
                )
            })
            .collect();
        let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
    }
    out
}

pub fn markdown(r: &Results) -> String {
    let mut out = String::new();
    let m = &r.machine;
    let v = &r.versions;
    let loads: Vec<String> = scenarios(r)
        .map(|(n, s)| format!("{n} {:.2} (max {:.2})", s.load_mean, s.load_max))
        .collect();
    let _ = write!(
        out,
        "# Benchmarks: kreload against Stakater Reloader\n\n\
         Written by `kreload-bench` (`bench/`, see the README's \"Benchmarks\"); every figure \
         below is a measurement of the run described here, also in \
         [`benchmarks/results.json`](benchmarks/results.json).\n\n\
         **Load average (1 min) during the run, mean per scenario:** {}. The machine's other \
         load shows here; figures from a machine with a load well above 0 are noisy, CPU \
         figures and latencies most.\n\n\
         ## Machine and versions\n\n\
         - {} cores ({}), {} GiB RAM, Linux {}\n\
         - kreload {} (release build); {} (SHA-1 {}); Kubernetes {} (etcd + kube-apiserver, \
         no kube-controller-manager, so Deployments create no pods)\n\n\
         ## Command\n\n```sh\n{}\n```\n\n## Figures\n\n{}\n\
         ## Cost: CPU seconds and API requests per scenario\n\n\
         Each controller's utime + stime from /proc over its runs in the scenario (start to \
         stop, settling and the readiness probe included), and the requests the API server's \
         audit log recorded for its user (each controller authenticates with a static token of \
         its own; `apiserver_request_total` has no user or user-agent label, so it cannot tell \
         the controllers apart).\n\n{}\n## Goals of issue 11\n\n{}\n\n\
         ## Where kreload's memory goes\n\n{}\n\n## Notes\n\n{}",
        loads.join(", "),
        m.cores,
        m.cpu_model,
        m.memory_gib,
        m.kernel,
        v.kreload_commit,
        v.reloader,
        &v.reloader_sha1.get(..12).unwrap_or_default(),
        v.kubernetes,
        r.command,
        table(r),
        cost_table(r),
        crate::goals::lines(r).join("\n"),
        memory(r),
        notes(r),
    );
    out
}

/// The heap profile set against the resident memory, from the memory scenario's figures.
fn memory(r: &Results) -> String {
    let g = |m: &str| r.get("memory", m, "kreload");
    let Some(heap) = g("heap peak under heaptrack, population C") else {
        return "No heap profile in this run.".to_owned();
    };
    let rss = g("RSS steady, population C").unwrap_or(f64::NAN);
    let traced = g("RSS steady under heaptrack (glibc malloc), population C").unwrap_or(f64::NAN);
    let mut out = format!(
        "Under heaptrack (kreload built with the `system-allocator` feature, glibc malloc), \
         kreload's heap at its highest held {heap:.1} MiB, against a steady RSS of {rss:.1} MiB \
         with mimalloc and {traced:.1} MiB under heaptrack at the same population: at least \
         {:.1} MiB of that RSS was never live heap. The heap's peak is the start-up list of the \
         workload watch: the top sites in the notes below are serde building whole objects of \
         a list page, under `src/kube/watch.rs` (heaptrack's peak consumers, unmerged \
         backtraces, are in `benchmarks/heaptrack-peaks.txt` after a run; not committed). The rest of the RSS:",
        traced - heap
    );
    let parts = [
        "RSS of it: file-backed (the binary's code)",
        "RSS of it: anonymous",
        "RSS of it: anonymous in transparent huge pages",
    ];
    let known: Vec<String> = parts
        .iter()
        .filter_map(|p| g(p).map(|v| format!("{} {v:.1} MiB", p.trim_start_matches("RSS of it: "))))
        .collect();
    if known.is_empty() {
        out.push_str(" the binary's code and the pages the allocator holds (this run did not record the breakdown).");
    } else {
        let _ = write!(
            out,
            " {} (/proc/PID/status and smaps_rollup).",
            known.join(", ")
        );
    }
    out
}

fn notes(r: &Results) -> String {
    let mut out = String::new();
    for (name, s) in scenarios(r) {
        let _ = writeln!(
            out,
            "### {name}\n\n- ran {} for {:.0} s at scale {} from kreload {}{}; load average \
             at start {:.2}, mean {:.2}, max {:.2}",
            s.started_at,
            s.seconds,
            s.scale,
            s.kreload_commit,
            if s.populated {
                ", with the memory scenario's population in the cluster"
            } else {
                ", on a cluster without the memory scenario's population"
            },
            s.load_start,
            s.load_mean,
            s.load_max
        );
        for n in &s.notes {
            let _ = writeln!(out, "- {n}");
        }
        for (variant, c) in &s.costs {
            let agents: Vec<&str> = c.requests.user_agents.keys().map(String::as_str).collect();
            let verbs: Vec<String> = c
                .requests
                .by_verb
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let _ = writeln!(
                out,
                "- {variant}: requests by verb: {}; user agent: {}",
                verbs.join(", "),
                agents.join(", ")
            );
        }
        out.push('\n');
    }
    out
}
