//! Two replicas with leader election; the leader is killed (SIGKILL) in the middle of a
//! burst. Both replicas are called by the API server and both patch (idempotently); the
//! survivor takes the Lease and resyncs. Every workload rolls exactly once, with the
//! final content. The survivor, stopped with SIGTERM, releases the Lease.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

use super::{gen_of, ready_apps, set_all, wait_all};
use crate::reload::wait_indexed;
use crate::support::instance::Instance;
use crate::support::{Env, eventually, namespace};

pub async fn killed_mid_burst(env: Arc<Env>) -> Result<()> {
    let client = env.client.clone();
    let kc = env.kreload_kubeconfig.as_path();
    // Where the shipped RBAC lets kreload's ServiceAccount use Leases.
    let lease_ns = "kreload";
    let lease_flag = format!("--lease-namespace={lease_ns}");
    let flags = [
        "--coalesce-window=5s",
        "--enable-ha",
        "--lease-name=faults-leader",
        lease_flag.as_str(),
        "--lease-duration=4s",
        "--lease-grace=1s",
    ];
    let a = Instance::start(&client, kc, "ha-a", "ha", &flags).await?;
    let b = Instance::start(&client, kc, "ha-b", "ha", &flags).await?;
    let ns = namespace(&client, "ha", &a.labels()).await?;
    let n = 10;
    ready_apps(&a, &client, &ns, n).await?;
    wait_indexed(&b, n).await?;
    let leading = |inst: &Instance| {
        let admin = inst.admin;
        async move {
            let text = kreload_testenv::registration::admin_get(admin, "/metrics")
                .await
                .context("kreload's /metrics")?;
            anyhow::Ok(text.lines().any(|l| l == "kreload_leader 1"))
        }
    };
    let a_leads = eventually("a leader", Duration::from_secs(30), || async {
        let (la, lb) = (leading(&a).await?, leading(&b).await?);
        ensure!(!(la && lb), "both replicas lead");
        Ok((la || lb).then_some(la))
    })
    .await?;
    let (mut leader, mut follower) = if a_leads { (a, b) } else { (b, a) };
    // The burst: a first write to every source, the leader killed, a second write to every
    // source — all inside one coalescing window.
    set_all(&client, &ns, n, "1").await?;
    leader.stop();
    set_all(&client, &ns, n, "2").await?;
    wait_all(&client, &ns, n, "2").await?;
    eventually(
        "the survivor to lead and resync",
        Duration::from_secs(60),
        || async {
            let leads = leading(&follower).await?;
            let passes = follower.metric("kreload_resync_passes_total", &[]).await?;
            Ok((leads && passes >= 1.0).then_some(()))
        },
    )
    .await?;
    let lease = Api::<Lease>::namespaced(client.clone(), lease_ns)
        .get("faults-leader")
        .await
        .context("the Lease")?;
    let holder = lease
        .spec
        .and_then(|s| s.holder_identity)
        .unwrap_or_default();
    ensure!(!holder.is_empty(), "the Lease has no holder");
    for i in 0..n {
        let g = gen_of(&client, &ns, &format!("app-{i}")).await?;
        ensure!(
            g == 2,
            "app-{i}: generation {g}, expected exactly one rollout"
        );
    }
    // A leader stopped with SIGTERM hands the Lease back, so a standby need not wait for
    // it to expire.
    let code = follower.terminate(Duration::from_secs(30)).await?;
    ensure!(code == Some(0), "kreload exited with {code:?}");
    let lease = Api::<Lease>::namespaced(client.clone(), lease_ns)
        .get("faults-leader")
        .await?;
    let holder = lease.spec.and_then(|s| s.holder_identity);
    ensure!(
        holder.is_none(),
        "the Lease is still held by {holder:?} after SIGTERM"
    );
    Ok(())
}
