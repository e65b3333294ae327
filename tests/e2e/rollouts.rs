//! Argo Rollouts, with the Rollout CRD installed in the test control plane (no Argo
//! controller runs here: the test checks what kreload writes, which is what the controller
//! acts on): `rollout-strategy: rollout` patches the template, `restart` sets
//! `spec.restartAt` and leaves the template alone.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, ensure};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kreload::reload::model::{SourceKind, SourceRef, WorkloadKind};
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::reload::wait_indexed;
use crate::support::instance::Instance;
use crate::support::workloads::update_configmap;
use crate::support::workloads::{
    self as w, Form, configmap, create, data, expected_hash, get, reload_env,
};
use crate::support::{Env, eventually, namespace, trial};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    vec![trial(
        "rollouts::both_rollout_strategies",
        both_rollout_strategies,
    )]
}

const R: WorkloadKind = WorkloadKind::Rollout;

async fn install_crd(client: &kube::Client) -> Result<()> {
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "rollouts.argoproj.io"},
        "spec": {
            "group": "argoproj.io",
            "names": {"kind": "Rollout", "plural": "rollouts", "singular": "rollout", "listKind": "RolloutList"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1alpha1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
            }]
        }
    }))?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    match crds.create(&PostParams::default(), &crd).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    eventually(
        "the Rollout CRD to be established",
        Duration::from_secs(30),
        || async {
            let crd = crds.get("rollouts.argoproj.io").await?;
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            Ok(established.then_some(()))
        },
    )
    .await
}

async fn both_rollout_strategies(env: Arc<Env>) -> Result<()> {
    let client = env.client.clone();
    install_crd(&client).await?;
    // kreload looks for the CRD when it starts, so this instance starts after it exists.
    let inst = Instance::start(
        &client,
        &env.kreload_kubeconfig,
        "rollouts",
        "rollouts",
        &["--coalesce-window=1s"],
    )
    .await?;
    let ns = namespace(&client, "rollouts", &inst.labels()).await?;
    configmap(&client, &ns, "settings", &[("k", "1")]).await?;
    let spec = w::pod_spec(Form::EnvFrom, SourceKind::ConfigMap, "settings");
    create(
        &client,
        &ns,
        &w::workload(
            R,
            "templated",
            json!({"reloader.stakater.com/auto": "true"}),
            json!({}),
            spec.clone(),
        ),
    )
    .await?;
    create(
        &client,
        &ns,
        &w::workload(R, "restarted", json!({"reloader.stakater.com/auto": "true", "reloader.stakater.com/rollout-strategy": "restart"}), json!({}), spec),
    )
    .await?;
    let created = get(&client, &ns, R, "templated").await?;
    ensure!(
        created["metadata"]["annotations"]["kreload.dev/observed"].is_string(),
        "the workload webhook did not see the Rollout"
    );
    wait_indexed(&inst, 2).await?;
    let restarted_template = w::template(R, &get(&client, &ns, R, "restarted").await?);
    update_configmap(&client, &ns, "settings", &[("k", "2")]).await?;
    let source = SourceRef {
        kind: SourceKind::ConfigMap,
        name: "settings".into(),
    };
    let want = expected_hash(SourceKind::ConfigMap, &data(&[("k", "2")]));
    eventually("the template patch", Duration::from_secs(60), || async {
        Ok(
            (reload_env(R, &get(&client, &ns, R, "templated").await?, &source)
                == Some(want.clone()))
            .then_some(()),
        )
    })
    .await?;
    let restarted = eventually("spec.restartAt", Duration::from_secs(60), || async {
        let obj = get(&client, &ns, R, "restarted").await?;
        Ok(obj["spec"]["restartAt"].is_string().then_some(obj))
    })
    .await?;
    ensure!(
        w::template(R, &restarted) == restarted_template,
        "restart strategy changed the template"
    );
    let restart_at = restarted["spec"]["restartAt"].as_str().unwrap_or_default();
    ensure!(
        restart_at.parse::<jiff::Timestamp>().is_ok(),
        "restartAt is not RFC 3339: {restart_at}"
    );
    Ok(())
}
