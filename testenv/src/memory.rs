//! `kreload-memory`: where kreload's memory goes at a given scale (docs/memory.md). Not part
//! of CI. It starts a control plane, one long-lived kreload with its webhooks registered (the
//! `live` instance, which sees everything arrive), and measures idle, then after creating the
//! Secrets and ConfigMaps, then at each step of opted-in Deployments. At every point it also
//! starts a `fresh` kreload against what is there, waits until its index holds every workload
//! and its resync on start has run, lets it settle, and reads VmRSS and VmHWM (the peak,
//! which includes the initial list) from /proc; that instance is then stopped.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::controlplane::ControlPlane;
use crate::registration::{self as local, Registration};
use crate::soak::{Kreload, Local, status_kib};

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "kreload-memory",
    about = "Measure kreload's memory: idle, with Secrets and ConfigMaps, per workload"
)]
pub struct MemoryArgs {
    /// Directory with etcd and kube-apiserver (what hack/controlplane.sh prints).
    #[arg(long, env = "KUBEBUILDER_ASSETS")]
    pub assets: PathBuf,
    /// The kreload binary; by default the one next to this program.
    #[arg(long)]
    pub kreload: Option<PathBuf>,
    #[arg(long, default_value_t = 200)]
    pub namespaces: usize,
    #[arg(long, default_value_t = 10_000)]
    pub secrets: usize,
    #[arg(long, default_value_t = 5_000)]
    pub configmaps: usize,
    /// Bytes of data per Secret.
    #[arg(long, default_value_t = 2048)]
    pub secret_bytes: usize,
    /// Opted-in Deployments to reach, measured at each step (comma-separated, ascending).
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    pub workloads: Vec<usize>,
    /// How long an instance runs after it is synced before it is sampled.
    #[arg(long, default_value = "20s", value_parser = kreload::cli::parse_duration)]
    pub settle: Duration,
    /// API writes in flight while populating.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Keep the control plane (and the live instance) up at the end until interrupted, and
    /// print its kubeconfig, for a heaptrack run against the populated cluster.
    #[arg(long)]
    pub hold: bool,
    /// Extra flags for `kreload serve`.
    #[arg(long, allow_hyphen_values = true)]
    pub kreload_flag: Vec<String>,
}

/// One measurement.
struct Row {
    phase: String,
    instance: &'static str,
    workloads: usize,
    rss_kib: u64,
    hwm_kib: u64,
    /// The heap and stacks (RSS less the mapped binary and libraries).
    anon_kib: u64,
    threads: u64,
    /// LIST and WATCH requests for Secrets and ConfigMaps the API server served while a
    /// fresh instance started and settled (kreload makes none; anything else is the API
    /// server's own informers).
    source_lists: Option<f64>,
}

struct Setup {
    cp: ControlPlane,
    client: kube::Client,
    dir: tempfile::TempDir,
    bundle: kreload::certs::BundlePaths,
    bin: PathBuf,
    args: MemoryArgs,
}

pub async fn run(args: MemoryArgs) -> Result<()> {
    let Local {
        cp,
        client,
        dir,
        bundle,
        bin,
    } = Local::start(&args.assets, args.kreload.as_ref(), "kreload-memory-").await?;
    let s = Setup {
        cp,
        client,
        dir,
        bundle,
        bin,
        args,
    };
    let live = s.kreload("live")?;
    local::register(
        &s.client,
        &Registration {
            name_suffix: String::new(),
            base_url: format!("https://127.0.0.1:{}", live.port),
            ca_pem: std::fs::read_to_string(&s.bundle.ca_cert)?,
            namespace_labels: Default::default(),
            source_operations: vec!["UPDATE".into()],
        },
    )
    .await?;
    let n = s.args.namespaces.max(1);
    let namespaces: Api<Namespace> = Api::all(s.client.clone());
    for i in 0..n {
        match namespaces
            .create(&PostParams::default(), &namespace(i))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e).context("creating a namespace"),
        }
    }
    local::wait_live(&s.client, &ns(0), admin(&live), Duration::from_secs(60)).await?;
    let rows = s.measure(&live).await?;
    print_table(&rows);
    if s.args.hold {
        println!(
            "memory: holding; for another instance: kreload serve --kubeconfig={} \
             --tls-cert-file={} --tls-key-file={}",
            s.cp.kubeconfig().display(),
            s.bundle.cert.display(),
            s.bundle.key.display()
        );
        println!("memory: live kreload pid {} (Ctrl-C ends)", live.pid());
        tokio::signal::ctrl_c().await?;
    }
    Ok(())
}

