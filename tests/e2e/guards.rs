//! What must not reload, and reloading exactly once: metadata-only changes, unreferenced
//! objects, ignore, exclude, workloads that did not opt in, dry runs, writes rejected after
//! kreload allowed them, kreload's own namespace; coalescing; two replicas; same content;
//! and writes still succeeding while kreload is down.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    RuleWithOperations, ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kreload::reload::model::{SourceKind, SourceRef, WorkloadKind};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::reload::{env_instance, wait_indexed};
use crate::support::instance::Instance;
use crate::support::recorder::Recorder;
use crate::support::workloads::{
    self as w, Form, create, create_source, data, expected_hash, generation, get, reload_env,
    update_source, update_source_with,
};
use crate::support::{Env, eventually, namespace, trial};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    vec![
        trial(
            "guards::changes_that_reload_nothing",
            changes_that_reload_nothing,
        ),
        trial(
            "guards::burst_in_window_rolls_once_with_final_hash",
            burst_in_window_rolls_once,
        ),
        trial("guards::two_replicas_roll_once", two_replicas_roll_once),
        trial(
            "guards::back_to_the_same_content_rolls_nothing",
            back_to_same_content,
        ),
        trial(
            "guards::writes_succeed_while_kreload_is_down",
            writes_succeed_while_down,
        ),
    ]
}

const D: WorkloadKind = WorkloadKind::Deployment;

fn auto() -> serde_json::Value {
    json!({"reloader.stakater.com/auto": "true"})
}

async fn deployment(
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

fn cm(name: &str) -> SourceRef {
    SourceRef {
        kind: SourceKind::ConfigMap,
        name: name.into(),
    }
}

/// Changes `control`'s data and waits until its Deployment reloads. The worker handles
/// intents in the order their windows close, so once this reload is done every change
/// made before it has been handled (or was never queued).
async fn sentinel(
    inst: &Instance,
    client: &kube::Client,
    ns: &str,
    control: &str,
    round: &str,
) -> Result<()> {
    update_source(
        client,
        ns,
        SourceKind::ConfigMap,
        control,
        &data(&[("round", round)]),
    )
    .await?;
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
    // Policies take effect asynchronously: probe with an object nothing uses first.
    create_source(&client, &ns, SourceKind::ConfigMap, "vap-probe", &v1, &[]).await?;
    let mut round = 0;
    eventually(
        "the policy to reject updates",
        Duration::from_secs(30),
        || {
            round += 1;
            let probe = data(&[("k", &round.to_string())]);
            let (client, ns) = (client.clone(), ns.clone());
            async move {
                Ok(
                    update_source(&client, &ns, SourceKind::ConfigMap, "vap-probe", &probe)
                        .await
                        .err()
                        .map(|_| ()),
                )
            }
        },
    )
    .await?;
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
    register_denier(&client, &hook_name, &denier, &ns).await?;
    create_source(
        &client,
        &ns,
        SourceKind::ConfigMap,
        "denied-probe",
        &v1,
        &[],
    )
    .await?;
    let mut round = 0;
    eventually(
        "the denying webhook to reject updates",
        Duration::from_secs(30),
        || {
            round += 1;
            let probe = data(&[("k", &round.to_string())]);
            let (client, ns) = (client.clone(), ns.clone());
            async move {
                Ok(
                    update_source(&client, &ns, SourceKind::ConfigMap, "denied-probe", &probe)
                        .await
                        .err()
                        .map(|_| ()),
                )
            }
        },
    )
    .await?;
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

async fn register_denier(
    client: &kube::Client,
    name: &str,
    denier: &Recorder,
    ns: &str,
) -> Result<()> {
    let config = ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        webhooks: Some(vec![ValidatingWebhook {
            name: "deny.e2e.kreload.dev".into(),
            admission_review_versions: vec!["v1".into()],
            side_effects: "None".into(),
            failure_policy: Some("Fail".into()),
            client_config: WebhookClientConfig {
                url: Some(format!("https://{}/deny", denier.addr)),
                ca_bundle: Some(ByteString(denier.ca_pem.clone().into_bytes())),
                service: None,
            },
            rules: Some(vec![RuleWithOperations {
                api_groups: Some(vec!["".into()]),
                api_versions: Some(vec!["v1".into()]),
                resources: Some(vec!["configmaps".into()]),
                operations: Some(vec!["UPDATE".into()]),
                scope: Some("Namespaced".into()),
            }]),
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "kubernetes.io/metadata.name".to_owned(),
                    ns.to_owned(),
                )])),
                ..Default::default()
            }),
            match_conditions: Some(vec![
                k8s_openapi::api::admissionregistration::v1::MatchCondition {
                    name: "only-denied".into(),
                    expression: "object.metadata.name.startsWith('denied')".into(),
                },
            ]),
            ..Default::default()
        }]),
    };
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &config)
        .await?;
    Ok(())
}

