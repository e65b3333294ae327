//! An application installed by a HelmRelease with drift detection enabled, opted in to
//! kreload: its Secret rotated outside Git is reloaded once, and five forced reconciliations
//! later Flux has reported no drift, reverted nothing of kreload's, and the workload has
//! rolled exactly once. Then a chart-rendered field changed outside Git is reported and
//! reverted, which shows the detection ran and the first part could fail; and a change in
//! Git upgrades the release, which restores the chart's Secret (kreload follows it).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use kreload::reload::model::{SourceKind, Strategy, WorkloadKind};
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use super::Gitops;
use crate::install::apply;
use crate::reload::wait_indexed;
use crate::support::workloads::{data, env_value, expected_hash, get, update_source};
use crate::support::{Env, eventually, trial};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    vec![
        trial("gitops::flux_drift_env_vars", |env| {
            drift(env, Strategy::EnvVars)
        }),
        trial("gitops::flux_drift_annotations", |env| {
            drift(env, Strategy::Annotations)
        }),
        trial(
            "gitops::flux_reports_a_rotated_chart_secret",
            chart_secret_reverted,
        ),
    ]
}

const RELEASE: &str = "app";
const DEPLOYMENT: &str = "app";
const SECRET: &str = "app-credentials";

/// The HelmRelease: drift detection enabled, with the Secret's data left out of it (it is
/// rotated outside Git; without this, helm-controller puts the chart's value back and
/// kreload rolls the workload a second time). No kubelet runs here, so Helm must not wait
/// for the Deployment to become Available.
fn release(ns: &str) -> Value {
    let mut hr = json!({
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {"name": RELEASE, "namespace": ns},
        "spec": {
            "interval": "1h",
            "chart": {"spec": {
                "chart": "app",
                "version": "0.1.0",
                "sourceRef": {"kind": "HelmRepository", "name": "apps"},
            }},
            "install": {"disableWait": true},
            "upgrade": {"disableWait": true},
            "driftDetection": {"mode": "enabled"},
        },
    });
    hr["spec"]["driftDetection"]["ignore"] =
        json!([{"paths": ["/data"], "target": {"kind": "Secret"}}]);
    hr
}

