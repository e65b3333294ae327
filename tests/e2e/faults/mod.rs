//! Nothing lost under faults (README, "Guarantees"): kreload killed or down while sources
//! change, a full queue, a concurrent writer, a workload deleted while its reload waits, a
//! flapping Secret, and a leader killed mid-burst. Every test asserts the final state of
//! every workload involved: its generation (one per rollout; a metadata record does not
//! count) and the hash it carries. Restarts of kube-apiserver and etcd are in `restarts`,
//! on a control plane of their own.

mod leader;
mod restarts;
mod storm;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use kreload::reload::keys::OBSERVED;
use kreload::reload::model::SourceKind;
use kube::api::{Api, DynamicObject, Patch, PatchParams};

use crate::guards::{D, auto, cm, deployment};
use crate::reload::wait_indexed;
use crate::support::instance::Instance;
use crate::support::workloads::{
    configmap, create_source, data, expected_hash, generation, get, reload_env, update_source,
};
use crate::support::{Env, eventually, namespace, trial};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    vec![
        trial(
            "faults::sigkill_before_the_patch_lands_after_restart",
            sigkill_before_patch,
        ),
        trial(
            "faults::changes_made_while_down_are_resynced_on_start",
            down_while_changing,
        ),
        trial("faults::a_full_queue_is_counted_and_resynced", full_queue),
        trial(
            "faults::a_delete_made_while_down_is_applied_on_start",
            deleted_while_down,
        ),
        trial("faults::a_concurrent_writer_is_retried", concurrent_writer),
        trial(
            "faults::a_workload_deleted_while_queued_is_dropped_quietly",
            deleted_while_queued,
        ),
        trial(
            "faults::a_flapping_secret_rolls_a_bounded_number_of_times",
            storm::flapping_secret,
        ),
        trial(
            "faults::leader_killed_mid_burst_rolls_once_and_loses_nothing",
            leader::killed_mid_burst,
        ),
        restarts::trial(),
    ]
}

/// `count` Deployments `app-<i>`, each reading its own ConfigMap `cfg-<i>` (`v=0`).
pub async fn apps(client: &kube::Client, ns: &str, count: usize) -> Result<()> {
    for i in 0..count {
        configmap(client, ns, &format!("cfg-{i}"), &[("v", "0")]).await?;
        deployment(client, ns, &format!("app-{i}"), auto(), &format!("cfg-{i}")).await?;
    }
    Ok(())
}

/// [`apps`], then waits until `inst` indexed them and each recorded its ConfigMap.
pub async fn ready_apps(
    inst: &Instance,
    client: &kube::Client,
    ns: &str,
    count: usize,
) -> Result<()> {
    apps(client, ns, count).await?;
    wait_indexed(inst, count).await?;
    for i in 0..count {
        wait_observed(client, ns, &format!("app-{i}"), &format!("cfg-{i}")).await?;
    }
    Ok(())
}

/// Sets `cfg-<i>` to `v=<v>` for every `i` below `count`.
pub async fn set_all(client: &kube::Client, ns: &str, count: usize, v: &str) -> Result<()> {
    for i in 0..count {
        set(client, ns, &format!("cfg-{i}"), v).await?;
    }
    Ok(())
}

/// Waits until every `app-<i>` below `count` carries `cfg-<i>` at `v=<v>`.
pub async fn wait_all(client: &kube::Client, ns: &str, count: usize, v: &str) -> Result<()> {
    for i in 0..count {
        wait_hash(client, ns, &format!("app-{i}"), &format!("cfg-{i}"), v).await?;
    }
    Ok(())
}

pub async fn set(client: &kube::Client, ns: &str, name: &str, v: &str) -> Result<()> {
    update_source(client, ns, SourceKind::ConfigMap, name, &data(&[("v", v)])).await
}