async fn replica_sets(client: &kube::Client, ns: &str, app: &str) -> Result<usize> {
    let rs: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    Ok(rs
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await?
        .items
        .len())
}

async fn burst_in_window_rolls_once(env: Arc<Env>) -> Result<()> {
    let inst = env_instance(&env).await?;
    let client = env.client.clone();
    let ns = namespace(&client, "burst", &inst.labels()).await?;
    create_source(
        &client,
        &ns,
        SourceKind::Secret,
        "rotating",
        &data(&[("key", "v0")]),
        &[],
    )
    .await?;
    create_source(
        &client,
        &ns,
        SourceKind::ConfigMap,
        "control",
        &data(&[("round", "0")]),
        &[],
    )
    .await?;
    create(
        &client,
        &ns,
        &w::workload(
            D,
            "api",
            auto(),
            json!({}),
            w::pod_spec(Form::Volume, SourceKind::Secret, "rotating"),
        ),
    )
    .await?;
    deployment(&client, &ns, "control", auto(), "control").await?;
    wait_indexed(&inst, 2).await?;
    eventually("the first ReplicaSet", Duration::from_secs(60), || async {
        Ok((replica_sets(&client, &ns, "api").await? == 1).then_some(()))
    })
    .await?;
    let g0 = generation(&get(&client, &ns, D, "api").await?);
    // Three writes well inside the 2 s window.
    let started = Instant::now();
    for v in ["v1", "v2", "v3"] {
        update_source(
            &client,
            &ns,
            SourceKind::Secret,
            "rotating",
            &data(&[("key", v)]),
        )
        .await?;
    }
    eprintln!("guards: three secret updates took {:?}", started.elapsed());
    let secret = SourceRef {
        kind: SourceKind::Secret,
        name: "rotating".into(),
    };
    let want = expected_hash(SourceKind::Secret, &data(&[("key", "v3")]));
    eventually(
        "the reload with the final hash",
        Duration::from_secs(60),
        || async {
            Ok(
                (reload_env(D, &get(&client, &ns, D, "api").await?, &secret) == Some(want.clone()))
                    .then_some(()),
            )
        },
    )
    .await?;
    sentinel(&inst, &client, &ns, "control", "1").await?;
    let g1 = generation(&get(&client, &ns, D, "api").await?);
    ensure!(
        g1 == g0 + 1,
        "expected one rollout, generation went {g0} → {g1}"
    );
    eventually("the second ReplicaSet", Duration::from_secs(60), || async {
        Ok((replica_sets(&client, &ns, "api").await? == 2).then_some(()))
    })
    .await?;
    ensure!(replica_sets(&client, &ns, "api").await? == 2);
    Ok(())
}

async fn two_replicas_roll_once(env: Arc<Env>) -> Result<()> {
    let client = env.client.clone();
    let flags = ["--coalesce-window=1s"];
    let a = Instance::start(
        &client,
        env.cp.kubeconfig(),
        "replica-a",
        "replicas",
        &flags,
    )
    .await?;
    let b = Instance::start(
        &client,
        env.cp.kubeconfig(),
        "replica-b",
        "replicas",
        &flags,
    )
    .await?;
    let ns = namespace(&client, "replicas", &a.labels()).await?;
    create_source(
        &client,
        &ns,
        SourceKind::ConfigMap,
        "settings",
        &data(&[("k", "1")]),
        &[],
    )
    .await?;
    deployment(&client, &ns, "web", auto(), "settings").await?;
    wait_indexed(&a, 1).await?;
    wait_indexed(&b, 1).await?;
    let g0 = generation(&get(&client, &ns, D, "web").await?);
    update_source(
        &client,
        &ns,
        SourceKind::ConfigMap,
        "settings",
        &data(&[("k", "2")]),
    )
    .await?;
    // Both replicas are called by the API server and both act; wait until each has
    // handled the workload once.
    let (reloaded, already) = eventually(
        "both replicas to handle the change",
        Duration::from_secs(60),
        || async {
            let reloaded = outcome(&a, "reloaded").await? + outcome(&b, "reloaded").await?;
            let already =
                outcome(&a, "already_applied").await? + outcome(&b, "already_applied").await?;
            Ok((reloaded + already >= 2.0).then_some((reloaded, already)))
        },
    )
    .await?;
    eprintln!(
        "guards: replicas reloaded {reloaded} time(s), found it already applied {already} time(s)"
    );
    ensure!(
        reloaded == 1.0,
        "both replicas rolled the workload: reloaded={reloaded}"
    );
    let g1 = generation(&get(&client, &ns, D, "web").await?);
    ensure!(g1 == g0 + 1, "generation {g0} → {g1}");
    Ok(())
}

