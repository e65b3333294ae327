//! Reloader parity: the values Reloader itself writes (its `last-reloaded-from` key and
//! delete marker), its single-namespace mode, its flags and environment, its metrics.

mod alerts;
mod cronjob;
mod explain;
mod flags;
mod metrics;
mod receiver;
mod warnings;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, ensure};
use k8s_openapi::api::core::v1::ConfigMap;
use kreload::reload::model::{SourceKind, WorkloadKind};
use kube::api::{Api, DeleteParams};
use serde_json::json;

use crate::reload::wait_indexed;
use crate::support::instance::{Extra, INSTANCE_LABEL, Instance};
use crate::support::workloads::{
    self as w, Form, configmap, create, data, expected_hash, get, last_reloaded, reload_env,
    update_source,
};
use crate::support::{Env, eventually, named_namespace, namespace, trial};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    vec![
        trial(
            "parity::annotations_use_reloaders_key_and_marker",
            reloaders_key_and_marker,
        ),
        trial(
            "parity::kubernetes_namespace_is_one_namespace",
            single_namespace,
        ),
        trial("parity::chart_command_lines", flags::chart_command_lines),
        trial("parity::annotation_key_flags", flags::annotation_key_flags),
        trial(
            "parity::alerts_reach_each_sink",
            alerts::alerts_reach_each_sink,
        ),
        trial(
            "parity::a_stuck_sink_never_delays_a_reload",
            alerts::a_stuck_sink_never_delays_a_reload,
        ),
        trial(
            "parity::webhook_url_posts_instead_of_reloading",
            alerts::webhook_url_posts_instead_of_reloading,
        ),
        trial(
            "parity::metrics_under_both_names",
            metrics::both_names_after_known_actions,
        ),
        trial(
            "parity::warnings_for_each_misuse",
            warnings::each_misuse_is_warned_about,
        ),
        trial(
            "parity::explain_every_precedence_rule",
            explain::every_precedence_rule,
        ),
        trial(
            "parity::cronjob_job_mode",
            cronjob::starts_a_job_unless_suspended,
        ),
    ]
}

const D: WorkloadKind = WorkloadKind::Deployment;
/// `sha1("__RELOADER_EMPTY_DELETE_MARKER__")`, what Reloader records for a deleted source.
const DELETE_MARKER: &str = "aae45badef99284e4dae01d6046154ea9d99532f";

fn user(name: &str, annotations: serde_json::Value, cm: &str) -> serde_json::Value {
    w::workload(
        D,
        name,
        annotations,
        json!({}),
        w::pod_spec(Form::EnvFrom, SourceKind::ConfigMap, cm),
    )
}

