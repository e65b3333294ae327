//! What a user applies is accepted by the real API server: the chart (default values, HA
//! on, namespaced mode, and the renderings that change the webhooks) and the kustomize
//! installs, server-side dry-run applied with cert-manager's CRDs installed; `helm lint`;
//! the chart grants exactly what the manifests grant; ports agree everywhere.

use std::sync::Arc;

use anyhow::{Context as _, Result, ensure};
use kreload_testenv::tools;
use serde_json::Value;

use super::{apply, chart, crds, docs, find, kustomize};
use crate::support::{Env, named_namespace, trial};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    vec![
        trial("install::helm_lint", helm_lint),
        trial("install::chart_dry_run", chart_dry_run),
        trial("install::kustomize_dry_run", kustomize_dry_run),
        trial("install::chart_grants_what_manifests_grant", same_rbac),
        trial("install::ports_agree", ports_agree),
        trial("install::schema_refuses_wrong_types", schema_refuses),
        trial("install::webhooks_are_the_shipped_files", shipped_webhooks),
    ]
}

async fn helm_lint(_env: Arc<Env>) -> Result<()> {
    let helm = tools::helm()?;
    let out = tools::run(
        std::process::Command::new(helm)
            .arg("lint")
            .arg(tools::repo_root().join("charts/kreload")),
        None,
    )?;
    ensure!(out.contains("0 chart(s) failed"), "helm lint:\n{out}");
    Ok(())
}

/// Renderings and the namespaces their objects need.
const RENDERS: &[(&str, &[&str])] = &[
    ("default", &[]),
    // enableHA turns on leader election and runs at least two replicas.
    ("ha", &["reloader.enableHA=true"]),
    (
        "namespaced",
        &[
            "reloader.watchGlobally=false",
            "reloader.namespaces={dry-team-a,dry-team-b}",
        ],
    ),
    (
        "create-delete",
        &[
            "reloader.reloadOnCreate=true",
            "reloader.reloadOnDelete=true",
        ],
    ),
    ("mutating", &["kreload.sourcesWebhookKind=Mutating"]),
    // Reloader's values that map to flags and environment of kreload's own.
    (
        "reloader-values",
        &[
            "reloader.isArgoRollouts=true",
            "reloader.syncAfterRestart=true",
            "reloader.webhookUrl=http://hooks.example/reload",
            "reloader.enableMetricsByNamespace=true",
            "reloader.custom_annotations.configmap=example.com/cm",
            "reloader.custom_annotations.secret=example.com/secret",
            "reloader.custom_annotations.auto=example.com/auto",
            "reloader.custom_annotations.secret_auto=example.com/secret-auto",
            "reloader.custom_annotations.configmap_auto=example.com/cm-auto",
            "reloader.custom_annotations.search=example.com/search",
            "reloader.custom_annotations.match=example.com/match",
            "reloader.custom_annotations.ignore=example.com/ignore",
            "reloader.custom_annotations.pausePeriod=example.com/pause-period",
            "reloader.custom_annotations.pauseTime=example.com/paused-at",
        ],
    ),
    ("csi", &["reloader.enableCSIIntegration=true"]),
];

/// What the `reloader-values` rendering must pass to `kreload serve`.
const RELOADER_VALUE_ARGS: &[&str] = &[
    "--is-Argo-Rollouts=true",
    "--sync-after-restart=true",
    "--webhook-url=http://hooks.example/reload",
    "--configmap-annotation=example.com/cm",
    "--secret-annotation=example.com/secret",
    "--auto-annotation=example.com/auto",
    "--secret-auto-annotation=example.com/secret-auto",
    "--configmap-auto-annotation=example.com/cm-auto",
    "--auto-search-annotation=example.com/search",
    "--search-match-annotation=example.com/match",
    "--ignore-annotation=example.com/ignore",
    "--pause-deployment-annotation=example.com/pause-period",
    "--pause-deployment-time-annotation=example.com/paused-at",
];

