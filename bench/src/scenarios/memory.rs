//! Memory: idle RSS on an empty cluster, then steady and peak RSS at three populations:
//! A (half the Secrets, ConfigMaps and workloads), B (all Secrets and ConfigMaps, half the
//! workloads) and C (everything), each the median of three starts. B − A is the growth per Secret, C − B per workload. At C,
//! kreload also runs under heaptrack (built without mimalloc so heaptrack sees every
//! allocation) to show where its memory goes.

use std::ops::Range;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result};

use super::start_settled;
use crate::context::{Bench, build_kreload};
use crate::controller::{self, Launch, Variant};
use crate::populate::{self, Object};
use crate::results::{Scenario, percentile};

pub struct Population {
    pub namespaces: usize,
    pub secrets: usize,
    pub configmaps: usize,
    pub workloads: usize,
}

impl Population {
    pub fn at(scale: f64) -> Self {
        let n = |base: f64| ((base * scale).round() as usize).max(1);
        Self {
            namespaces: n(200.0).min(1000),
            secrets: n(10_000.0),
            configmaps: n(5_000.0),
            workloads: n(1_000.0),
        }
    }
}

const VARIANTS: [Variant; 2] = [Variant::Reloader, Variant::Kreload];
const REPEATS: usize = 3;

pub async fn run(b: &Bench, s: &mut Scenario, heap_out: Option<&Path>) -> Result<()> {
    let pop = Population::at(b.scale);
    s.note(format!(
        "population: {} Secrets of 2 KiB, {} ConfigMaps of 1 KiB in {} namespaces, {} opted-in \
         Deployments (each reads one ConfigMap and one Secret through envFrom)",
        pop.secrets, pop.configmaps, pop.namespaces, pop.workloads
    ));
    for v in VARIANTS {
        let r = start_settled(b, s, v).await?;
        s.figure("RSS idle, empty cluster", v.key(), mib(r.rss_kib()), "MiB");
        let cost = r.stop(b, false).await?;
        s.cost(v, &cost);
    }
    let client = &b.cluster.client;
    let namespaces = (0..pop.namespaces)
        .map(|i| Object::Namespace(ns(i)))
        .collect();
    populate::create_all(client, "namespaces", namespaces).await?;
    let (hs, hc, hw) = (pop.secrets / 2, pop.configmaps / 2, pop.workloads / 2);
    let stages = [
        ("A", 0..hs, 0..hc, 0..hw),
        ("B", hs..pop.secrets, hc..pop.configmaps, hw..hw),
        ("C", 0..0, 0..0, hw..pop.workloads),
    ];
    let mut steady = Vec::new();
    for (stage, secrets, configmaps, workloads) in stages {
        fill(b, &pop, secrets, configmaps, workloads).await?;
        for v in VARIANTS {
            // RSS after a start depends on how the start-up's allocations fell, so each
            // stage is measured over `REPEATS` starts and the median taken.
            let (mut rss, mut peak) = (Vec::new(), Vec::new());
            for _ in 0..REPEATS {
                let r = start_settled(b, s, v).await?;
                let mut sum = 0;
                for _ in 0..5 {
                    sum += r.rss_kib();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                rss.push(mib(sum / 5));
                peak.push(mib(r.hwm_kib()));
                if stage == "C" {
                    breakdown(s, &r);
                }
                let cost = r.stop(b, false).await?;
                s.cost(v, &cost);
            }
            let median = percentile(&rss, 50.0);
            s.figure(
                &format!("RSS steady, population {stage}"),
                v.key(),
                median,
                "MiB",
            );
            s.figure(
                &format!("RSS peak, population {stage}"),
                v.key(),
                percentile(&peak, 100.0),
                "MiB",
            );
            let spread = rss.iter().copied().fold(f64::MIN, f64::max)
                - rss.iter().copied().fold(f64::MAX, f64::min);
            s.figure(
                &format!("RSS steady spread over {REPEATS} starts, population {stage}"),
                v.key(),
                spread,
                "MiB",
            );
            steady.push((stage, v, median));
        }
    }
    let at = |stage: &str, v: Variant| {
        steady
            .iter()
            .find(|(st, vv, _)| *st == stage && *vv == v)
            .map_or(f64::NAN, |x| x.2)
    };
    for v in VARIANTS {
        let per_secret = (at("B", v) - at("A", v)) / ((pop.secrets - hs) as f64 / 1000.0);
        let per_workload = (at("C", v) - at("B", v)) / ((pop.workloads - hw) as f64 / 1000.0);
        s.figure(
            "RSS growth per 1,000 Secrets (+500 ConfigMaps)",
            v.key(),
            per_secret,
            "MiB",
        );
        s.figure(
            "RSS growth per 1,000 workloads",
            v.key(),
            per_workload,
            "MiB",
        );
    }
    match heap_out {
        Some(out) => heap_profile(b, s, out).await?,
        None => s.note("no heap profile (heaptrack not found, or --no-heap-profile)"),
    }
    Ok(())
}

pub fn ns(i: usize) -> String {
    format!("mem-{i:04}")
}

async fn fill(
    b: &Bench,
    pop: &Population,
    secrets: Range<usize>,
    configmaps: Range<usize>,
    workloads: Range<usize>,
) -> Result<()> {
    let n = pop.namespaces;
    let objects = secrets
        .map(|i| populate::secret(&ns(i % n), &format!("s-{i}"), 2048))
        .collect();
    populate::create_all(&b.cluster.client, "Secrets", objects).await?;
    let objects = configmaps
        .map(|i| populate::configmap(&ns(i % n), &format!("c-{i}"), 1024))
        .collect();
    populate::create_all(&b.cluster.client, "ConfigMaps", objects).await?;
    let objects = workloads
        .map(|i| {
            let (c, s) = (format!("c-{i}"), format!("s-{i}"));
            populate::deployment(&ns(i % n), &format!("w-{i}"), &[&c], &[&s])
        })
        .collect();
    populate::create_all(&b.cluster.client, "Deployments", objects).await
}

/// What the resident memory is made of, at the full population (the last start's figures
/// are the ones kept).
fn breakdown(s: &mut Scenario, r: &controller::Running) {
    let parts = [
        (
            "RSS of it: file-backed (the binary's code)",
            crate::procfs::status_field(r.pid, "RssFile:"),
        ),
        (
            "RSS of it: anonymous",
            crate::procfs::status_field(r.pid, "RssAnon:"),
        ),
        (
            "RSS of it: anonymous in transparent huge pages",
            crate::procfs::smaps_field(r.pid, "AnonHugePages:"),
        ),
    ];
    for (what, kib) in parts {
        if let Some(kib) = kib {
            s.figures
                .retain(|f| !(f.metric == what && f.variant == r.variant.key()));
            s.figure(what, r.variant.key(), mib(kib), "MiB");
        }
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// kreload at the full population under heaptrack; the peak consumers go to `out`.
async fn heap_profile(b: &Bench, s: &mut Scenario, out: &Path) -> Result<()> {
    let target = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("heap-profile")));
    let root = kreload_testenv::tools::repo_root();
    let bin = build_kreload(&root, &["system-allocator"], target.as_deref(), true)?;
    let data = b.dir().join("kreload.heaptrack");
    let launch = Launch {
        heaptrack: Some((bin, data.clone())),
        ..Launch::default()
    };
    let r = controller::start(b, Variant::Kreload, &launch).await?;
    super::settle(b, s, &r).await;
    s.figure(
        "RSS steady under heaptrack (glibc malloc), population C",
        "kreload",
        mib(r.rss_kib()),
        "MiB",
    );
    r.stop(b, false).await?;
    let file = std::fs::read_dir(b.dir())
        .context("listing the working directory")?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("kreload.heaptrack"))
        })
        .context("heaptrack wrote no profile")?;
    let printed = Command::new("heaptrack_print")
        .arg("-f")
        .arg(&file)
        // Unmerged, so each peak consumer comes with its whole backtrace.
        .args(["-p", "1", "-a", "0", "-T", "0", "-m", "0", "-n", "40"])
        .output()
        .context("running heaptrack_print")?;
    let text = String::from_utf8_lossy(&printed.stdout).into_owned();
    crate::heap::summarise(s, &text);
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    s.note("heaptrack's peak consumers: benchmarks/heaptrack-peaks.txt");
    Ok(())
}
