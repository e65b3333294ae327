//! The shipped RBAC is exactly enough. Every instance in this suite already runs as the
//! manifests' ServiceAccount (support/rbac.rs); here one verb is taken away: without
//! `patch` on apps workloads a Deployment's reload fails (a Warning Event says so, the
//! template is untouched), while a CronJob, still granted, reloads.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::events::v1::Event;
use kreload::reload::model::{SourceKind, SourceRef, WorkloadKind};
use kube::api::Api;
use serde_json::{Value, json};

use super::{apply, docs};
use crate::support::instance::Instance;
use crate::support::rbac::{impersonating, shipped_rbac};
use crate::support::workloads::{self as w, Form, configmap, create, data, expected_hash, get};
use crate::support::{Env, eventually, namespace, trial};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    vec![trial(
        "install::rbac_without_patch_breaks_deployments_only",
        without_patch,
    )]
}

const USER: &str = "system:serviceaccount:kreload:kreload-no-patch";

/// The shipped ClusterRole with `patch` removed from the apps rule, bound to USER.
fn reduced_role() -> Result<Value> {
    let shipped = docs(&std::fs::read_to_string(shipped_rbac())?)?;
    let mut role = shipped
        .into_iter()
        .find(|d| d["kind"] == "ClusterRole")
        .context("no ClusterRole in manifests/base/rbac.yaml")?;
    let mut removed = false;
    for rule in role["rules"].as_array_mut().into_iter().flatten() {
        if rule["apiGroups"] == json!(["apps"]) {
            let verbs = rule["verbs"].as_array_mut().context("verbs")?;
            let n = verbs.len();
            verbs.retain(|v| v != "patch");
            removed = verbs.len() < n;
        }
    }
    ensure!(removed, "the shipped ClusterRole has no patch on apps");
    role["metadata"] = json!({"name": "kreload-e2e-no-patch"});
    Ok(role)
}

async fn without_patch(env: Arc<Env>) -> Result<()> {
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "kreload-e2e-no-patch"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kreload-e2e-no-patch"},
        "subjects": [{"kind": "ServiceAccount", "name": "kreload-no-patch", "namespace": "kreload"}],
    });
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [reduced_role()?, binding]});
    apply(&env, &list.to_string(), false)?;
    let kc = impersonating(
        env.cp.kubeconfig(),
        &env.cp.dir().join("no-patch.kubeconfig"),
        USER,
    )?;
    let client = env.client.clone();
    let inst = Instance::start(
        &client,
        &kc,
        "no-patch",
        "no-patch",
        &["--coalesce-window=1s"],
    )
    .await?;
    let ns = namespace(&client, "no-patch", &inst.labels()).await?;
    configmap(&client, &ns, "settings", &[("k", "1")]).await?;
    let auto = json!({"reloader.stakater.com/auto": "true"});
    let spec = w::pod_spec(Form::EnvFrom, SourceKind::ConfigMap, "settings");
    let (d, c) = (WorkloadKind::Deployment, WorkloadKind::CronJob);
    create(
        &client,
        &ns,
        &w::workload(d, "web", auto.clone(), json!({}), spec.clone()),
    )
    .await?;
    create(
        &client,
        &ns,
        &w::workload(c, "nightly", auto, json!({}), spec),
    )
    .await?;
    crate::reload::wait_indexed(&inst, 2).await?;
    let before = w::template(d, &get(&client, &ns, d, "web").await?);
    w::update_configmap(&client, &ns, "settings", &[("k", "2")]).await?;
    let source = SourceRef {
        kind: SourceKind::ConfigMap,
        name: "settings".into(),
    };
    let want = expected_hash(SourceKind::ConfigMap, &data(&[("k", "2")]));
    eventually(
        "the CronJob reload (patch still granted)",
        Duration::from_secs(60),
        || async {
            Ok(
                (w::reload_env(c, &get(&client, &ns, c, "nightly").await?, &source)
                    == Some(want.clone()))
                .then_some(()),
            )
        },
    )
    .await
    .with_context(|| inst.log_tail())?;
    eventually(
        "the Deployment's reload to fail",
        Duration::from_secs(60),
        || async {
            let failed = inst
                .metric(
                    "kreload_reloads_total",
                    &["kind=\"Deployment\"", "outcome=\"failed\""],
                )
                .await?;
            Ok((failed >= 1.0).then_some(()))
        },
    )
    .await
    .with_context(|| inst.log_tail())?;
    let events = Api::<Event>::namespaced(client.clone(), &ns)
        .list(&Default::default())
        .await?;
    ensure!(
        events
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("ReloadFail")
                && e.type_.as_deref() == Some("Warning")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("web")),
        "no Warning Event ReloadFail on the Deployment"
    );
    ensure!(
        w::template(d, &get(&client, &ns, d, "web").await?) == before,
        "the Deployment changed although kreload may not patch it"
    );
    Ok(())
}
