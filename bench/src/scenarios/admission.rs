//! The admission server alone, loaded by h2load over TLS and HTTP/2 (as the API server calls
//! it) with ConfigMap UPDATE reviews of 1 KiB, 64 KiB and 1 MiB objects, kreload pinned to
//! one core and then two; and the API server's own ConfigMap UPDATE latency with kreload's
//! webhook registered and not.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::json;

use super::start_settled;
use crate::context::Bench;
use crate::controller::{self, Launch, Variant};
use crate::populate::{self, Object};
use crate::results::{Scenario, percentile};

const NS: &str = "bench-admission";
const SIZES: [(&str, usize); 3] = [("1 KiB", 1024), ("64 KiB", 64 * 1024), ("1 MiB", 1 << 20)];
/// (label, connections, streams per connection): saturating load, and one review at a time.
const LOADS: [(&str, u32, u32); 2] = [("32 in flight", 4, 8), ("1 in flight", 1, 1)];

pub async fn server(b: &Bench, s: &mut Scenario) -> Result<()> {
    let Some(h2load) = which("h2load") else {
        bail!(
            "h2load not found: install Debian's nghttp2-client (apt-get install -y nghttp2-client), \
             or leave out the admission scenario (--only)"
        );
    };
    let client = &b.cluster.client;
    populate::create_all(client, "namespace", vec![Object::Namespace(NS.to_owned())]).await?;
    let objects = vec![
        populate::configmap(NS, "target", 16),
        populate::deployment(NS, "target", &["target"], &[]),
    ];
    populate::create_all(client, "admission objects", objects).await?;
    let secs = (10.0 * b.scale.min(1.0)).max(3.0).round() as u32;
    s.note(format!(
        "h2load {} s per cell after 1 s warm-up, TLS + h2 on loopback; a review is a ConfigMap \
         UPDATE of the named size (old and new object both that size, data differs) for a \
         ConfigMap an opted-in Deployment reads. kreload pinned with taskset; with 1 core, h2load \
         runs on the other core, with 2 cores it shares them. HTTP/1.1 is not measured: kreload \
         serves one request per h1 connection (README, \"Admission server limits\"), and the API \
         server uses h2",
        secs
    ));
    for (cores, cpus, h2load_cpus) in [("1 core", "0", Some("1")), ("2 cores", "0,1", None)] {
        let launch = Launch {
            cpus: Some(cpus.to_owned()),
            no_registration: true,
            ..Launch::default()
        };
        let r = controller::start(b, Variant::Kreload, &launch).await?;
        for (size_label, size) in SIZES {
            let body = review(b.dir(), size)?;
            for (load_label, conns, streams) in LOADS {
                let cell = format!("{size_label}, {cores}, {load_label}");
                let (rate, lat) =
                    load(b, &h2load, h2load_cpus, &body, secs, conns, streams, &cell).await?;
                s.figure(
                    &format!("admission reviews/s, {cell}"),
                    "kreload",
                    rate,
                    "/s",
                );
                s.figure(
                    &format!("admission p50, {cell}"),
                    "kreload",
                    percentile(&lat, 50.0),
                    "ms",
                );
                s.figure(
                    &format!("admission p99, {cell}"),
                    "kreload",
                    percentile(&lat, 99.0),
                    "ms",
                );
            }
        }
        let cost = r.stop(b, false).await?;
        s.cost(Variant::Kreload, &cost);
    }
    Ok(())
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Writes an AdmissionReview body whose objects each carry `size` bytes of data.
fn review(dir: &Path, size: usize) -> Result<PathBuf> {
    let object = |rv: &str, seed: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "target", "namespace": NS, "uid": "b1e2c3d4-0000-4000-8000-000000000001",
                "resourceVersion": rv},
            "data": {"v": populate::filler(seed, size)}})
    };
    let body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "7f0c3a52-3b5e-4f4e-9d7a-1f2b3c4d5e6f",
        "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
        "resource": {"group": "", "version": "v1", "resource": "configmaps"},
        "requestKind": {"group": "", "version": "v1", "kind": "ConfigMap"},
        "requestResource": {"group": "", "version": "v1", "resource": "configmaps"},
        "name": "target", "namespace": NS, "operation": "UPDATE",
        "userInfo": {"username": "bench", "groups": ["system:authenticated"]},
        "object": object("2", "new"), "oldObject": object("1", "old"),
        "dryRun": false, "options": {"apiVersion": "meta.k8s.io/v1", "kind": "UpdateOptions"}}});
    let path = dir.join(format!("review-{size}.json"));
    std::fs::write(&path, serde_json::to_vec(&body)?).context("writing a review body")?;
    Ok(path)
}