fn admin(k: &Kreload) -> std::net::SocketAddr {
    ([127, 0, 0, 1], k.admin).into()
}

fn ns(i: usize) -> String {
    format!("mem-{i}")
}

fn namespace(i: usize) -> Namespace {
    serde_json::from_value(json!({"metadata": {"name": ns(i)}})).unwrap_or_default()
}

impl Setup {
    fn kreload(&self, name: &str) -> Result<Kreload> {
        let log = self.dir.path().join(format!("kreload-{name}.log"));
        Kreload::start(
            &self.bin,
            &self.cp,
            &self.bundle,
            &self.args.kreload_flag,
            &log,
        )
    }

    /// Idle, with the sources, then at every workload step; each with both instances.
    async fn measure(&self, live: &Kreload) -> Result<Vec<Row>> {
        let a = &self.args;
        let n = a.namespaces.max(1);
        let mut rows = Vec::new();
        self.sample_both(live, "idle", 0, &mut rows).await?;
        let bytes = a.secret_bytes;
        self.populate(a.secrets, move |i| (ns(i % n), secret(i, bytes)))
            .await?;
        self.populate(a.configmaps, move |i| (ns(i % n), configmap(i)))
            .await?;
        let phase = format!("{} secrets, {} configmaps", a.secrets, a.configmaps);
        self.sample_both(live, &phase, 0, &mut rows).await?;
        let mut made = 0;
        for &step in &a.workloads {
            let started = Instant::now();
            self.populate_range(made, step, move |i| (ns(i % n), deployment(i)))
                .await?;
            made = made.max(step);
            println!("memory: {made} deployments in {:?}", started.elapsed());
            self.sample_both(live, &phase, made, &mut rows).await?;
        }
        Ok(rows)
    }

    async fn sample_both(
        &self,
        live: &Kreload,
        phase: &str,
        workloads: usize,
        rows: &mut Vec<Row>,
    ) -> Result<()> {
        wait_synced(live, workloads, false).await?;
        tokio::time::sleep(self.args.settle).await;
        rows.push(row(live, phase, "live", workloads)?);
        let before = source_lists(&self.client).await;
        let fresh = self.kreload("fresh")?;
        wait_synced(&fresh, workloads, workloads > 0).await?;
        tokio::time::sleep(self.args.settle).await;
        let mut fresh_row = row(&fresh, phase, "fresh", workloads)?;
        drop(fresh);
        fresh_row.source_lists = Some(source_lists(&self.client).await? - before?);
        rows.push(fresh_row);
        Ok(())
    }

    async fn populate<K>(
        &self,
        count: usize,
        make: impl Fn(usize) -> (String, K) + Send + Sync + 'static,
    ) -> Result<()>
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
        K: Clone + std::fmt::Debug,
        K: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        self.populate_range(0, count, make).await
    }

    /// Creates objects `from..to` with `concurrency` writes in flight; an object that is
    /// already there counts as made.
    async fn populate_range<K>(
        &self,
        from: usize,
        to: usize,
        make: impl Fn(usize) -> (String, K) + Send + Sync + 'static,
    ) -> Result<()>
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
        K: Clone + std::fmt::Debug,
        K: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        let next = Arc::new(AtomicUsize::new(from));
        let make = Arc::new(make);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..self.args.concurrency.max(1) {
            let (next, make, client) = (next.clone(), make.clone(), self.client.clone());
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= to {
                        return Ok::<(), anyhow::Error>(());
                    }
                    let (namespace, obj) = make(i);
                    let api: Api<K> = Api::namespaced(client.clone(), &namespace);
                    match api.create(&PostParams::default(), &obj).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(e)) if e.code == 409 => {}
                        Err(e) => return Err(e).with_context(|| format!("creating object {i}")),
                    }
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        Ok(())
    }
}

