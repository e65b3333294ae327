//! What must not reload, and reloading exactly once: metadata-only changes, unreferenced
//! objects, ignore, exclude, workloads that did not opt in, dry runs, writes rejected after
//! kreload allowed them, kreload's own namespace; coalescing; two replicas; same content;
//! and writes still succeeding while kreload is down.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::ConfigMap;
use kreload::reload::model::{SourceKind, SourceRef, WorkloadKind};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

use crate::reload::{env_instance, wait_indexed};
use crate::support::instance::Instance;
use crate::support::recorder::Recorder;
use crate::support::workloads::update_configmap;
use crate::support::workloads::{
    self as w, Form, configmap, create, create_source, data, expected_hash, generation, get,
    reload_env, update_source, update_source_with,
};
use crate::support::{Env, eventually, namespace, trial};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    vec![
        trial(
            "guards::changes_that_reload_nothing",
            changes_that_reload_nothing,
        ),
        trial(
            "guards::stored_write_before_a_rejected_one_still_reloads",
            stored_then_rejected,
        ),
        trial(
            "guards::a_change_right_after_the_workload_is_created_reloads",
            change_right_after_create,
        ),
    ]
}

/// A ConfigMap changed the moment its workload is created, before the workload's watch
/// event can have reached kreload: the workload webhook's admission already counts for the
/// namespace, so the change is not skipped for want of candidates (it was, at times, and
/// then only the resync would have caught it). Forty namespaces at once, with no wait for
/// the index: before the fix one run in two lost at least one of them, on an idle machine.
async fn change_right_after_create(env: Arc<Env>) -> Result<()> {
    let inst = env_instance(&env).await?;
    let client = env.client.clone();
    let cases = (0..40).map(|_| {
        let (client, labels) = (client.clone(), inst.labels());
        async move {
            let ns = namespace(&client, "right-after", &labels).await?;
            configmap(&client, &ns, "settings", &[("k", "1")]).await?;
            deployment(&client, &ns, "web", auto(), "settings").await?;
            update_configmap(&client, &ns, "settings", &[("k", "2")]).await?;
            let want = expected_hash(SourceKind::ConfigMap, &data(&[("k", "2")]));
            eventually(
                &format!("web in {ns} to reload"),
                Duration::from_secs(30),
                || async {
                    let obj = get(&client, &ns, D, "web").await?;
                    Ok((reload_env(D, &obj, &cm("settings")) == Some(want.clone())).then_some(()))
                },
            )
            .await
        }
    });
    futures::future::try_join_all(cases)
        .await
        .with_context(|| inst.log_tail())?;
    Ok(())
}

/// Inside one window: a write that is stored, then one that kreload admits but another
/// webhook rejects. The intent carries the rejected content, yet the stored change must
/// still reach the workload.
async fn stored_then_rejected(env: Arc<Env>) -> Result<()> {
    let inst = env_instance(&env).await?;
    let client = env.client.clone();
    let ns = namespace(&client, "stored-rejected", &inst.labels()).await?;
    configmap(&client, &ns, "settings", &[("k", "1")]).await?;
    configmap(&client, &ns, "probe", &[("k", "0")]).await?;
    deployment(&client, &ns, "web", auto(), "settings").await?;
    wait_indexed(&inst, 1).await?;
    let denier = Recorder::start_answering(false).await?;
    let hook_name = format!("deny-{ns}");
    let bad_only = "has(object.data) && 'k' in object.data && object.data['k'] == 'bad'";
    denier
        .register(&client, &hook_name, &ns, Some(bad_only))
        .await?;
    eventually(
        "the webhook to reject bad data",
        Duration::from_secs(30),
        || async {
            let rejected = update_configmap(&client, &ns, "probe", &[("k", "bad")])
                .await
                .is_err();
            Ok(rejected.then_some(()))
        },
    )
    .await?;
    update_configmap(&client, &ns, "settings", &[("k", "2")]).await?;
    ensure!(
        update_configmap(&client, &ns, "settings", &[("k", "bad")])
            .await
            .is_err(),
        "the bad write was stored"
    );
    let want = expected_hash(SourceKind::ConfigMap, &data(&[("k", "2")]));
    let result = eventually(
        "the stored content to reload the workload",
        Duration::from_secs(30),
        || async {
            Ok(
                (reload_env(D, &get(&client, &ns, D, "web").await?, &cm("settings"))
                    == Some(want.clone()))
                .then_some(()),
            )
        },
    )
    .await;
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .delete(&hook_name, &DeleteParams::default())
        .await?;
    result.with_context(|| inst.log_tail())
}