/// Runs h2load; reviews per second and each request's latency in ms.
#[allow(clippy::too_many_arguments)]
async fn load(
    b: &Bench,
    h2load: &Path,
    cpus: Option<&str>,
    body: &Path,
    secs: u32,
    conns: u32,
    streams: u32,
    cell: &str,
) -> Result<(f64, Vec<f64>)> {
    let log = b.dir().join("h2load.log");
    let _ = std::fs::remove_file(&log);
    let mut cmd = match cpus {
        Some(c) => {
            let mut cmd = tokio::process::Command::new("taskset");
            cmd.arg("-c").arg(c).arg(h2load);
            cmd
        }
        None => tokio::process::Command::new(h2load),
    };
    cmd.arg(format!("--duration={secs}"))
        .arg("--warm-up-time=1")
        .arg(format!("--clients={conns}"))
        .arg(format!("--max-concurrent-streams={streams}"))
        .arg("--threads=1")
        .arg(format!("--data={}", body.display()))
        .arg("--header=content-type: application/json")
        .arg(format!("--log-file={}", log.display()))
        .arg(format!(
            "https://127.0.0.1:{}/validate/sources",
            b.kreload_ports.0
        ))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    println!("  h2load: {cell}");
    let started = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(u64::from(secs) + 60), cmd.output())
        .await
        .with_context(|| format!("h2load ({cell}) did not finish"))?
        .with_context(|| format!("running h2load ({cell})"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("h2load ({cell}) failed ({}): {text}", out.status);
    }
    let ok = text
        .lines()
        .find(|l| l.starts_with("status codes:"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    let lat: Vec<f64> = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.get(1) == Some(&"200")).then(|| f.get(2)?.parse::<f64>().ok())?
        })
        .map(|us| us / 1000.0)
        .collect();
    let _ = started;
    if ok == 0 || lat.is_empty() {
        bail!("h2load ({cell}) got no 2xx answers: {text}");
    }
    Ok((lat.len() as f64 / f64::from(secs), lat))
}

/// The API server's ConfigMap UPDATE latency, seen by a client, with kreload's webhook
/// registered (kreload running) and not.
pub async fn apiserver(b: &Bench, s: &mut Scenario) -> Result<()> {
    let ns = "bench-apiserver";
    let client = &b.cluster.client;
    populate::create_all(client, "namespace", vec![Object::Namespace(ns.to_owned())]).await?;
    populate::create_all(
        client,
        "ConfigMap",
        vec![populate::configmap(ns, "plain", 1024)],
    )
    .await?;
    let n = b.n(300);
    s.note(format!(
        "{n} sequential merge patches of one 1 KiB ConfigMap (no workload reads it) per case"
    ));
    controller::unregister(b).await?;
    let without = updates(b, ns, n).await?;
    let r = start_settled(b, s, Variant::Kreload).await?;
    let with = updates(b, ns, n).await?;
    let cost = r.stop(b, false).await?;
    s.cost(Variant::Kreload, &cost);
    for (case, lat) in [("not registered", &without), ("registered", &with)] {
        for p in [50.0, 99.0] {
            let metric = format!("API server ConfigMap UPDATE p{p}, webhook {case}");
            s.figure(&metric, "kreload", percentile(lat, p), "ms");
        }
    }
    Ok(())
}

async fn updates(b: &Bench, ns: &str, n: usize) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(n);
    let tag = b.next_run();
    for i in 0..n {
        let started = Instant::now();
        populate::update_configmap(&b.cluster.client, ns, "plain", &format!("{tag}-{i}")).await?;
        out.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(out)
}