async fn drift(env: Arc<Env>, strategy: Strategy) -> Result<()> {
    let name = format!("gitops-{strategy}");
    let (inst, ns) = super::kreload_for(&env, &name, strategy).await?;
    let gitops = Gitops::start(&env, &ns).await?;
    apply(&env, &release(&ns).to_string(), false)?;
    gitops.ready(&env, RELEASE).await?;
    // The Deployment in kreload's index before the Secret changes (this instance serves
    // only this namespace, so one workload).
    wait_indexed(&inst, 1).await?;
    let installed = get(&env.client, &ns, WorkloadKind::Deployment, DEPLOYMENT).await?;
    let gen0 = installed["metadata"]["generation"]
        .as_i64()
        .unwrap_or_default();

    // Rotated outside Git: a direct API write.
    let rotated = data(&[("password", "rotated-outside-git")]);
    update_source(&env.client, &ns, SourceKind::Secret, SECRET, &rotated).await?;
    let want = expected_hash(SourceKind::Secret, &rotated);
    let client = env.client.clone();
    let reloaded = eventually(
        "kreload to reload the Deployment",
        Duration::from_secs(60),
        || async {
            let d = get(&client, &ns, WorkloadKind::Deployment, DEPLOYMENT).await?;
            Ok(
                (super::kreload_value(strategy, &d, SECRET).as_deref() == Some(want.as_str()))
                    .then_some(d),
            )
        },
    )
    .await
    .with_context(|| inst.log_tail())?;
    let gen1 = reloaded["metadata"]["generation"]
        .as_i64()
        .unwrap_or_default();

    for i in 1..=5 {
        gitops
            .reconcile(&env, RELEASE, &format!("{name}-{i}"))
            .await?;
    }
    let after = get(&env.client, &ns, WorkloadKind::Deployment, DEPLOYMENT).await?;
    let generation_now = after["metadata"]["generation"].as_i64().unwrap_or_default();
    let value = super::kreload_value(strategy, &after, SECRET);
    let secret = secret_password(&env, &ns)?;
    let reasons = gitops.event_reasons(&env, RELEASE).await?;
    let drift_events = reasons.iter().filter(|r| r.contains("Drift")).count();
    let logged = gitops.drift_logged();
    let hr = gitops.ready(&env, RELEASE).await?;
    let rs = super::replica_sets(&env, &ns).await?;
    eprintln!(
        "gitops {strategy}: rollouts after one Secret change and 5 reconciliations: {} \
         (generation {gen0} -> {gen1} -> {generation_now}, {rs} ReplicaSets); drift events {drift_events}, \
         drift log lines {logged}; final {}: {value:?}",
        generation_now - gen0,
        match strategy {
            Strategy::EnvVars => "STAKATER_APP_CREDENTIALS_SECRET",
            Strategy::Annotations => "reloader.stakater.com/last-reloaded-from hash",
        },
    );
    ensure!(gen1 == gen0 + 1, "the reload rolled {gen0} -> {gen1}");
    ensure!(
        generation_now == gen1,
        "Flux's reconciliations rolled the Deployment again: {gen1} -> {generation_now}"
    );
    ensure!(
        value.as_deref() == Some(want.as_str()),
        "kreload's value after Flux: {value:?}"
    );
    ensure!(
        base64_eq(&secret, "rotated-outside-git"),
        "Flux reverted the rotated Secret: {secret}"
    );
    ensure!(
        drift_events == 0 && logged == 0,
        "drift reported: {reasons:?}, {logged} log lines"
    );
    ensure!(
        !hr["status"]["conditions"].to_string().contains("Drift"),
        "conditions: {}",
        hr["status"]["conditions"]
    );
    if env.cp.has_controller_manager() {
        ensure!(
            rs == 2,
            "{rs} ReplicaSets: the Deployment rolled {} times",
            rs.saturating_sub(1)
        );
    }

    // The control: a field the chart renders, changed outside Git, is drift.
    let patch = json!([{"op": "replace", "path": "/spec/template/spec/containers/0/env/0/value", "value": "changed"}]);
    Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(env.client.clone(), &ns)
        .patch(
            DEPLOYMENT,
            &PatchParams::default(),
            &Patch::<Value>::Json(serde_json::from_value(patch)?),
        )
        .await?;
    gitops
        .reconcile(&env, RELEASE, &format!("{name}-control"))
        .await?;
    let reverted = get(&env.client, &ns, WorkloadKind::Deployment, DEPLOYMENT).await?;
    let mode = env_value(WorkloadKind::Deployment, &reverted, "MODE");
    let reasons = gitops.event_reasons(&env, RELEASE).await?;
    ensure!(
        reasons.iter().any(|r| r == "DriftDetected") && gitops.drift_logged() > 0,
        "a changed chart field was not reported: {reasons:?}"
    );
    ensure!(
        mode.as_deref() == Some("gitops"),
        "MODE after drift correction: {mode:?}"
    );
    ensure!(
        super::kreload_value(strategy, &reverted, SECRET).as_deref() == Some(want.as_str()),
        "the drift correction removed kreload's value"
    );

    // A change in Git: Helm upgrades the release. Its three-way merge keeps fields that
    // neither manifest has, so kreload's mark stays, but it puts back the chart's value of
    // every field the chart renders, the rotated Secret's data included (the drift
    // detection's ignore rule does not apply to upgrades). kreload then follows the
    // restored content, as it follows any change.
    let values = json!({"spec": {"values": {"mode": "changed-in-git"}}});
    gitops
        .releases(&env)
        .patch(RELEASE, &PatchParams::default(), &Patch::Merge(&values))
        .await?;
    gitops.ready(&env, RELEASE).await?;
    let restored = expected_hash(SourceKind::Secret, &data(&[("password", "from-git")]));
    let upgraded = wait_value(&env, &ns, strategy, &restored)
        .await
        .with_context(|| inst.log_tail())?;
    let mode = env_value(WorkloadKind::Deployment, &upgraded, "MODE");
    let secret = secret_password(&env, &ns)?;
    eprintln!(
        "gitops {strategy}: after a Helm upgrade from Git: MODE {mode:?}, Secret back to the \
         chart's value {}, kreload's value {:?} (the restored content's hash)",
        base64_eq(&secret, "from-git"),
        super::kreload_value(strategy, &upgraded, SECRET),
    );
    ensure!(
        mode.as_deref() == Some("changed-in-git"),
        "MODE after the upgrade: {mode:?}"
    );
    ensure!(
        base64_eq(&secret, "from-git"),
        "the upgrade kept the rotated Secret"
    );
    Ok(())
}

