//! The ConfigMap/Secret trigger registered as a MutatingWebhookConfiguration (the chart's
//! `kreload.sourcesWebhookKind: Mutating`, the kustomize component `mutating-sources`)
//! reloads as the validating registration does, and kreload never changes the ConfigMap or
//! Secret it is called for.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kreload::reload::model::{SourceKind, SourceRef, WorkloadKind};
use kube::api::Api;
use serde_json::{Value, json};

use super::certmanager::install;
use super::{chart, docs, find, kustomize};
use crate::support::workloads::{self as w, Form, create, create_source, data, expected_hash, get};
use crate::support::{Env, eventually, trial};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    vec![
        trial("install::mutating_sources_same_webhooks", same_webhooks),
        trial(
            "install::mutating_sources_reload_and_never_patch",
            reload_and_never_patch,
        ),
    ]
}

/// The mutating registration is the validating one plus `reinvocationPolicy`, in both.
async fn same_webhooks(env: Arc<Env>) -> Result<()> {
    let as_mutating = |mut hooks: Value| {
        for h in hooks.as_array_mut().into_iter().flatten() {
            h["reinvocationPolicy"] = json!("IfNeeded");
        }
        hooks
    };
    let base = docs(&kustomize(&env, "manifests")?)?;
    let overlay = docs(&kustomize(&env, "manifests/overlays/mutating-sources")?)?;
    ensure!(
        find(&overlay, "MutatingWebhookConfiguration", "kreload-sources")?["webhooks"]
            == as_mutating(
                find(&base, "ValidatingWebhookConfiguration", "kreload-sources")?["webhooks"]
                    .clone()
            ),
        "kustomize: the mutating sources webhooks differ from the validating ones"
    );
    let plain = docs(&chart("kreload", "kreload", &[])?)?;
    let mutating = docs(&chart(
        "kreload",
        "kreload",
        &["kreload.sourcesWebhookKind=Mutating"],
    )?)?;
    ensure!(
        find(&mutating, "MutatingWebhookConfiguration", "kreload-sources")?["webhooks"]
            == as_mutating(
                find(&plain, "ValidatingWebhookConfiguration", "kreload-sources")?["webhooks"]
                    .clone()
            ),
        "chart: the mutating sources webhooks differ from the validating ones"
    );
    ensure!(
        find(
            &mutating,
            "ValidatingWebhookConfiguration",
            "kreload-sources"
        )
        .is_err(),
        "chart: the validating sources registration is still rendered"
    );
    Ok(())
}

async fn reload_and_never_patch(env: Arc<Env>) -> Result<()> {
    let inst = install(
        &env,
        "kreload-mut",
        "mut-apps",
        &["kreload.sourcesWebhookKind=Mutating"],
    )
    .await?;
    let client = env.client.clone();
    let ns = inst.apps.as_str();
    let d = WorkloadKind::Deployment;
    let mut want = Vec::new();
    for (kind, name) in [(SourceKind::ConfigMap, "cm"), (SourceKind::Secret, "sec")] {
        create_source(
            &client,
            ns,
            kind,
            name,
            &data(&[("k", "1")]),
            &[("team", "a")],
        )
        .await?;
        let spec = w::pod_spec(Form::EnvFrom, kind, name);
        let workload = format!("uses-{name}");
        create(
            &client,
            ns,
            &w::workload(
                d,
                &workload,
                json!({"reloader.stakater.com/auto": "true"}),
                json!({}),
                spec,
            ),
        )
        .await?;
        want.push((kind, name, workload));
    }
    eventually(
        "kreload to index the Deployments",
        Duration::from_secs(30),
        || async {
            Ok((inst.served.metric("kreload_index_workloads", &[]).await? >= 2.0).then_some(()))
        },
    )
    .await?;
    let new = data(&[("k", "2"), ("more", "x")]);
    for (kind, name, _) in &want {
        w::update_source(&client, ns, *kind, name, &new).await?;
    }
    for (kind, name, workload) in &want {
        let source = SourceRef {
            kind: *kind,
            name: (*name).into(),
        };
        let hash = expected_hash(*kind, &new);
        eventually("the reload", Duration::from_secs(60), || async {
            Ok(
                (w::reload_env(d, &get(&client, ns, d, workload).await?, &source)
                    == Some(hash.clone()))
                .then_some(()),
            )
        })
        .await
        .with_context(|| inst.served.log_tail())?;
    }
    // Stored exactly as written: kreload's mutating answer changed nothing.
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get("cm")
        .await?;
    let sec = Api::<Secret>::namespaced(client.clone(), ns)
        .get("sec")
        .await?;
    let labels = |m: &kube::api::ObjectMeta| m.labels.clone().unwrap_or_default();
    let annotations = |m: &kube::api::ObjectMeta| m.annotations.clone().unwrap_or_default();
    ensure!(
        cm.data.as_ref() == Some(&new),
        "ConfigMap data {:?}",
        cm.data
    );
    let sec_data: std::collections::BTreeMap<String, String> = sec
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    ensure!(sec_data == new, "Secret data {sec_data:?}");
    for meta in [&cm.metadata, &sec.metadata] {
        ensure!(labels(meta).is_empty(), "labels added: {:?}", meta.labels);
        let a = annotations(meta);
        ensure!(
            a.len() == 1 && a.get("team").map(String::as_str) == Some("a"),
            "annotations changed: {a:?}"
        );
    }
    let answered = inst
        .served
        .metric(
            "kreload_admission_requests_total",
            &["endpoint=\"sources\""],
        )
        .await?;
    ensure!(
        answered >= 2.0,
        "kreload answered {answered} sources reviews"
    );
    Ok(())
}
