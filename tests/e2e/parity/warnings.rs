//! Admission warnings, read the way a user sees them: `kubectl create` prints the API
//! server's `Warning` headers, which carry the webhook's warnings. Never a denial.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::{Context as _, Result, ensure};
use kreload::reload::model::{SourceKind, WorkloadKind};
use serde_json::json;

use crate::reload::env_instance;
use crate::support::workloads::{self as w, Form, configmap, get};
use crate::support::{Env, namespace};

/// Creates `obj` with kubectl and returns the warnings it printed.
fn kubectl_create(env: &Env, ns: &str, obj: &serde_json::Value) -> Result<Vec<String>> {
    let kubectl = env
        .cp
        .kubectl()
        .context("no kubectl in the control-plane assets")?;
    let mut child = Command::new(kubectl)
        .arg(format!("--kubeconfig={}", env.cp.kubeconfig().display()))
        .args(["create", "-n", ns, "-o", "name", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(obj.to_string().as_bytes())?;
    let out = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure!(out.status.success(), "kubectl create failed: {stderr}");
    Ok(stderr
        .lines()
        .filter_map(|l| l.strip_prefix("Warning: "))
        .map(str::to_owned)
        .collect())
}

/// Each misuse gets its warning, the correct annotations none, and every write is stored.
pub async fn each_misuse_is_warned_about(env: Arc<Env>) -> Result<()> {
    let inst = env_instance(&env).await?;
    let ns = namespace(&env.client, "warnings", &inst.labels()).await?;
    configmap(&env.client, &ns, "plain", &[("k", "1")]).await?;
    let cases: [(&str, serde_json::Value, &str); 7] = [
        (
            "typo",
            json!({"reloader.stakater.com/atuo": "true"}),
            "did you mean reloader.stakater.com/auto?",
        ),
        (
            "match",
            json!({"reloader.stakater.com/match": "true"}),
            "reloader.stakater.com/match goes on a ConfigMap or Secret",
        ),
        (
            "list",
            json!({"reloader.stakater.com/auto": "my-configmap,my-secret"}),
            "takes \"true\" or \"false\", not a list",
        ),
        (
            "regex",
            json!({"configmap.reloader.stakater.com/reload": "plain, bad["}),
            "invalid regex \"bad[\"",
        ),
        (
            "missing",
            json!({"secret.reloader.stakater.com/reload": "nope"}),
            "named reload of secret/nope, which does not exist in this namespace",
        ),
        (
            "search",
            json!({"reloader.stakater.com/search": "true"}),
            "search is on but no ConfigMap or Secret this workload uses carries match",
        ),
        (
            "correct",
            json!({"reloader.stakater.com/auto": "true", "configmap.reloader.stakater.com/reload": "plain"}),
            "",
        ),
    ];
    let d = WorkloadKind::Deployment;
    for (name, annotations, want) in cases {
        let spec = w::pod_spec(Form::EnvFrom, SourceKind::ConfigMap, "plain");
        let obj = w::workload(d, name, annotations, json!({}), spec);
        let warnings = kubectl_create(&env, &ns, &obj)?;
        if want.is_empty() {
            ensure!(
                warnings.is_empty(),
                "{name}: unexpected warnings {warnings:?}"
            );
        } else {
            ensure!(
                warnings.len() == 1 && warnings[0].contains(want),
                "{name}: want one warning containing {want:?}, got {warnings:?}"
            );
        }
        get(&env.client, &ns, d, name).await?;
    }
    Ok(())
}
