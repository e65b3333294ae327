//! `/metrics` after known actions carries kreload's and Reloader's names; the Event and the
//! log line of a reload.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, ensure};
use k8s_openapi::api::events::v1::Event;
use kreload::reload::model::{SourceKind, SourceRef, WorkloadKind};
use kube::api::{Api, ListParams};
use serde_json::json;

use crate::reload::wait_indexed;
use crate::support::instance::{Extra, Instance};
use crate::support::workloads::{
    self as w, Form, create, create_source, data, expected_hash, get, reload_env, update_source,
};
use crate::support::{Env, eventually, namespace};

const D: WorkloadKind = WorkloadKind::Deployment;

/// One reload and one ignored source, then a scrape: both vocabularies count the same
/// actions, Reloader's per-namespace counter is there (METRICS_COUNT_BY_NAMESPACE), the
/// Event has Reloader's reason, and the log has one line naming source, hash and latency.
pub async fn both_names_after_known_actions(env: Arc<Env>) -> Result<()> {
    let client = env.client.clone();
    let extra = Extra {
        envs: &[("METRICS_COUNT_BY_NAMESPACE", "enabled")],
        ..Extra::default()
    };
    // JSON logs, to read the reload's line field by field.
    let flags = ["--coalesce-window=1s", "--log-format=json"];
    let inst = Instance::start_extra(
        &client,
        env.cp.kubeconfig(),
        "metrics",
        "metrics",
        &flags,
        &extra,
    )
    .await?;
    let ns = namespace(&client, "metrics", &inst.labels()).await?;
    let cm = SourceKind::ConfigMap;
    let v1 = data(&[("k", "1")]);
    create_source(&client, &ns, cm, "cfg", &v1, &[]).await?;
    create_source(
        &client,
        &ns,
        cm,
        "muted",
        &v1,
        &[("reloader.stakater.com/ignore", "true")],
    )
    .await?;
    let spec = w::pod_spec(Form::EnvFrom, cm, "cfg");
    let auto = json!({"reloader.stakater.com/auto": "true"});
    create(&client, &ns, &w::workload(D, "web", auto, json!({}), spec)).await?;
    wait_indexed(&inst, 1).await?;
    let v2 = data(&[("k", "2")]);
    let skipped = r#"reloader_skipped_total{reason="ignored_or_not_selected"}"#;
    let skipped_before = inst.metric(skipped, &[]).await?;
    update_source(&client, &ns, cm, "muted", &v2).await?;
    update_source(&client, &ns, cm, "cfg", &v2).await?;
    let want = expected_hash(cm, &v2);
    eventually("the reload", Duration::from_secs(60), || async {
        let obj = get(&client, &ns, D, "web").await?;
        Ok((reload_env(D, &obj, &SourceRef::configmap("cfg")) == Some(want.clone())).then_some(()))
    })
    .await?;
    let ns_label = format!("namespace=\"{ns}\"");
    // Each counted once, under both names.
    for (name, filters) in [
        (
            "kreload_reloads_total",
            vec![r#"kind="Deployment""#, r#"outcome="reloaded""#],
        ),
        ("reloader_reload_executed_total{", vec![r#"success="true""#]),
        (
            "reloader_reload_executed_total_by_namespace",
            vec![r#"success="true""#, ns_label.as_str()],
        ),
        (
            "reloader_action_total",
            vec![r#"workload_kind="Deployment""#, r#"result="success""#],
        ),
        ("reloader_action_latency_seconds_count", vec![]),
    ] {
        let value = eventually(
            &format!("{name} to count the reload"),
            Duration::from_secs(10),
            || {
                let filters = filters.clone();
                let inst = &inst;
                async move {
                    let v = inst.metric(name, &filters).await?;
                    Ok((v > 0.0).then_some(v))
                }
            },
        )
        .await?;
        ensure!(value == 1.0, "{name} {filters:?} = {value}, want 1");
    }
    ensure!(
        inst.metric(skipped, &[]).await? > skipped_before,
        "the ignored source's write was not counted as skipped"
    );
    ensure!(inst.metric("reloader_workqueue_adds_total", &[]).await? >= 1.0);

    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let reloaded = eventually("the Reloaded Event", Duration::from_secs(30), || async {
        let list = events.list(&ListParams::default()).await?;
        Ok(list.items.into_iter().find(|e| {
            e.reason.as_deref() == Some("Reloaded")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("web")
        }))
    })
    .await?;
    ensure!(reloaded.type_.as_deref() == Some("Normal"));

    // The line is written once the patch has returned: wait for it.
    let sources = format!("configmap/cfg@{}", &want[..7]);
    let line = eventually("the reload's log line", Duration::from_secs(10), || async {
        Ok(inst.log_text().lines().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["message"] == "reloaded" && v["sources"] == sources.as_str()).then_some(v)
        }))
    })
    .await?;
    ensure!(
        line["strategy"] == "env-vars"
            && line["latency_ms"].is_u64()
            && line["workload"] == "Deployment/web"
            && line["namespace"] == ns.as_str(),
        "the reload's log line lacks the strategy, the latency or the workload: {line}"
    );
    Ok(())
}