async fn outcome(inst: &Instance, outcome: &str) -> Result<f64> {
    let filter = format!("outcome=\"{outcome}\"");
    inst.metric("kreload_reloads_total", &["kind=\"Deployment\"", &filter])
        .await
}

async fn back_to_same_content(env: Arc<Env>) -> Result<()> {
    let inst = env_instance(&env).await?;
    let client = env.client.clone();
    let ns = namespace(&client, "same", &inst.labels()).await?;
    let a = data(&[("k", "A")]);
    create_source(&client, &ns, SourceKind::ConfigMap, "flip", &a, &[]).await?;
    create_source(
        &client,
        &ns,
        SourceKind::ConfigMap,
        "control",
        &data(&[("round", "0")]),
        &[],
    )
    .await?;
    deployment(&client, &ns, "web", auto(), "flip").await?;
    deployment(&client, &ns, "control", auto(), "control").await?;
    let created = get(&client, &ns, D, "web").await?;
    ensure!(
        created["metadata"]["annotations"]["kreload.dev/observed"].is_string(),
        "the workload webhook recorded no baseline: {}",
        created["metadata"]
    );
    wait_indexed(&inst, 2).await?;
    let g0 = generation(&created);
    // A → B → A inside one window: the pods already run with A.
    update_source(
        &client,
        &ns,
        SourceKind::ConfigMap,
        "flip",
        &data(&[("k", "B")]),
    )
    .await?;
    update_source(&client, &ns, SourceKind::ConfigMap, "flip", &a).await?;
    sentinel(&inst, &client, &ns, "control", "1").await?;
    let obj = get(&client, &ns, D, "web").await?;
    ensure!(
        generation(&obj) == g0,
        "rolled although the content is what the pods have"
    );
    // And the same hash applied twice: B, wait for the reload, then B again via a
    // write that changes nothing else — no second rollout.
    update_source(
        &client,
        &ns,
        SourceKind::ConfigMap,
        "flip",
        &data(&[("k", "B")]),
    )
    .await?;
    let want = expected_hash(SourceKind::ConfigMap, &data(&[("k", "B")]));
    eventually("the reload to B", Duration::from_secs(60), || async {
        Ok(
            (reload_env(D, &get(&client, &ns, D, "web").await?, &cm("flip")) == Some(want.clone()))
                .then_some(()),
        )
    })
    .await?;
    let g1 = generation(&get(&client, &ns, D, "web").await?);
    ensure!(g1 == g0 + 1);
    update_source(
        &client,
        &ns,
        SourceKind::ConfigMap,
        "flip",
        &data(&[("k", "C")]),
    )
    .await?;
    update_source(
        &client,
        &ns,
        SourceKind::ConfigMap,
        "flip",
        &data(&[("k", "B")]),
    )
    .await?;
    sentinel(&inst, &client, &ns, "control", "2").await?;
    ensure!(
        generation(&get(&client, &ns, D, "web").await?) == g1,
        "the same hash rolled the workload again"
    );
    Ok(())
}

async fn writes_succeed_while_down(env: Arc<Env>) -> Result<()> {
    let client = env.client.clone();
    let mut inst = Instance::start(
        &client,
        env.cp.kubeconfig(),
        "stopped",
        "stopped",
        &["--coalesce-window=1s"],
    )
    .await?;
    let ns = namespace(&client, "down", &inst.labels()).await?;
    create_source(
        &client,
        &ns,
        SourceKind::ConfigMap,
        "settings",
        &data(&[("k", "1")]),
        &[],
    )
    .await?;
    create_source(
        &client,
        &ns,
        SourceKind::Secret,
        "token",
        &data(&[("t", "1")]),
        &[],
    )
    .await?;
    inst.stop();
    // The webhook timeout is 3 s; a write that waited for it would take at least that.
    let timeout = Duration::from_secs(3);
    let started = Instant::now();
    update_source(
        &client,
        &ns,
        SourceKind::ConfigMap,
        "settings",
        &data(&[("k", "2")]),
    )
    .await
    .context("configmap update")?;
    let cm_took = started.elapsed();
    let started = Instant::now();
    update_source(
        &client,
        &ns,
        SourceKind::Secret,
        "token",
        &data(&[("t", "2")]),
    )
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