pub const D: WorkloadKind = WorkloadKind::Deployment;

pub fn auto() -> serde_json::Value {
    json!({"reloader.stakater.com/auto": "true"})
}

pub async fn deployment(
    client: &kube::Client,
    ns: &str,
    name: &str,
    annotations: serde_json::Value,
    cm: &str,
) -> Result<()> {
    create(
        client,
        ns,
        &w::workload(
            D,
            name,
            annotations,
            json!({}),
            w::pod_spec(Form::EnvFrom, SourceKind::ConfigMap, cm),
        ),
    )
    .await
}

pub fn cm(name: &str) -> SourceRef {
    SourceRef {
        kind: SourceKind::ConfigMap,
        name: name.into(),
    }
}

/// Changes `control`'s data and waits until its Deployment reloads. The worker handles
/// intents in the order their windows close, so once this reload is done every change
/// made before it has been handled (or was never queued).
pub async fn sentinel(
    inst: &Instance,
    client: &kube::Client,
    ns: &str,
    control: &str,
    round: &str,
) -> Result<()> {
    update_configmap(client, ns, control, &[("round", round)]).await?;
    let live = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get(control)
        .await?;
    let want = expected_hash(SourceKind::ConfigMap, &live.data.unwrap_or_default());
    eventually(
        "the control workload to reload",
        Duration::from_secs(60),
        || async {
            Ok(
                (reload_env(D, &get(client, ns, D, control).await?, &cm(control))
                    == Some(want.clone()))
                .then_some(()),
            )
        },
    )
    .await
    .with_context(|| format!("kreload log:\n{}", inst.log_tail()))
}