/// Waits until Deployment `name` carries the hash of `{v: <v>}` from ConfigMap `source`.
pub async fn wait_hash(
    client: &kube::Client,
    ns: &str,
    name: &str,
    source: &str,
    v: &str,
) -> Result<()> {
    let want = expected_hash(SourceKind::ConfigMap, &data(&[("v", v)]));
    eventually(
        &format!("{name} to carry {source} v={v}"),
        Duration::from_secs(90),
        || async {
            let obj = get(client, ns, D, name).await?;
            Ok((reload_env(D, &obj, &cm(source)) == Some(want.clone())).then_some(()))
        },
    )
    .await
}

/// The Deployment's generation: 1 at creation, one more per rollout (and per metadata
/// annotation write: Deployments count those too).
pub async fn gen_of(client: &kube::Client, ns: &str, name: &str) -> Result<i64> {
    Ok(generation(&get(client, ns, D, name).await?))
}

/// Waits until `name` records `source` in `kreload.dev/observed` (a metadata record, no
/// rollout), so a change made next is measured against a known baseline.
pub async fn wait_observed(
    client: &kube::Client,
    ns: &str,
    name: &str,
    source: &str,
) -> Result<()> {
    wait_observed_kind(client, ns, name, &format!("configmap/{source}")).await
}

/// Like [`wait_observed`] for a source written `kind/name`.
pub async fn wait_observed_kind(
    client: &kube::Client,
    ns: &str,
    name: &str,
    source: &str,
) -> Result<()> {
    eventually(
        &format!("{name} to record {source}"),
        Duration::from_secs(60),
        || async {
            let obj = get(client, ns, D, name).await?;
            let observed = obj["metadata"]["annotations"][OBSERVED]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            Ok(observed.contains(&format!("\"{source}\"")).then_some(()))
        },
    )
    .await
}

/// kreload SIGKILLed while a change waits in its (long) coalescing window: the change is
/// applied by the resync when kreload starts again, with one rollout; a workload whose
/// source did not change does not roll.
async fn sigkill_before_patch(env: Arc<Env>) -> Result<()> {
    let client = env.client.clone();
    let kc = env.kreload_kubeconfig.as_path();
    let mut first = Instance::start(
        &client,
        kc,
        "sigkill-a",
        "sigkill",
        &["--coalesce-window=60s"],
    )
    .await?;
    let ns = namespace(&client, "sigkill", &first.labels()).await?;
    ready_apps(&first, &client, &ns, 2).await?;
    set(&client, &ns, "cfg-0", "1").await?;
    eventually(
        "the change to be admitted",
        Duration::from_secs(30),
        || async {
            Ok((first.metric("kreload_intents_enqueued_total", &[]).await? >= 1.0).then_some(()))
        },
    )
    .await?;
    first.stop();
    ensure!(
        gen_of(&client, &ns, "app-0").await? == 1,
        "rolled before the kill"
    );
    let second = Instance::start(
        &client,
        kc,
        "sigkill-b",
        "sigkill",
        &["--coalesce-window=1s"],
    )
    .await?;
    wait_hash(&client, &ns, "app-0", "cfg-0", "1").await?;
    eventually("a resync pass", Duration::from_secs(60), || async {
        Ok((second.metric("kreload_resync_passes_total", &[]).await? >= 1.0).then_some(()))
    })
    .await?;
    ensure!(
        gen_of(&client, &ns, "app-0").await? == 2,
        "app-0 should roll exactly once"
    );
    ensure!(
        gen_of(&client, &ns, "app-1").await? == 1,
        "app-1 rolled without a change"
    );
    Ok(())
}

