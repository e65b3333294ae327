//! The demo that `hack/demo.sh` runs.
//!
//! The demo starts a real local control plane, runs kreload against it with its webhooks
//! registered, creates a Deployment that opts in with Reloader's annotation, edits the
//! ConfigMap it uses, and shows the rollout that follows.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Parser as _;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use tokio_util::sync::CancellationToken;

use kreload::certs;
use kreload::cli::{Cli, Command, LogArgs};

use crate::controlplane::{Assets, ControlPlane, Options, free_port};
use crate::registration::{self as local, Registration};

/// `kreload-demo`: what `hack/demo.sh` runs.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "kreload-demo",
    about = "Start a local control plane, run kreload against it and show a reload"
)]
pub struct DemoArgs {
    /// Directory with etcd, kube-apiserver, kube-controller-manager and kubectl
    /// (what hack/controlplane.sh prints).
    #[arg(long, env = "KUBEBUILDER_ASSETS")]
    pub assets: std::path::PathBuf,
    /// Stop right after showing the reload instead of running until Ctrl-C.
    #[arg(long, default_value_t = false)]
    pub exit: bool,
    #[command(flatten)]
    pub log: LogArgs,
}

const NAMESPACE: &str = "demo";

/// Runs the demo until Ctrl-C (or right after the reload with `--exit`).
pub async fn run(args: DemoArgs) -> Result<()> {
    let stop = CancellationToken::new();
    let ctrl_c = {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.cancel();
            }
        })
    };
    let assets = Assets::in_dir(&args.assets)?;
    say("starting a local control plane (etcd, kube-apiserver, kube-controller-manager)");
    let started = Instant::now();
    let cp = ControlPlane::start(&assets, &Options::default()).await?;
    say(&format!(
        "control plane up in {:.1}s at {}",
        started.elapsed().as_secs_f64(),
        cp.server()
    ));
    let result = tokio::select! {
        r = demo(&cp, &args, &stop) => r,
        _ = stop.cancelled() => { say("interrupted"); Ok(()) }
    };
    stop.cancel();
    ctrl_c.abort();
    drop(cp);
    say("control plane stopped");
    result
}

fn say(s: &str) {
    println!("==> {s}");
}

async fn demo(cp: &ControlPlane, args: &DemoArgs, stop: &CancellationToken) -> Result<()> {
    let client = cp.client().await?;
    let cert_dir = cp.dir().join("kreload-certs");
    let bundle = certs::write_serving_bundle(
        &cert_dir,
        &["localhost".to_owned()],
        &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
    )?;
    let ca_pem = std::fs::read_to_string(&bundle.ca_cert)?;
    let port = free_port()?;
    let admin = free_port()?;
    let serve = Cli::try_parse_from([
        "kreload".to_owned(),
        "serve".to_owned(),
        format!("--listen-address=127.0.0.1:{port}"),
        format!("--admin-address=127.0.0.1:{admin}"),
        format!("--tls-cert-file={}", bundle.cert.display()),
        format!("--tls-key-file={}", bundle.key.display()),
        format!("--kubeconfig={}", cp.kubeconfig().display()),
        "--coalesce-window=1s".to_owned(),
    ])?;
    let Command::Serve(serve) = serve.command else {
        bail!("unexpected command");
    };
    let server_stop = stop.child_token();
    let server = tokio::spawn(kreload::run::serve(*serve, server_stop.clone()));

    local::register(
        &client,
        &Registration {
            name_suffix: String::new(),
            base_url: format!("https://127.0.0.1:{port}"),
            ca_pem,
            namespace_labels: BTreeMap::new(),
            source_operations: vec!["UPDATE".into()],
        },
    )
    .await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(NAMESPACE.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces.create(&PostParams::default(), &ns).await?;
    local::wait_live(
        &client,
        NAMESPACE,
        ([127, 0, 0, 1], admin).into(),
        Duration::from_secs(60),
    )
    .await
    .context("kreload's webhooks never became live")?;
    say(&format!(
        "kreload is serving on https://127.0.0.1:{port}; webhooks registered and live"
    ));

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "app-config"},
        "data": {"greeting": "hello"}
    }))?;
    cms.create(&PostParams::default(), &cm).await?;
    let web: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "annotations": {"reloader.stakater.com/auto": "true"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "web",
                    "image": "registry.k8s.io/pause:3.10",
                    "envFrom": [{"configMapRef": {"name": "app-config"}}]
                }]}
            }
        }
    }))?;
    deployments.create(&PostParams::default(), &web).await?;
    say("created ConfigMap demo/app-config (greeting=hello) and Deployment demo/web");
    say("  web carries reloader.stakater.com/auto: \"true\" and uses app-config through envFrom");
    let first = wait_replicasets(&client, 1).await?;
    say(&format!("ReplicaSets of web: {}", first.join(", ")));

    say("editing the ConfigMap: greeting=hello-again");
    cms.patch(
        "app-config",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"data": {"greeting": "hello-again"}})),
    )
    .await?;
    let second = wait_replicasets(&client, 2).await?;
    let new: Vec<&String> = second.iter().filter(|n| !first.contains(n)).collect();
    say(&format!(
        "web rolled: new ReplicaSet {}",
        new.first().map(|s| s.as_str()).unwrap_or("?")
    ));
    let live = deployments.get("web").await?;
    let env = live
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers.into_iter().next())
        .and_then(|c| c.env)
        .unwrap_or_default();
    for var in env.iter().filter(|v| v.name.starts_with("STAKATER_")) {
        say(&format!(
            "  container web now has {}={}",
            var.name,
            var.value.as_deref().unwrap_or("")
        ));
    }
    say(&format!(
        "try it yourself:  {} --kubeconfig {} -n demo get deploy,rs",
        cp.kubectl()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "kubectl".into()),
        cp.kubeconfig().display()
    ));
    if args.exit {
        say("demo done (--exit)");
    } else {
        say("the control plane and kreload keep running; press Ctrl-C to stop");
        stop.cancelled().await;
    }
    server_stop.cancel();
    match tokio::time::timeout(Duration::from_secs(25), server).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(join.into()),
        Err(_) => bail!("kreload did not stop in time"),
    }
}

/// Waits until web has `count` ReplicaSets; returns their names, oldest first.
async fn wait_replicasets(client: &kube::Client, count: usize) -> Result<Vec<String>> {
    let rs: Api<ReplicaSet> = Api::namespaced(client.clone(), NAMESPACE);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut list = rs
            .list(&ListParams::default().labels("app=web"))
            .await?
            .items;
        list.sort_by_key(|r| r.metadata.creation_timestamp.clone().map(|t| t.0));
        if list.len() >= count {
            return Ok(list.into_iter().filter_map(|r| r.metadata.name).collect());
        }
        if Instant::now() > deadline {
            bail!(
                "web has {} ReplicaSets after 60s, expected {count}",
                list.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