async fn changes_that_reload_nothing(env: Arc<Env>) -> Result<()> {
    let inst = env_instance(&env).await?;
    let client = env.client.clone();
    let ns = namespace(&client, "guards", &inst.labels()).await?;
    // kreload runs with --own-namespace=kreload-home-e2e; that namespace is routed to it
    // by its label, yet nothing there may reload.
    let home = "kreload-home-e2e";
    crate::support::named_namespace(&client, home, &inst.labels()).await?;
    let v1 = data(&[("k", "1")]);
    let v2 = data(&[("k", "2")]);
    for name in [
        "meta", "used", "unused", "ignored", "excluded", "plain", "dry", "vap", "denied", "control",
    ] {
        let annotations: &[(&str, &str)] = match name {
            "ignored" => &[("reloader.stakater.com/ignore", "true")],
            _ => &[],
        };
        create_source(&client, &ns, SourceKind::ConfigMap, name, &v1, annotations).await?;
    }
    create_source(&client, home, SourceKind::ConfigMap, "home", &v1, &[]).await?;
    let deployments = [
        ("meta", auto(), "meta"),
        ("unreferenced", auto(), "used"),
        ("ignored", auto(), "ignored"),
        (
            "excluded",
            json!({"reloader.stakater.com/auto": "true", "configmaps.exclude.reloader.stakater.com/reload": "other, excluded"}),
            "excluded",
        ),
        ("plain", json!({}), "plain"),
        ("dry", auto(), "dry"),
        ("vap", auto(), "vap"),
        ("denied", auto(), "denied"),
        ("control", auto(), "control"),
    ];
    for (name, annotations, source) in &deployments {
        deployment(&client, &ns, name, annotations.clone(), source).await?;
    }
    deployment(&client, home, "home", auto(), "home").await?;
    wait_indexed(&inst, deployments.len()).await?;
    let mut before = BTreeMap::new();
    for (name, _, _) in &deployments {
        before.insert(*name, generation(&get(&client, &ns, D, name).await?));
    }
    let home_generation = generation(&get(&client, home, D, "home").await?);

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    // Metadata only.
    cms.patch(
        "meta",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}, "annotations": {"note": "n"}}})),
    )
    .await?;
    // Auto, but the changed object is not the one the pod uses.
    update_source(&client, &ns, SourceKind::ConfigMap, "unused", &v2).await?;
    update_source(&client, &ns, SourceKind::ConfigMap, "ignored", &v2).await?;
    update_source(&client, &ns, SourceKind::ConfigMap, "excluded", &v2).await?;
    update_source(&client, &ns, SourceKind::ConfigMap, "plain", &v2).await?;
    update_source_with(
        &client,
        &ns,
        SourceKind::ConfigMap,
        "dry",
        &v2,
        &PatchParams {
            dry_run: true,
            ..Default::default()
        },
    )
    .await?;
    ensure!(
        cms.get("dry").await?.data == Some(v1.clone()),
        "dry run changed the object"
    );
    update_source(&client, home, SourceKind::ConfigMap, "home", &v2).await?;

    // Rejected by a ValidatingAdmissionPolicy.
    let vap = crate::support::policy::deny_configmap_updates(&client, &ns, "vap").await?;
    wait_rejecting(&client, &ns, "vap-probe", "the policy").await?;
    let rejected = update_source(&client, &ns, SourceKind::ConfigMap, "vap", &v2)
        .await
        .err()
        .context("the policy let the update through")?;
    eprintln!(
        "guards: policy rejected the update: {}",
        rejected
            .root_cause()
            .to_string()
            .chars()
            .take(160)
            .collect::<String>()
    );
    ensure!(cms.get("vap").await?.data == Some(v1.clone()));

    // Rejected by another validating webhook that kreload runs beside: kreload is called
    // and allows, the write is denied anyway, and the worker must find it not persisted.
    let dropped_before = inst
        .metric("kreload_intents_dropped_total", &["not_persisted"])
        .await?;
    let denier = Recorder::start_answering(false).await?;
    let hook_name = format!("deny-{ns}");
    let only_denied = "object.metadata.name.startsWith('denied')";
    denier
        .register(&client, &hook_name, &ns, Some(only_denied))
        .await?;
    wait_rejecting(&client, &ns, "denied-probe", "the denying webhook").await?;
    update_source(&client, &ns, SourceKind::ConfigMap, "denied", &v2)
        .await
        .err()
        .context("the webhook let the update through")?;
    ensure!(cms.get("denied").await?.data == Some(v1.clone()));
    eventually(
        "kreload to find the denied write not persisted",
        Duration::from_secs(30),
        || async {
            let now = inst
                .metric("kreload_intents_dropped_total", &["not_persisted"])
                .await?;
            Ok((now > dropped_before).then_some(()))
        },
    )
    .await?;
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .delete(&hook_name, &DeleteParams::default())
        .await?;
    drop(vap);

    sentinel(&inst, &client, &ns, "control", "1").await?;
    for (name, _, _) in &deployments {
        if *name == "control" {
            continue;
        }
        let obj = get(&client, &ns, D, name).await?;
        ensure!(
            generation(&obj) == before[name],
            "{name} was rolled (generation {} → {})",
            before[name],
            generation(&obj)
        );
        let env = w::template(D, &obj)["spec"]["containers"][0]["env"].clone();
        ensure!(env.is_null(), "{name} got env {env}");
    }
    ensure!(
        generation(&get(&client, home, D, "home").await?) == home_generation,
        "kreload's own namespace was reloaded"
    );
    Ok(())
}

/// Admission rules take effect asynchronously. Updates a ConfigMap nothing uses until an
/// update is rejected, so the update that matters is known to meet the rule.
async fn wait_rejecting(client: &kube::Client, ns: &str, probe: &str, what: &str) -> Result<()> {
    create_source(
        client,
        ns,
        SourceKind::ConfigMap,
        probe,
        &data(&[("k", "0")]),
        &[],
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    for round in 1.. {
        let value = data(&[("k", &round.to_string())]);
        if update_source(client, ns, SourceKind::ConfigMap, probe, &value)
            .await
            .is_err()
        {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{what} rejected nothing within 30s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