async fn chart_dry_run(env: Arc<Env>) -> Result<()> {
    crds(&env).await?;
    for ns in ["kreload-dry", "dry-team-a", "dry-team-b"] {
        named_namespace(&env.client, ns, &[]).await?;
    }
    for (name, sets) in RENDERS {
        let yaml = chart("kreload", "kreload-dry", sets)?;
        let out = apply(&env, &yaml, true).with_context(|| format!("rendering {name}"))?;
        let kinds = docs(&yaml)?.len();
        ensure!(
            out.lines()
                .filter(|l| l.contains("(server dry run)"))
                .count()
                == kinds,
            "rendering {name}: {kinds} objects, but kubectl said\n{out}"
        );
    }
    // HA: two replicas, and the PodDisruptionBudget keeps one up.
    let ha = docs(&chart("kreload", "kreload-dry", RENDERS[1].1)?)?;
    let deployment = find(&ha, "Deployment", "kreload")?;
    let replicas = &deployment["spec"]["replicas"];
    ensure!(*replicas == 2, "HA: replicas {replicas}");
    let args = &deployment["spec"]["template"]["spec"]["containers"][0]["args"];
    ensure!(
        args.as_array()
            .is_some_and(|a| a.iter().any(|v| v == "--enable-ha=true")),
        "HA: no --enable-ha in {args}"
    );
    let pdb = &find(&ha, "PodDisruptionBudget", "kreload")?["spec"]["maxUnavailable"];
    ensure!(*pdb == 1, "HA: PodDisruptionBudget maxUnavailable {pdb}");
    let both = docs(&chart("kreload", "kreload-dry", RENDERS[3].1)?)?;
    let ops = &find(&both, "ValidatingWebhookConfiguration", "kreload-sources")?["webhooks"][0]["rules"]
        [0]["operations"];
    ensure!(
        *ops == serde_json::json!(["UPDATE", "CREATE", "DELETE"]),
        "reloadOnCreate + reloadOnDelete: sources operations {ops}"
    );
    // CSI: the flag, the trigger with its shipped operations, and the role's CSI rules.
    let csi = docs(&chart("kreload", "kreload-dry", RENDERS[6].1)?)?;
    let args =
        &find(&csi, "Deployment", "kreload")?["spec"]["template"]["spec"]["containers"][0]["args"];
    ensure!(
        args.as_array()
            .is_some_and(|a| a.iter().any(|v| v == "--enable-csi-integration=true")),
        "CSI: no --enable-csi-integration in {args}"
    );
    let hook = &find(&csi, "ValidatingWebhookConfiguration", "kreload-csi")?["webhooks"][0];
    ensure!(
        hook["rules"][0]["operations"] == serde_json::json!(["UPDATE"])
            && hook["rules"][0]["resources"]
                == serde_json::json!(["secretproviderclasspodstatuses"]),
        "CSI: trigger rules {}",
        hook["rules"]
    );
    let role = &find(&csi, "ClusterRole", "kreload")?["rules"];
    ensure!(
        role.to_string().contains("secretproviderclasspodstatuses"),
        "CSI: the ClusterRole has no CSI rule: {role}"
    );
    let default = docs(&chart("kreload", "kreload-dry", RENDERS[0].1)?)?;
    ensure!(
        find(&default, "ValidatingWebhookConfiguration", "kreload-csi").is_err()
            && !serde_json::to_string(&default)?.contains("secrets-store.csi.x-k8s.io"),
        "the default rendering has CSI objects"
    );
    let namespaced = docs(&chart("kreload", "kreload-dry", RENDERS[2].1)?)?;
    ensure!(
        namespaced.iter().all(|d| d["kind"] != "ClusterRole"),
        "namespaced mode rendered a ClusterRole"
    );
    reloader_values_reach_kreload()
}

