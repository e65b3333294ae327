//! `deployment.P/pause-period` against a real kube-controller-manager: a reload pauses the
//! rollout, later changes join the paused template, and kreload resumes it once the period
//! is over — exactly one new ReplicaSet. A Deployment paused by hand stays paused, and a
//! restarted kreload resumes what the previous one paused.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::events::v1::Event;
use kreload::reload::model::{SourceKind, SourceRef, WorkloadKind};
use kreload::reload::patch::env_var_name;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::reload::wait_indexed;
use crate::support::instance::Instance;
use crate::support::workloads::update_configmap;
use crate::support::workloads::{
    self as w, Form, configmap, create, data, expected_hash, get, reload_env,
};
use crate::support::{Env, eventually, namespace, trial};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    vec![
        trial(
            "pause::changes_join_the_paused_rollout_which_resumes_once",
            changes_join_the_paused_rollout,
        ),
        trial(
            "pause::a_restarted_kreload_resumes_what_it_paused",
            restarted_kreload_resumes,
        ),
    ]
}

const D: WorkloadKind = WorkloadKind::Deployment;
const PERIOD: &str = "deployment.reloader.stakater.com/pause-period";
const PAUSED_AT: &str = "deployment.reloader.stakater.com/paused-at";
const TIMEOUT: Duration = Duration::from_secs(60);

fn settings() -> SourceRef {
    SourceRef {
        kind: SourceKind::ConfigMap,
        name: "settings".into(),
    }
}

async fn deployment(client: &kube::Client, ns: &str, name: &str, annotations: Value) -> Result<()> {
    create(
        client,
        ns,
        &w::workload(
            D,
            name,
            annotations,
            json!({}),
            w::pod_spec(Form::EnvFrom, SourceKind::ConfigMap, "settings"),
        ),
    )
    .await
}

fn paused(obj: &Value) -> bool {
    obj["spec"]["paused"].as_bool().unwrap_or(false)
}

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj["metadata"]["annotations"][key].as_str()
}

/// The ReplicaSets of Deployment `app`, with the value of kreload's variable in each.
async fn replica_sets(client: &kube::Client, ns: &str, app: &str) -> Result<Vec<Option<String>>> {
    let var = env_var_name(&settings());
    let list = Api::<ReplicaSet>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await?;
    Ok(list
        .items
        .iter()
        .map(|rs| {
            let rs = serde_json::to_value(rs).unwrap_or_default();
            rs["spec"]["template"]["spec"]["containers"][0]["env"]
                .as_array()
                .and_then(|env| env.iter().find(|e| e["name"] == var.as_str()))
                .and_then(|e| e["value"].as_str().map(str::to_owned))
        })
        .collect())
}

async fn wait_replica_sets(client: &kube::Client, ns: &str, app: &str, n: usize) -> Result<()> {
    eventually(&format!("{n} ReplicaSet(s) of {app}"), TIMEOUT, || async {
        Ok((replica_sets(client, ns, app).await?.len() == n).then_some(()))
    })
    .await
}

async fn set_paused(client: &kube::Client, ns: &str, name: &str, paused: bool) -> Result<()> {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": paused}})),
        )
        .await?;
    Ok(())
}

/// Waits until `name` reflects `content` in its template and returns the object.
async fn wait_reloaded(
    client: &kube::Client,
    ns: &str,
    name: &str,
    content: &[(&str, &str)],
) -> Result<Value> {
    let want = expected_hash(SourceKind::ConfigMap, &data(content));
    eventually(&format!("{name} to reload"), TIMEOUT, || async {
        let obj = get(client, ns, D, name).await?;
        Ok((reload_env(D, &obj, &settings()) == Some(want.clone())).then_some(obj))
    })
    .await
}

fn paused_at(obj: &Value, key: &str) -> Result<Timestamp> {
    annotation(obj, key)
        .with_context(|| format!("no {key}"))?
        .parse()
        .context("paused-at is not RFC 3339")
}