/// kreload down while 100 changes are made (25 ConfigMaps, 4 writes each): all recovered
/// by the resync on start, each workload rolled once with its final content; a workload
/// whose source did not change does not roll.
async fn down_while_changing(env: Arc<Env>) -> Result<()> {
    let client = env.client.clone();
    let kc = env.kreload_kubeconfig.as_path();
    let mut first =
        Instance::start(&client, kc, "down-a", "down100", &["--coalesce-window=1s"]).await?;
    let ns = namespace(&client, "down100", &first.labels()).await?;
    let n = 25;
    ready_apps(&first, &client, &ns, n + 1).await?;
    // A source marked ignore: the resync respects the rules too.
    let ignore = [("reloader.stakater.com/ignore", "true")];
    create_source(
        &client,
        &ns,
        SourceKind::ConfigMap,
        "quiet",
        &data(&[("v", "0")]),
        &ignore,
    )
    .await?;
    deployment(&client, &ns, "ignored", auto(), "quiet").await?;
    wait_observed(&client, &ns, "ignored", "quiet").await?;
    first.stop();
    set(&client, &ns, "quiet", "1").await?;
    let mut changes = 0;
    for round in 1..=4 {
        for i in 0..n {
            set(&client, &ns, &format!("cfg-{i}"), &round.to_string()).await?;
            changes += 1;
        }
    }
    ensure!(changes == 100);
    let second =
        Instance::start(&client, kc, "down-b", "down100", &["--coalesce-window=1s"]).await?;
    wait_all(&client, &ns, n, "4").await?;
    eventually("a resync pass", Duration::from_secs(60), || async {
        Ok((second.metric("kreload_resync_passes_total", &[]).await? >= 1.0).then_some(()))
    })
    .await?;
    for i in 0..n {
        let g = gen_of(&client, &ns, &format!("app-{i}")).await?;
        ensure!(g == 2, "app-{i}: generation {g}, expected one rollout");
    }
    ensure!(
        gen_of(&client, &ns, &format!("app-{n}")).await? == 1,
        "the unchanged workload rolled"
    );
    ensure!(
        gen_of(&client, &ns, "ignored").await? == 1,
        "a change of an ignored source rolled its workload"
    );
    Ok(())
}

/// `--queue-capacity=1`: changes arriving while the queue is full are dropped and counted,
/// and the periodic resync applies every one of them.
async fn full_queue(env: Arc<Env>) -> Result<()> {
    let client = env.client.clone();
    let flags = [
        "--queue-capacity=1",
        "--coalesce-window=3s",
        "--resync-period=5s",
    ];
    let inst = Instance::start(&client, &env.kreload_kubeconfig, "fullq", "fullq", &flags).await?;
    let ns = namespace(&client, "fullq", &inst.labels()).await?;
    let n = 8;
    ready_apps(&inst, &client, &ns, n).await?;
    set_all(&client, &ns, n, "1").await?;
    let dropped = inst
        .metric("kreload_intents_dropped_total", &["queue_full"])
        .await?;
    ensure!(dropped >= 1.0, "no drop counted: {dropped}");
    for i in 0..n {
        wait_hash(&client, &ns, &format!("app-{i}"), &format!("cfg-{i}"), "1").await?;
        let g = gen_of(&client, &ns, &format!("app-{i}")).await?;
        ensure!(g == 2, "app-{i}: generation {g}, expected one rollout");
    }
    eprintln!("faults: full queue dropped {dropped} change(s); the resync applied all");
    Ok(())
}