fn base64_eq(encoded: &str, plain: &str) -> bool {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .is_ok_and(|b| b == plain.as_bytes())
}

/// Without the `ignore` rule for the Secret's data, the rotation is drift: helm-controller
/// reports it (and tries to put the chart's value back, which would make kreload roll the
/// workload a second time). This is why the README recommends the rule, or keeping a
/// Secret that is rotated outside Git out of the chart.
async fn chart_secret_reverted(env: Arc<Env>) -> Result<()> {
    let strategy = Strategy::EnvVars;
    let (inst, ns) = super::kreload_for(&env, "gitops-chart-secret", strategy).await?;
    let gitops = Gitops::start(&env, &ns).await?;
    let mut hr = release(&ns);
    if let Some(spec) = hr["spec"]["driftDetection"].as_object_mut() {
        spec.remove("ignore");
    }
    apply(&env, &hr.to_string(), false)?;
    gitops.ready(&env, RELEASE).await?;
    wait_indexed(&inst, 1).await?;
    let gen0 = generation(&env, &ns).await?;
    let rotated = data(&[("password", "rotated-outside-git")]);
    update_source(&env.client, &ns, SourceKind::Secret, SECRET, &rotated).await?;
    wait_value(
        &env,
        &ns,
        strategy,
        &expected_hash(SourceKind::Secret, &rotated),
    )
    .await
    .with_context(|| inst.log_tail())?;
    gitops.reconcile(&env, RELEASE, "chart-secret-1").await?;
    let password = secret_password(&env, &ns)?;
    let reasons = gitops.event_reasons(&env, RELEASE).await?;
    let rolled = generation(&env, &ns).await? - gen0;
    let rs = super::replica_sets(&env, &ns).await?;
    eprintln!(
        "gitops chart Secret without ignore: after one Secret change and 1 reconciliation: \
         events {reasons:?}, Secret reverted {}, rollouts {rolled} ({rs} ReplicaSets)",
        base64_eq(&password, "from-git")
    );
    // Reported as drift on every reconciliation; v1.4.3 then fails to correct a Secret
    // (DriftCorrectionFailed, "illegal base64 data"), so the rotation and kreload's one
    // rollout stay, but the release is reported drifted until the rule is added.
    ensure!(
        reasons.iter().any(|r| r == "DriftDetected"),
        "events: {reasons:?}"
    );
    Ok(())
}

async fn generation(env: &Env, ns: &str) -> Result<i64> {
    let d = get(&env.client, ns, WorkloadKind::Deployment, DEPLOYMENT).await?;
    Ok(d["metadata"]["generation"].as_i64().unwrap_or_default())
}

/// Waits until kreload's value for the Secret on the Deployment is `want`.
async fn wait_value(env: &Env, ns: &str, strategy: Strategy, want: &str) -> Result<Value> {
    let client = env.client.clone();
    eventually(
        "kreload to reload the Deployment",
        Duration::from_secs(60),
        || async {
            let d = get(&client, ns, WorkloadKind::Deployment, DEPLOYMENT).await?;
            Ok((super::kreload_value(strategy, &d, SECRET).as_deref() == Some(want)).then_some(d))
        },
    )
    .await
}

/// The Secret's `password`, base64-encoded as the API holds it.
fn secret_password(env: &Env, ns: &str) -> Result<String> {
    crate::install::kubectl(
        env,
        &[
            "-n",
            ns,
            "get",
            "secret",
            SECRET,
            "-o",
            "jsonpath={.data.password}",
        ],
        None,
    )
}