/// Under `--reload-strategy=annotations`, a workload opted in with Reloader's annotation
/// gets exactly Reloader's `reloader.stakater.com/last-reloaded-from` (and no kreload key);
/// one opted in with kreload's gets `kreload.dev/last-reloaded-from`. A deleted source
/// (`--reload-on-delete`) is recorded with Reloader's marker hash.
async fn reloaders_key_and_marker(env: Arc<Env>) -> Result<()> {
    let client = env.client.clone();
    let flags = [
        "--coalesce-window=1s",
        "--reload-strategy=annotations",
        "--reload-on-delete",
    ];
    let inst = Instance::start(
        &client,
        env.cp.kubeconfig(),
        "parity-ann",
        "parity-ann",
        &flags,
    )
    .await?;
    let ns = namespace(&client, "parity-ann", &inst.labels()).await?;
    configmap(&client, &ns, "theirs", &[("k", "1")]).await?;
    configmap(&client, &ns, "ours", &[("k", "1")]).await?;
    create(
        &client,
        &ns,
        &user(
            "theirs",
            json!({"reloader.stakater.com/auto": "true"}),
            "theirs",
        ),
    )
    .await?;
    create(
        &client,
        &ns,
        &user("ours", json!({"kreload.dev/auto": "true"}), "ours"),
    )
    .await?;
    wait_indexed(&inst, 2).await?;
    let v2 = data(&[("k", "2")]);
    update_source(&client, &ns, SourceKind::ConfigMap, "theirs", &v2).await?;
    update_source(&client, &ns, SourceKind::ConfigMap, "ours", &v2).await?;
    let want = expected_hash(SourceKind::ConfigMap, &v2);
    for (name, key, other) in [
        ("theirs", "reloader.stakater.com", "kreload.dev"),
        ("ours", "kreload.dev", "reloader.stakater.com"),
    ] {
        let record = eventually(
            &format!("{name} to carry {key}/last-reloaded-from"),
            Duration::from_secs(60),
            || async {
                let obj = get(&client, &ns, D, name).await?;
                Ok(last_reloaded(D, &obj, key).filter(|r| r.hash == want))
            },
        )
        .await?;
        ensure!(
            record.kind == "CONFIGMAP"
                && record.name == name
                && record.namespace == ns
                && record.container_refs == ["app"],
            "{name}: not Reloader's record: {record:?}"
        );
        let obj = get(&client, &ns, D, name).await?;
        ensure!(
            last_reloaded(D, &obj, other).is_none(),
            "{name} also carries {other}/last-reloaded-from"
        );
    }

    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .delete("theirs", &DeleteParams::default())
        .await?;
    eventually(
        "the deleted source to be recorded with Reloader's marker",
        Duration::from_secs(60),
        || async {
            let obj = get(&client, &ns, D, "theirs").await?;
            Ok(last_reloaded(D, &obj, "reloader.stakater.com")
                .filter(|r| r.hash == DELETE_MARKER && r.name == "theirs"))
        },
    )
    .await?;
    Ok(())
}

/// `KUBERNETES_NAMESPACE` (set by Reloader's chart when `watchGlobally` is false): kreload
/// acts in that namespace only, though its webhooks see the writes of another.
async fn single_namespace(env: Arc<Env>) -> Result<()> {
    let client = env.client.clone();
    let label = [(INSTANCE_LABEL, "parity-single")];
    let (one, other) = ("parity-single-one", "parity-single-other");
    named_namespace(&client, one, &label).await?;
    named_namespace(&client, other, &label).await?;
    let extra = Extra {
        envs: &[("KUBERNETES_NAMESPACE", one)],
        canary_namespace: Some(one),
        ..Extra::default()
    };
    let inst = Instance::start_extra(
        &client,
        env.cp.kubeconfig(),
        "parity-single",
        "parity-single",
        &["--coalesce-window=1s"],
        &extra,
    )
    .await?;
    let auto = json!({"reloader.stakater.com/auto": "true"});
    for ns in [one, other] {
        configmap(&client, ns, "cfg", &[("k", "1")]).await?;
        create(&client, ns, &user("web", auto.clone(), "cfg")).await?;
    }
    // Only the one namespace's workload is indexed.
    wait_indexed(&inst, 1).await?;
    let v2 = data(&[("k", "2")]);
    let before = inst
        .metric(
            "kreload_admission_requests_total",
            &["endpoint=\"sources\""],
        )
        .await?;
    // The other namespace's write first: its window would close first.
    update_source(&client, other, SourceKind::ConfigMap, "cfg", &v2).await?;
    update_source(&client, one, SourceKind::ConfigMap, "cfg", &v2).await?;
    let want = expected_hash(SourceKind::ConfigMap, &v2);
    let src = kreload::reload::model::SourceRef::configmap("cfg");
    eventually(
        "web in the one namespace to reload",
        Duration::from_secs(60),
        || async {
            let obj = get(&client, one, D, "web").await?;
            Ok((reload_env(D, &obj, &src).as_deref() == Some(want.as_str())).then_some(()))
        },
    )
    .await?;
    let after = inst
        .metric(
            "kreload_admission_requests_total",
            &["endpoint=\"sources\""],
        )
        .await?;
    ensure!(
        after >= before + 2.0,
        "kreload did not review both writes ({before} -> {after})"
    );
    let obj = get(&client, other, D, "web").await?;
    ensure!(
        reload_env(D, &obj, &src).is_none(),
        "kreload reloaded a workload outside KUBERNETES_NAMESPACE"
    );
    Ok(())
}