async fn changes_join_the_paused_rollout(env: Arc<Env>) -> Result<()> {
    let inst = env.kreload("pause", &["--coalesce-window=1s"]).await?;
    let client = env.client.clone();
    let ns = namespace(&client, "pause", &inst.labels()).await?;
    configmap(&client, &ns, "settings", &[("k", "1")]).await?;
    let period = 10;
    let auto = |pause: &str| json!({"reloader.stakater.com/auto": "true", PERIOD: pause});
    deployment(&client, &ns, "web", auto(&format!("{period}s"))).await?;
    deployment(&client, &ns, "manual", auto("1s")).await?;
    deployment(&client, &ns, "invalid", auto("5 minutes")).await?;
    wait_indexed(&inst, 3).await?;
    for name in ["web", "manual", "invalid"] {
        wait_replica_sets(&client, &ns, name, 1).await?;
    }
    // Paused by hand: no paused-at, so never kreload's to resume.
    set_paused(&client, &ns, "manual", true).await?;

    update_configmap(&client, &ns, "settings", &[("k", "2")]).await?;
    let web = wait_reloaded(&client, &ns, "web", &[("k", "2")])
        .await
        .with_context(|| inst.log_tail())?;
    ensure!(paused(&web), "the reload did not pause web");
    let started = paused_at(&web, PAUSED_AT)?;
    let until = started + jiff::SignedDuration::from_secs(period);

    // A second change inside the window lands in the paused template.
    update_configmap(&client, &ns, "settings", &[("k", "3")]).await?;
    let web = wait_reloaded(&client, &ns, "web", &[("k", "3")]).await?;
    ensure!(
        Timestamp::now() < until,
        "the second reload came after the window; the test could not check it"
    );
    ensure!(paused(&web), "web was resumed early");
    ensure!(
        paused_at(&web, PAUSED_AT)? == started,
        "the second reload moved paused-at"
    );
    ensure!(
        replica_sets(&client, &ns, "web").await?.len() == 1,
        "web rolled while paused"
    );

    // Invalid period: reloaded, never paused.
    let invalid = wait_reloaded(&client, &ns, "invalid", &[("k", "3")]).await?;
    ensure!(!paused(&invalid) && annotation(&invalid, PAUSED_AT).is_none());

    // After the window: resumed, and exactly one new ReplicaSet with the final content.
    let web = eventually("web to be resumed", TIMEOUT, || async {
        let obj = get(&client, &ns, D, "web").await?;
        Ok((!paused(&obj)).then_some(obj))
    })
    .await
    .with_context(|| inst.log_tail())?;
    ensure!(
        Timestamp::now() >= until,
        "resumed before the pause period ended"
    );
    ensure!(
        annotation(&web, PAUSED_AT).is_none(),
        "paused-at left behind"
    );
    wait_replica_sets(&client, &ns, "web", 2).await?;
    let v3 = expected_hash(SourceKind::ConfigMap, &data(&[("k", "3")]));
    let sets = replica_sets(&client, &ns, "web").await?;
    ensure!(
        sets.contains(&Some(v3.clone()))
            && !sets.iter().any(|v| v.is_some() && *v != Some(v3.clone())),
        "the rollout does not carry exactly the final content: {sets:?}"
    );
    let events = Api::<Event>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await?;
    ensure!(
        events
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("Resumed")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("web")),
        "no Resumed event for web"
    );

    // The hand-paused one got the change in its template, and is still paused, well after
    // its own 1s period and a resume scan.
    let manual = wait_reloaded(&client, &ns, "manual", &[("k", "3")]).await?;
    ensure!(
        paused(&manual),
        "kreload resumed a Deployment paused by hand"
    );
    ensure!(
        annotation(&manual, PAUSED_AT).is_none(),
        "kreload claimed a Deployment paused by hand"
    );
    ensure!(replica_sets(&client, &ns, "manual").await?.len() == 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    ensure!(
        replica_sets(&client, &ns, "web").await?.len() == 2,
        "more than one rollout after the pause"
    );
    Ok(())
}

async fn restarted_kreload_resumes(env: Arc<Env>) -> Result<()> {
    let client = env.client.clone();
    // Each test instance acts only in namespaces carrying its label, so while the first one
    // is down nothing else may resume this Deployment.
    // Under --auto-reload-all the index counts every workload of the cluster, so this test
    // cannot wait for web to be indexed; a write racing the watch that indexes web is
    // applied by the periodic resync instead.
    let flags = [
        "--coalesce-window=1s",
        "--auto-reload-all",
        "--resync-period=2s",
    ];
    let label = "pause-restart";
    let mut first =
        Instance::start(&client, &env.kreload_kubeconfig, "pause-a", label, &flags).await?;
    let ns = namespace(&client, "pause-restart", &first.labels()).await?;
    configmap(&client, &ns, "settings", &[("k", "1")]).await?;
    // kreload's own vocabulary this time.
    let key = "deployment.kreload.dev/paused-at";
    deployment(
        &client,
        &ns,
        "web",
        json!({"deployment.kreload.dev/pause-period": "5s"}),
    )
    .await?;
    // The index counts every workload here; the first ReplicaSet takes longer than the
    // watch event that indexes web.
    wait_replica_sets(&client, &ns, "web", 1).await?;
    update_configmap(&client, &ns, "settings", &[("k", "2")]).await?;
    let web = wait_reloaded(&client, &ns, "web", &[("k", "2")])
        .await
        .with_context(|| first.log_tail())?;
    ensure!(paused(&web), "the reload did not pause web");
    let until = paused_at(&web, key)? + jiff::SignedDuration::from_secs(5);
    // Gone before its timer fires.
    first.stop();

    let wait = until.duration_since(Timestamp::now()) + jiff::SignedDuration::from_secs(1);
    tokio::time::sleep(Duration::try_from(wait).unwrap_or_default()).await;
    let web = get(&client, &ns, D, "web").await?;
    ensure!(paused(&web), "resumed with no kreload running");
    ensure!(replica_sets(&client, &ns, "web").await?.len() == 1);

    let second =
        Instance::start(&client, &env.kreload_kubeconfig, "pause-b", label, &flags).await?;
    let web = eventually("the new kreload to resume web", TIMEOUT, || async {
        let obj = get(&client, &ns, D, "web").await?;
        Ok((!paused(&obj)).then_some(obj))
    })
    .await
    .with_context(|| second.log_tail())?;
    ensure!(annotation(&web, key).is_none(), "paused-at left behind");
    wait_replica_sets(&client, &ns, "web", 2).await?;
    Ok(())
}
