//! kreload stopping: writes keep working while it is down, and SIGTERM applies what was
//! already admitted before it exits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use kreload::reload::model::SourceKind;

use crate::guards::{D, auto, cm, deployment};
use crate::reload::wait_indexed;
use crate::support::instance::Instance;
use crate::support::workloads::secret;
use crate::support::workloads::{configmap, data, expected_hash, get, reload_env};
use crate::support::workloads::{update_configmap, update_secret};
use crate::support::{Env, namespace};

/// With kreload stopped, ConfigMap, Secret and workload writes go through at once: the
/// webhooks fail open without waiting for their timeout.
pub async fn writes_succeed_while_down(env: Arc<Env>) -> Result<()> {
    let client = env.client.clone();
    let mut inst = Instance::start(
        &client,
        &env.kreload_kubeconfig,
        "stopped",
        "stopped",
        &["--coalesce-window=1s"],
    )
    .await?;
    let ns = namespace(&client, "down", &inst.labels()).await?;
    configmap(&client, &ns, "settings", &[("k", "1")]).await?;
    secret(&client, &ns, "token", &[("t", "1")]).await?;
    inst.stop();
    // The webhook timeout is 3 s; a write that waited for it would take at least that.
    let timeout = Duration::from_secs(3);
    let started = Instant::now();
    update_configmap(&client, &ns, "settings", &[("k", "2")])
        .await
        .context("configmap update")?;
    let cm_took = started.elapsed();
    let started = Instant::now();
    update_secret(&client, &ns, "token", &[("t", "2")])
        .await
        .context("secret update")?;
    let secret_took = started.elapsed();
    let started = Instant::now();
    deployment(&client, &ns, "web", auto(), "settings")
        .await
        .context("deployment create")?;
    let deploy_took = started.elapsed();
    eprintln!(
        "guards: with kreload down: configmap update {cm_took:?}, secret update {secret_took:?}, deployment create {deploy_took:?}"
    );
    ensure!(
        cm_took < timeout && secret_took < timeout && deploy_took < timeout,
        "a write waited for the dead webhook"
    );
    Ok(())
}

/// SIGTERM during the coalescing window: kreload stops taking writes, applies what it had
/// already admitted, and exits cleanly, so a rollout of kreload itself loses nothing.
pub async fn sigterm_drains(env: Arc<Env>) -> Result<()> {
    let client = env.client.clone();
    let flags = ["--coalesce-window=60s"];
    let mut inst = Instance::start(
        &client,
        &env.kreload_kubeconfig,
        "sigterm",
        "sigterm",
        &flags,
    )
    .await?;
    let ns = namespace(&client, "sigterm", &inst.labels()).await?;
    configmap(&client, &ns, "settings", &[("k", "1")]).await?;
    deployment(&client, &ns, "web", auto(), "settings").await?;
    wait_indexed(&inst, 1).await?;
    update_configmap(&client, &ns, "settings", &[("k", "2")]).await?;
    // The change waits in a 60 s window; stop kreload long before it closes.
    let code = inst.terminate(Duration::from_secs(20)).await?;
    ensure!(
        code == Some(0),
        "kreload exited with {code:?} after SIGTERM"
    );
    let obj = get(&client, &ns, D, "web").await?;
    let want = expected_hash(SourceKind::ConfigMap, &data(&[("k", "2")]));
    ensure!(
        reload_env(D, &obj, &cm("settings")) == Some(want),
        "the admitted change was lost on shutdown:\n{}",
        inst.log_tail()
    );
    Ok(())
}
