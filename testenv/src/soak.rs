//! `kreload-soak`: a long run against a local control plane, not part of CI. kreload runs
//! as its own process (so its memory is its own), 100 Deployments each read a ConfigMap
//! and a Secret, and the soak writes to those sources at a steady rate (1,000 a minute by
//! default) for a while (10 minutes). Every 30 s it samples kreload's RSS from /proc. At the
//! end it waits for every workload to carry the final hash of both of its sources and
//! prints what it made, what was lost, and the memory samples.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::controlplane::{Assets, ControlPlane, Options, free_port, owned_tempdir};
use crate::registration::{self as local, Registration};
use kreload::reload::hash::{configmap_hash_of, secret_hash_of};

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "kreload-soak",
    about = "Soak kreload: steady source updates, memory sampled"
)]
pub struct SoakArgs {
    /// Directory with etcd and kube-apiserver (what hack/controlplane.sh prints).
    #[arg(long, env = "KUBEBUILDER_ASSETS")]
    pub assets: PathBuf,
    /// The kreload binary; by default the one next to this program.
    #[arg(long)]
    pub kreload: Option<PathBuf>,
    #[arg(long, default_value_t = 100)]
    pub workloads: usize,
    /// Source updates per minute.
    #[arg(long, default_value_t = 1000)]
    pub per_minute: u64,
    #[arg(long, default_value = "10m", value_parser = kreload::cli::parse_duration)]
    pub duration: Duration,
    /// Extra flags for `kreload serve`.
    #[arg(long, allow_hyphen_values = true)]
    pub kreload_flag: Vec<String>,
}

const NS: &str = "soak";

/// kreload's resident memory in KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// A `/proc/<pid>/status` field given in kB (`VmRSS:`, `VmHWM:`, `RssAnon:`).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A `kreload serve` process of the soak's or the memory measurement's; killed on drop.
pub struct Kreload {
    child: Child,
    pub port: u16,
    pub admin: u16,
}