fn row(k: &Kreload, phase: &str, instance: &'static str, workloads: usize) -> Result<Row> {
    let pid = k.pid();
    let rss_kib = status_kib(pid, "VmRSS:").context("kreload is gone")?;
    let hwm_kib = status_kib(pid, "VmHWM:").context("kreload is gone")?;
    let anon_kib = status_kib(pid, "RssAnon:").unwrap_or(0);
    let threads = status_kib(pid, "Threads:").unwrap_or(0);
    println!(
        "memory: {phase}, {workloads} workloads, {instance}: RSS {rss_kib} KiB \
         (anonymous {anon_kib}), peak {hwm_kib} KiB, {threads} threads"
    );
    Ok(Row {
        phase: phase.to_owned(),
        instance,
        workloads,
        rss_kib,
        hwm_kib,
        anon_kib,
        threads,
        source_lists: None,
    })
}

/// LIST and WATCH requests for Secrets and ConfigMaps served so far, from the API server's
/// `apiserver_request_total`.
async fn source_lists(client: &kube::Client) -> Result<f64> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(request).await?;
    let sources = ["resource=\"secrets\"", "resource=\"configmaps\""];
    let verbs = ["verb=\"LIST\"", "verb=\"WATCH\""];
    Ok(text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter(|l| sources.iter().any(|s| l.contains(s)) && verbs.iter().any(|v| l.contains(v)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// A value of kreload's metrics, summed over its label sets.
async fn metric(k: &Kreload, name: &str) -> Option<f64> {
    let text = local::admin_get(admin(k), "/metrics").await?;
    let values = text
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
    Some(values.sum())
}

/// Waits until the index holds `workloads` and, with `resynced`, a resync pass is done.
async fn wait_synced(k: &Kreload, workloads: usize, resynced: bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let indexed = metric(k, "kreload_index_workloads").await;
        let passes = metric(k, "kreload_resync_passes_total").await;
        let want = u32::try_from(workloads).map(f64::from).unwrap_or(f64::MAX);
        if indexed == Some(want) && (!resynced || passes.is_some_and(|p| p >= 1.0)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "kreload indexed {indexed:?} of {workloads} workloads (resync passes {passes:?})"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn secret(i: usize, bytes: usize) -> Secret {
    let data: Vec<u8> = (0..bytes)
        .map(|b| (b.wrapping_mul(31) ^ i) as u8 | 0x20)
        .collect();
    let mut s: Secret =
        serde_json::from_value(json!({"metadata": {"name": format!("sec-{i}")}, "type": "Opaque"}))
            .unwrap_or_default();
    s.data = Some([("key".to_owned(), k8s_openapi::ByteString(data))].into());
    s
}

fn configmap(i: usize) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": format!("cfg-{i}")},
        "data": {"app.properties": format!("feature.{i}=on\nlevel=info\n")}
    }))
    .unwrap_or_default()
}

/// An opted-in Deployment as `kubectl apply` leaves it: labels, one container reading its
/// ConfigMap and Secret, and the last-applied-configuration annotation.
fn deployment(i: usize) -> Deployment {
    let name = format!("app-{i}");
    let mut d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name, "team": "payments"},
            "annotations": {"reloader.stakater.com/auto": "true"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name, "team": "payments"},
                "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"}},
            "spec": {"containers": [{
                "name": "app", "image": "registry.example/payments/app:1.24.3",
                "ports": [{"containerPort": 8080, "name": "http"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"memory": "256Mi"}},
                "envFrom": [{"configMapRef": {"name": format!("cfg-{i}")}}],
                "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef":
                    {"name": format!("sec-{i}"), "key": "key"}}}],
                "volumeMounts": [{"name": "creds", "mountPath": "/var/run/creds"}],
                "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}}
            }],
            "volumes": [{"name": "creds", "secret": {"secretName": format!("sec-{i}")}}]}}}
    });
    let applied = d.to_string();
    d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
        applied.into();
    serde_json::from_value(d).unwrap_or_default()
}

fn print_table(rows: &[Row]) {
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "| phase | workloads | instance | RSS MiB | anonymous MiB | peak MiB | threads | \
         source LIST/WATCH |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        let lists = r.source_lists.map_or("–".to_owned(), |n| n.to_string());
        println!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {} | {lists} |",
            r.phase,
            r.workloads,
            r.instance,
            mib(r.rss_kib),
            mib(r.anon_kib),
            mib(r.hwm_kib),
            r.threads
        );
    }
}