/// Each Reloader value the chart maps renders its flag or variable, and `kreload serve`
/// parses the rendered command line.
fn reloader_values_reach_kreload() -> Result<()> {
    let (_, sets) = RENDERS
        .iter()
        .find(|(name, _)| *name == "reloader-values")
        .context("no reloader-values rendering")?;
    let rendered = docs(&chart("kreload", "kreload-dry", sets)?)?;
    let container =
        &find(&rendered, "Deployment", "kreload")?["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for want in RELOADER_VALUE_ARGS {
        ensure!(
            args.contains(want),
            "reloader values: no {want} in {args:?}"
        );
    }
    let env = &container["env"];
    ensure!(
        env.as_array().is_some_and(|e| e
            .iter()
            .any(|v| { v["name"] == "METRICS_COUNT_BY_NAMESPACE" && v["value"] == "enabled" })),
        "reloader.enableMetricsByNamespace: no METRICS_COUNT_BY_NAMESPACE=enabled in {env}"
    );
    // The rendered command line is one kreload accepts (`serve` parses it and stops at
    // --help before connecting anywhere).
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kreload"));
    cmd.args(&args).arg("--help");
    tools::run(&mut cmd, None).context("kreload refused the chart's command line")?;
    Ok(())
}

async fn kustomize_dry_run(env: Arc<Env>) -> Result<()> {
    crds(&env).await?;
    for ns in ["team-a", "team-b"] {
        named_namespace(&env.client, ns, &[]).await?;
    }
    for dir in [
        "manifests",
        "manifests/overlays/namespaced",
        "manifests/overlays/mutating-sources",
        "manifests/overlays/csi",
    ] {
        let yaml = kustomize(&env, dir)?;
        let out = apply(&env, &yaml, true).with_context(|| format!("kustomize {dir}"))?;
        let n = docs(&yaml)?.len();
        ensure!(
            out.lines()
                .filter(|l| l.contains("(server dry run)"))
                .count()
                == n,
            "{dir}: {n} objects, but kubectl said\n{out}"
        );
    }
    let mutating = docs(&kustomize(&env, "manifests/overlays/mutating-sources")?)?;
    ensure!(
        find(&mutating, "MutatingWebhookConfiguration", "kreload-sources").is_ok()
            && find(
                &mutating,
                "ValidatingWebhookConfiguration",
                "kreload-sources"
            )
            .is_err(),
        "the mutating-sources component did not swap the sources registration"
    );
    Ok(())
}