impl Kreload {
    /// Starts `bin serve` against `cp` on free loopback ports with the serving certificate
    /// in `bundle`, logging to `log`.
    pub fn start(
        bin: &std::path::Path,
        cp: &ControlPlane,
        bundle: &kreload::certs::BundlePaths,
        flags: &[String],
        log: &std::path::Path,
    ) -> Result<Kreload> {
        let (port, admin) = (free_port()?, free_port()?);
        let log = std::fs::File::create(log)?;
        let child = Command::new(bin)
            .arg("serve")
            .arg(format!("--listen-address=127.0.0.1:{port}"))
            .arg(format!("--admin-address=127.0.0.1:{admin}"))
            .arg(format!("--tls-cert-file={}", bundle.cert.display()))
            .arg(format!("--tls-key-file={}", bundle.key.display()))
            .arg(format!("--kubeconfig={}", cp.kubeconfig().display()))
            .args(flags)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Kreload { child, port, admin })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Kreload {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The kreload binary: `explicit`, or the one next to this program.
pub fn kreload_bin(explicit: Option<&PathBuf>) -> Result<PathBuf> {
    Ok(match explicit {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.with_file_name("kreload"),
    })
}

/// What the soak and `kreload-memory` start from: a control plane without a controller
/// manager, a serving certificate for kreload, and the kreload binary.
pub struct Local {
    pub cp: ControlPlane,
    pub client: kube::Client,
    pub dir: tempfile::TempDir,
    pub bundle: kreload::certs::BundlePaths,
    pub bin: PathBuf,
}

impl Local {
    /// `assets` holds etcd and kube-apiserver; the temporary directory is named `prefix…`.
    pub async fn start(
        assets: &std::path::Path,
        kreload: Option<&PathBuf>,
        prefix: &str,
    ) -> Result<Local> {
        let assets = Assets::in_dir(assets)?;
        let opts = Options {
            controller_manager: false,
            ..Options::default()
        };
        let cp = ControlPlane::start(&assets, &opts).await?;
        let client = cp.client().await?;
        let dir = owned_tempdir(prefix)?;
        let bundle = kreload::certs::write_serving_bundle(
            dir.path(),
            &["localhost".to_owned()],
            &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
        )?;
        let bin = kreload_bin(kreload)?;
        Ok(Local {
            cp,
            client,
            dir,
            bundle,
            bin,
        })
    }
}

pub async fn run(args: SoakArgs) -> Result<()> {
    let Local {
        cp,
        client,
        dir,
        bundle,
        bin,
    } = Local::start(&args.assets, args.kreload.as_ref(), "kreload-soak-").await?;
    let kreload = Kreload::start(
        &bin,
        &cp,
        &bundle,
        &args.kreload_flag,
        &dir.path().join("kreload.log"),
    )?;
    let (pid, port, admin) = (kreload.pid(), kreload.port, kreload.admin);
    local::register(
        &client,
        &Registration {
            name_suffix: String::new(),
            base_url: format!("https://127.0.0.1:{port}"),
            ca_pem: std::fs::read_to_string(&bundle.ca_cert)?,
            namespace_labels: BTreeMap::new(),
            source_operations: vec!["UPDATE".into()],
        },
    )
    .await?;
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(NS.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    local::wait_live(
        &client,
        NS,
        ([127, 0, 0, 1], admin).into(),
        Duration::from_secs(60),
    )
    .await?;
    setup(&client, args.workloads).await?;
    println!(
        "soak: {} workloads ready; kreload pid {pid}, RSS {} KiB",
        args.workloads,
        rss_kib(pid).unwrap_or(0)
    );
    let (updates, samples) = drive(&client, &args, pid).await?;
    let lost = converge(&client, args.workloads, Duration::from_secs(180)).await?;
    let end = rss_kib(pid).unwrap_or(0);
    println!("soak: updates made: {updates} in {:?}", args.duration);
    println!("soak: lost: {lost} (workload sources not carrying their final hash)");
    println!("soak: RSS samples (KiB): {samples:?}; at the end: {end}");
    let metrics = local::admin_get(([127, 0, 0, 1], admin).into(), "/metrics").await;
    for line in metrics.unwrap_or_default().lines().filter(|l| {
        [
            "kreload_reloads_total",
            "kreload_intents_dropped_total",
            "kreload_resync_",
        ]
        .iter()
        .any(|p| l.starts_with(p))
    }) {
        println!("soak: {line}");
    }
    if lost > 0 {
        bail!("{lost} final hashes missing");
    }
    Ok(())
}

async fn setup(client: &kube::Client, n: usize) -> Result<()> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let pp = PostParams::default();
    for i in 0..n {
        cms.create(
            &pp,
            &serde_json::from_value(
                json!({"metadata": {"name": format!("cfg-{i}")}, "data": {"v": "0"}}),
            )?,
        )
        .await?;
        secrets
            .create(
                &pp,
                &serde_json::from_value(
                    json!({"metadata": {"name": format!("sec-{i}")}, "stringData": {"v": "0"}}),
                )?,
            )
            .await?;
        let d = json!({
            "metadata": {"name": format!("app-{i}"), "annotations": {"reloader.stakater.com/auto": "true"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": format!("app-{i}")}},
                "template": {"metadata": {"labels": {"app": format!("app-{i}")}}, "spec": {"containers": [{
                    "name": "app", "image": "registry.invalid/app:1",
                    "envFrom": [{"configMapRef": {"name": format!("cfg-{i}")}}, {"secretRef": {"name": format!("sec-{i}")}}]
                }]}}}
        });
        deployments.create(&pp, &serde_json::from_value(d)?).await?;
    }
    // Let the index see them before the first write.
    tokio::time::sleep(Duration::from_secs(5)).await;
    Ok(())
}

/// Writes at the configured rate for the configured time, round robin over the sources;
/// returns the number of writes and the RSS samples.
async fn drive(client: &kube::Client, args: &SoakArgs, pid: u32) -> Result<(u64, Vec<u64>)> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let every = Duration::from_secs(60) / u32::try_from(args.per_minute.max(1)).unwrap_or(u32::MAX);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut last_sample = Instant::now();
    let mut samples = vec![rss_kib(pid).unwrap_or(0)];
    let mut n: u64 = 0;
    let params = PatchParams::default();
    while started.elapsed() < args.duration {
        tick.tick().await;
        let i = usize::try_from(n / 2).unwrap_or(0) % args.workloads;
        let body = json!({"data": {"v": n.to_string()}});
        let result = if n.is_multiple_of(2) {
            cms.patch(&format!("cfg-{i}"), &params, &Patch::Merge(&body))
                .await
                .map(drop)
        } else {
            let body = json!({"stringData": {"v": n.to_string()}});
            secrets
                .patch(&format!("sec-{i}"), &params, &Patch::Merge(&body))
                .await
                .map(drop)
        };
        result.with_context(|| format!("update {n}"))?;
        n += 1;
        if last_sample.elapsed() >= Duration::from_secs(30) {
            last_sample = Instant::now();
            let rss = rss_kib(pid).context("kreload is gone")?;
            samples.push(rss);
            println!(
                "soak: {:>4}s {n} updates, kreload RSS {rss} KiB",
                started.elapsed().as_secs()
            );
        }
    }
    Ok((n, samples))
}

/// Waits up to `patience` for every workload to carry the final hash of both sources;
/// returns how many (workload, source) pairs never did.
async fn converge(client: &kube::Client, n: usize, patience: Duration) -> Result<usize> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let mut want = Vec::new();
    for i in 0..n {
        want.push((
            i,
            format!("STAKATER_CFG_{i}_CONFIGMAP"),
            configmap_hash_of(&cms.get(&format!("cfg-{i}")).await?),
        ));
        want.push((
            i,
            format!("STAKATER_SEC_{i}_SECRET"),
            secret_hash_of(&secrets.get(&format!("sec-{i}")).await?),
        ));
    }
    let deadline = Instant::now() + patience;
    loop {
        let mut missing = 0;
        for (i, var, hash) in &want {
            let d = deployments.get(&format!("app-{i}")).await?;
            let value = serde_json::to_value(&d)?;
            let env = value
                .pointer("/spec/template/spec/containers/0/env")
                .and_then(|e| e.as_array())
                .cloned()
                .unwrap_or_default();
            let ok = env
                .iter()
                .any(|e| e["name"] == var.as_str() && e["value"] == hash.as_str());
            missing += usize::from(!ok);
        }
        if missing == 0 || Instant::now() > deadline {
            return Ok(missing);
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}