/// Another writer changes the Deployment while kreload patches it (409s and failed
/// resourceVersion tests): kreload retries, and both writers' changes are there in the end.
async fn concurrent_writer(env: Arc<Env>) -> Result<()> {
    let client = env.client.clone();
    // The periodic resync is the backstop should every retry meet a conflict.
    let flags = ["--coalesce-window=1s", "--resync-period=10s"];
    let inst = Instance::start(
        &client,
        &env.kreload_kubeconfig,
        "conflict",
        "conflict",
        &flags,
    )
    .await?;
    let ns = namespace(&client, "conflict", &inst.labels()).await?;
    ready_apps(&inst, &client, &ns, 1).await?;
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns,
        &kreload::kube::workloads::api_resource(D),
    );
    set(&client, &ns, "cfg-0", "1").await?;
    // Write the Deployment's metadata every 20 ms through the window and the patch.
    let mut last = 0u32;
    for i in 0..100u32 {
        let patch =
            serde_json::json!({"metadata": {"annotations": {"writer/round": i.to_string()}}});
        api.patch("app-0", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .context("writer")?;
        last = i;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_hash(&client, &ns, "app-0", "cfg-0", "1").await?;
    let obj = get(&client, &ns, D, "app-0").await?;
    ensure!(
        obj["metadata"]["annotations"]["writer/round"] == last.to_string().as_str(),
        "the writer's change was lost"
    );
    // Deployments count every metadata annotation write in their generation: creation (1),
    // the writer's writes, and kreload's one reload patch. A second reload would add one.
    // (ReplicaSets are not counted here: the writer's flood backs off the Deployment
    // controller's retries for longer than a test waits.)
    let writes = i64::from(last) + 1;
    let g = generation(&obj);
    ensure!(
        g == 2 + writes,
        "generation {g} after {writes} writes: expected one reload patch"
    );
    let failed = inst
        .metric("kreload_reloads_total", &["outcome=\"failed\""])
        .await?;
    eprintln!(
        "faults: concurrent writer: {} reload(s) failed and were recovered",
        failed.abs()
    );
    Ok(())
}

/// A workload deleted while its reload waits in the window: no error, no Event, nothing
/// recreated, and kreload goes on reloading others.
async fn deleted_while_queued(env: Arc<Env>) -> Result<()> {
    let client = env.client.clone();
    let inst = Instance::start(
        &client,
        &env.kreload_kubeconfig,
        "deleted",
        "deleted",
        &["--coalesce-window=5s"],
    )
    .await?;
    let ns = namespace(&client, "deleted", &inst.labels()).await?;
    apps(&client, &ns, 2).await?;
    wait_indexed(&inst, 2).await?;
    set(&client, &ns, "cfg-0", "1").await?;
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns,
        &kreload::kube::workloads::api_resource(D),
    );
    api.delete("app-0", &Default::default()).await?;
    set(&client, &ns, "cfg-1", "1").await?;
    wait_hash(&client, &ns, "app-1", "cfg-1", "1").await?;
    ensure!(gen_of(&client, &ns, "app-1").await? == 2);
    ensure!(
        api.get_opt("app-0").await?.is_none(),
        "the deleted workload came back"
    );
    let failed = inst
        .metric("kreload_reloads_total", &["outcome=\"failed\""])
        .await?;
    ensure!(failed == 0.0, "a reload failed:\n{}", inst.log_tail());
    Ok(())
}

/// With `--reload-on-delete`, a source deleted while kreload was down: the resync on start
/// removes its variable (one rollout), as the admitted delete would have.
async fn deleted_while_down(env: Arc<Env>) -> Result<()> {
    let client = env.client.clone();
    let kc = env.kreload_kubeconfig.as_path();
    let flags = ["--coalesce-window=1s", "--reload-on-delete"];
    let mut first = Instance::start(&client, kc, "deldown-a", "deldown", &flags).await?;
    let ns = namespace(&client, "deldown", &first.labels()).await?;
    ready_apps(&first, &client, &ns, 1).await?;
    set(&client, &ns, "cfg-0", "1").await?;
    wait_hash(&client, &ns, "app-0", "cfg-0", "1").await?;
    first.stop();
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), &ns)
        .delete("cfg-0", &Default::default())
        .await?;
    let _second = Instance::start(&client, kc, "deldown-b", "deldown", &flags).await?;
    eventually(
        "the variable to be removed",
        Duration::from_secs(60),
        || async {
            let obj = get(&client, &ns, D, "app-0").await?;
            Ok(reload_env(D, &obj, &cm("cfg-0")).is_none().then_some(()))
        },
    )
    .await?;
    let g = gen_of(&client, &ns, "app-0").await?;
    ensure!(
        g == 3,
        "generation {g}: expected the reload and the delete's reload"
    );
    Ok(())
}
