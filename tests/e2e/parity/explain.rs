//! `kreload explain` against a fixture namespace with a workload for every rule of the
//! precedence list, and the reverse question for a workload kreload reloaded.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use kreload::reload::model::{SourceKind, SourceRef, WorkloadKind};
use serde_json::{Value, json};

use crate::reload::wait_indexed;
use crate::support::workloads::{
    self as w, Form, create, create_source, data, expected_hash, get, reload_env, update_source,
};
use crate::support::{Env, eventually, namespace};

/// Runs `kreload explain TARGET -n NS -o json` with `flags`.
fn explain(env: &Env, ns: &str, target: &str, flags: &[&str]) -> Result<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_kreload"))
        .args(["explain", target, "-n", ns, "-o", "json"])
        .arg(format!("--kubeconfig={}", env.cp.kubeconfig().display()))
        .args(flags)
        .output()?;
    ensure!(
        out.status.success(),
        "kreload explain failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).context("explain -o json is not JSON")
}

/// `(workload, rule, annotation)` of every verdict in `list`.
fn rules(report: &Value, list: &str) -> Vec<(String, String, Option<String>)> {
    report[list]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| {
                    (
                        v["workload"].as_str().unwrap_or_default().to_owned(),
                        v["rule"].as_str().unwrap_or_default().to_owned(),
                        v["annotation"].as_str().map(str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn row(workload: &str, rule: &str, annotation: Option<&str>) -> (String, String, Option<String>) {
    (
        workload.to_owned(),
        rule.to_owned(),
        annotation.map(str::to_owned),
    )
}

pub async fn every_precedence_rule(env: Arc<Env>) -> Result<()> {
    let inst = env.kreload("explain", &["--coalesce-window=1s"]).await?;
    let client = env.client.clone();
    let ns = namespace(&client, "explain", &inst.labels()).await?;
    let cm = SourceKind::ConfigMap;
    let v1 = data(&[("k", "1")]);
    create_source(
        &client,
        &ns,
        cm,
        "shared",
        &v1,
        &[("reloader.stakater.com/match", "true")],
    )
    .await?;
    create_source(
        &client,
        &ns,
        cm,
        "muted",
        &v1,
        &[("kreload.dev/ignore", "true")],
    )
    .await?;
    create_source(&client, &ns, cm, "elsewhere", &v1, &[]).await?;
    let r = "reloader.stakater.com";
    let uses = |name: &str| w::pod_spec(Form::EnvFrom, cm, name);
    let fixtures = [
        (
            WorkloadKind::DaemonSet,
            "ds-auto",
            json!({format!("{r}/auto"): "true"}),
            json!({}),
            uses("shared"),
        ),
        (
            WorkloadKind::Deployment,
            "auto",
            json!({format!("{r}/auto"): "true"}),
            json!({}),
            uses("shared"),
        ),
        (
            WorkloadKind::Deployment,
            "excluded",
            json!({format!("{r}/auto"): "true", format!("configmaps.exclude.{r}/reload"): "shared"}),
            json!({}),
            uses("shared"),
        ),
        (
            WorkloadKind::Deployment,
            "named",
            json!({format!("configmap.{r}/reload"): "shar.*"}),
            json!({}),
            uses("elsewhere"),
        ),
        (
            WorkloadKind::Deployment,
            "search",
            json!({format!("{r}/search"): "true"}),
            json!({}),
            uses("shared"),
        ),
        (
            WorkloadKind::Deployment,
            "template",
            json!({}),
            json!({format!("configmap.{r}/auto"): "true"}),
            uses("shared"),
        ),
        (
            WorkloadKind::Deployment,
            "unreferenced",
            json!({"kreload.dev/auto": "true"}),
            json!({}),
            uses("elsewhere"),
        ),
        (
            WorkloadKind::Deployment,
            "plain",
            json!({}),
            json!({}),
            uses("shared"),
        ),
        (
            WorkloadKind::Deployment,
            "muted-user",
            json!({format!("{r}/auto"): "true"}),
            json!({}),
            uses("muted"),
        ),
    ];
    for (kind, name, annotations, template, spec) in &fixtures {
        create(
            &client,
            &ns,
            &w::workload(
                *kind,
                name,
                annotations.clone(),
                template.clone(),
                spec.clone(),
            ),
        )
        .await?;
    }

    let report = explain(&env, &ns, "configmap/shared", &[])?;
    let d = |n: &str| format!("Deployment/{n}");
    ensure!(
        rules(&report, "reloads")
            == [
                row(&d("auto"), "auto", Some("reloader.stakater.com/auto")),
                row(
                    &d("named"),
                    "named",
                    Some("configmap.reloader.stakater.com/reload")
                ),
                row(
                    &d("search"),
                    "search-match",
                    Some("reloader.stakater.com/match")
                ),
                row(
                    &d("template"),
                    "auto",
                    Some("configmap.reloader.stakater.com/auto")
                ),
                row(
                    "DaemonSet/ds-auto",
                    "auto",
                    Some("reloader.stakater.com/auto")
                ),
            ],
        "reloads: {report:#}"
    );
    ensure!(
        rules(&report, "skips")
            == [
                row(
                    &d("excluded"),
                    "excluded",
                    Some("configmaps.exclude.reloader.stakater.com/reload")
                ),
                row(
                    &d("muted-user"),
                    "not-referenced",
                    Some("reloader.stakater.com/auto")
                ),
                row(&d("plain"), "not-opted-in", None),
                row(
                    &d("unreferenced"),
                    "not-referenced",
                    Some("kreload.dev/auto")
                ),
            ],
        "skips: {report:#}"
    );
    // A named reload without a reference goes to the first container, as Reloader does.
    ensure!(report["reloads"][1]["container"] == "app", "{report:#}");
    // The flags change the answer as they change kreload's decisions.
    let flagged = explain(
        &env,
        &ns,
        "configmap/shared",
        &["--auto-reload-all", "--ignored-workload-types=daemonsets"],
    )?;
    let flagged_rules = [rules(&flagged, "reloads"), rules(&flagged, "skips")].concat();
    ensure!(
        flagged_rules.contains(&row(&d("plain"), "auto-reload-all", None)),
        "{flagged:#}"
    );
    ensure!(
        flagged_rules.contains(&row("DaemonSet/ds-auto", "kind-ignored", None)),
        "{flagged:#}"
    );
    let muted = explain(&env, &ns, "configmap/muted", &[])?;
    ensure!(
        rules(&muted, "skips").contains(&row(
            &d("muted-user"),
            "source-ignored",
            Some("kreload.dev/ignore")
        )),
        "{muted:#}"
    );

    // The reverse question, after kreload reloaded the workload.
    // Every fixture but "plain" opted in.
    wait_indexed(&inst, fixtures.len() - 1).await?;
    let v2 = data(&[("k", "2")]);
    update_source(&client, &ns, cm, "shared", &v2).await?;
    let want = expected_hash(cm, &v2);
    let d_kind = WorkloadKind::Deployment;
    eventually("the reload", Duration::from_secs(60), || async {
        let obj = get(&client, &ns, d_kind, "auto").await?;
        Ok(
            (reload_env(d_kind, &obj, &SourceRef::configmap("shared")) == Some(want.clone()))
                .then_some(()),
        )
    })
    .await?;
    let workload = explain(&env, &ns, "deployment/auto", &[])?;
    ensure!(workload["sources"][0]["reloads"] == true, "{workload:#}");
    let marks = workload["marks"].as_array().context("marks")?;
    let has = |kind: &str, key: &str| {
        marks
            .iter()
            .any(|m| m["kind"] == kind && m["key"] == key && m["hash"] == want.as_str())
    };
    ensure!(
        has("env", "STAKATER_SHARED_CONFIGMAP") && has("observed", "kreload.dev/observed"),
        "{workload:#}"
    );
    Ok(())
}