/// A role's rules, in a fixed order (the order grants nothing).
fn rules(doc: &Value) -> Vec<String> {
    let mut rules: Vec<String> = doc["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(Value::to_string)
        .collect();
    rules.sort();
    rules
}

async fn same_rbac(env: Arc<Env>) -> Result<()> {
    let manifests = docs(&kustomize(&env, "manifests")?)?;
    let rendered = docs(&chart("kreload", "kreload", &[])?)?;
    ensure!(
        rules(find(&rendered, "ClusterRole", "kreload")?)
            == rules(find(&manifests, "ClusterRole", "kreload")?),
        "the chart's ClusterRole differs from manifests/base/rbac.yaml"
    );
    let role =
        std::fs::read_to_string(tools::repo_root().join("manifests/namespaced-role/role.yaml"))?;
    let role = docs(&role)?;
    let namespaced = docs(&chart(
        "kreload",
        "kreload",
        &["reloader.watchGlobally=false", "reloader.namespaces={a}"],
    )?)?;
    ensure!(
        rules(find(&namespaced, "Role", "kreload")?) == rules(find(&role, "Role", "kreload")?),
        "the chart's namespaced Role differs from manifests/namespaced-role/role.yaml"
    );
    Ok(())
}

/// 9443 (webhook) and 9090 (admin) in the binary's defaults, the Dockerfile's EXPOSE, the
/// manifests' and the chart's container ports, and the Service's targets.
async fn ports_agree(env: Arc<Env>) -> Result<()> {
    let help = tools::run(
        std::process::Command::new(env!("CARGO_BIN_EXE_kreload")).args(["serve", "--help"]),
        None,
    )?;
    for default in ["[default: 0.0.0.0:9443]", "[default: 0.0.0.0:9090]"] {
        ensure!(
            help.contains(default),
            "kreload serve --help lacks {default}"
        );
    }
    let dockerfile = std::fs::read_to_string(tools::repo_root().join("Dockerfile"))?;
    let expose: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(str::split_whitespace)
        .collect();
    ensure!(expose == ["9443", "9090"], "Dockerfile EXPOSE {expose:?}");
    let want = serde_json::json!([
        {"name": "https", "containerPort": 9443, "protocol": "TCP"},
        {"name": "admin", "containerPort": 9090, "protocol": "TCP"},
    ]);
    for (what, yaml) in [
        ("manifests", kustomize(&env, "manifests")?),
        ("chart", chart("kreload", "kreload", &[])?),
    ] {
        let d = docs(&yaml)?;
        let ports = &find(&d, "Deployment", "kreload")?["spec"]["template"]["spec"]["containers"]
            [0]["ports"];
        ensure!(*ports == want, "{what}: container ports {ports}");
        let svc = &find(&d, "Service", "kreload")?["spec"]["ports"];
        let https = svc
            .as_array()
            .and_then(|p| p.iter().find(|p| p["name"] == "https"))
            .with_context(|| format!("{what}: no https Service port"))?;
        ensure!(
            https["port"] == 443 && https["targetPort"] == "https",
            "{what}: Service https port {https}"
        );
        for hook in [
            "ValidatingWebhookConfiguration",
            "MutatingWebhookConfiguration",
        ] {
            let cfg = d
                .iter()
                .find(|o| o["kind"] == hook)
                .context("no webhook configuration")?;
            let port = &cfg["webhooks"][0]["clientConfig"]["service"]["port"];
            ensure!(*port == 443, "{what}: {hook} calls Service port {port}");
        }
        let args = find(&d, "Deployment", "kreload")?["spec"]["template"]["spec"]["containers"][0]
            ["args"]
            .to_string();
        ensure!(
            !args.contains("--listen-address") && !args.contains("--admin-address"),
            "{what}: the Deployment overrides the default ports: {args}"
        );
    }
    Ok(())
}

async fn schema_refuses(_env: Arc<Env>) -> Result<()> {
    let Err(error) = chart("kreload", "kreload", &["reloader.autoReloadAll=maybe"]) else {
        anyhow::bail!("the chart rendered with reloader.autoReloadAll=maybe");
    };
    let message = format!("{error:#}");
    ensure!(
        message.contains("/reloader/autoReloadAll") && message.contains("want boolean"),
        "unclear refusal: {message}"
    );
    Ok(())
}

/// Released as `kreload` in namespace `kreload`, both installs register exactly the
/// webhooks of webhook/*.yaml.
async fn shipped_webhooks(env: Arc<Env>) -> Result<()> {
    let dir = tools::repo_root().join("webhook");
    // The CSI trigger, where each install renders it.
    let csi_chart = docs(&chart(
        "kreload",
        "kreload",
        &["reloader.enableCSIIntegration=true"],
    )?)?;
    let csi_kustomized = docs(&kustomize(&env, "manifests/overlays/csi")?)?;
    let shipped = docs(&std::fs::read_to_string(dir.join("csi/validating.yaml"))?)?;
    let want = &shipped.first().context("empty file")?["webhooks"];
    for (what, d) in [("chart", &csi_chart), ("manifests", &csi_kustomized)] {
        let got = &find(d, "ValidatingWebhookConfiguration", "kreload-csi")?["webhooks"];
        ensure!(
            got == want,
            "{what}: kreload-csi differs from webhook/csi/validating.yaml:\n{got}"
        );
    }
    let chart = docs(&chart("kreload", "kreload", &[])?)?;
    let kustomized = docs(&kustomize(&env, "manifests")?)?;
    for (file, kind, name) in [
        (
            "validating.yaml",
            "ValidatingWebhookConfiguration",
            "kreload-sources",
        ),
        (
            "mutating.yaml",
            "MutatingWebhookConfiguration",
            "kreload-workloads",
        ),
    ] {
        let shipped = docs(&std::fs::read_to_string(dir.join(file))?)?;
        let want = &shipped.first().context("empty file")?["webhooks"];
        for (what, d) in [("chart", &chart), ("manifests", &kustomized)] {
            let got = &find(d, kind, name)?["webhooks"];
            ensure!(
                got == want,
                "{what}: {name} differs from webhook/{file}:\n{got}"
            );
            let ann =
                &find(d, kind, name)?["metadata"]["annotations"]["cert-manager.io/inject-ca-from"];
            ensure!(
                ann == "kreload/kreload-serving",
                "{what}: {name} inject-ca-from {ann}"
            );
        }
    }
    Ok(())
}
