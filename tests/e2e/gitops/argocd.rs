//! Argo CD's ways of applying, after a reload: client-side apply (kubectl's
//! last-applied-configuration three-way merge, Argo CD's default sync), server-side apply
//! with `--force-conflicts` under Argo CD's field manager (`ServerSideApply=true`), and a
//! replace (`Replace=true`). The README promises that none of them takes kreload's value
//! back or rolls the workload a second time.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use kreload::reload::model::{SourceKind, Strategy, WorkloadKind};

use crate::install::kubectl;
use crate::reload::wait_indexed;
use crate::support::workloads::{
    self as w, create_source, data, expected_hash, get, update_source,
};
use crate::support::{Env, eventually, trial};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    vec![
        trial("gitops::argocd_apply_env_vars", |env| {
            argocd(env, Strategy::EnvVars)
        }),
        trial("gitops::argocd_apply_annotations", |env| {
            argocd(env, Strategy::Annotations)
        }),
    ]
}

/// The Deployment as it is in Git: opted in with Reloader's annotation, reading the Secret,
/// which is not in Git (something else rotates it).
const MANIFEST: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    reloader.stakater.com/auto: "true"
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
      annotations:
        example.com/owner: platform
    spec:
      containers:
        - name: app
          image: registry.k8s.io/pause:3.10
          env:
            - name: MODE
              value: gitops
          envFrom:
            - secretRef: {name: web-credentials}
"#;

async fn argocd(env: Arc<Env>, strategy: Strategy) -> Result<()> {
    let name = format!("argocd-{strategy}");
    let (inst, ns) = super::kreload_for(&env, &name, strategy).await?;
    let secret = "web-credentials";
    create_source(
        &env.client,
        &ns,
        SourceKind::Secret,
        secret,
        &data(&[("password", "v1")]),
        &[],
    )
    .await?;
    kubectl(&env, &["-n", &ns, "apply", "-f", "-"], Some(MANIFEST))?;
    wait_indexed(&inst, 1).await?;
    let gen0 = generation(&env, &ns).await?;

    let rotated = data(&[("password", "v2")]);
    update_source(&env.client, &ns, SourceKind::Secret, secret, &rotated).await?;
    let want = expected_hash(SourceKind::Secret, &rotated);
    let client = env.client.clone();
    eventually(
        "kreload to reload the Deployment",
        Duration::from_secs(60),
        || async {
            let d = get(&client, &ns, WorkloadKind::Deployment, "web").await?;
            Ok(
                (super::kreload_value(strategy, &d, "web-credentials").as_deref()
                    == Some(want.as_str()))
                .then_some(()),
            )
        },
    )
    .await
    .with_context(|| inst.log_tail())
    .with_context(|| format!("the Deployment: {}", template_now(&env, &ns)))?;
    let gen1 = generation(&env, &ns).await?;
    ensure!(gen1 == gen0 + 1, "the reload rolled {gen0} -> {gen1}");

    let syncs: [(&str, Vec<&str>); 3] = [
        ("client-side apply", vec!["apply", "-f", "-"]),
        (
            "server-side apply --force-conflicts",
            vec![
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=argocd-controller",
                "-f",
                "-",
            ],
        ),
        ("replace", vec!["replace", "-f", "-"]),
    ];
    let reloaded = get(&env.client, &ns, WorkloadKind::Deployment, "web").await?;
    let template = w::template(WorkloadKind::Deployment, &reloaded);
    for (how, args) in syncs {
        let mut full = vec!["-n", ns.as_str()];
        full.extend(args);
        kubectl(&env, &full, Some(MANIFEST))?;
        let d = get(&env.client, &ns, WorkloadKind::Deployment, "web").await?;
        let value = super::kreload_value(strategy, &d, "web-credentials");
        let rs = crate::gitops::replica_sets(&env, &ns).await?;
        eprintln!(
            "argocd {strategy}: after {how}: kreload's value {value:?}, {rs} ReplicaSets, \
             generation {} (reload at {gen1}; a Deployment's metadata annotations count too)",
            d["metadata"]["generation"]
        );
        ensure!(
            value.as_deref() == Some(want.as_str()),
            "{how} took kreload's value back: {value:?}"
        );
        let now = w::template(WorkloadKind::Deployment, &d);
        ensure!(
            now == template,
            "{how} changed the pod template (a rollout):\nbefore: {template}\nafter: {now}\n{}",
            template_now(&env, &ns)
        );
        if env.cp.has_controller_manager() {
            ensure!(rs == 2, "{how}: {rs} ReplicaSets, so more than one rollout");
        }
    }
    Ok(())
}

/// The pod template and managed fields, for a failure's message.
fn template_now(env: &Env, ns: &str) -> String {
    kubectl(
        env,
        &[
            "-n",
            ns,
            "get",
            "deployment",
            "web",
            "--show-managed-fields",
            "-o",
            "jsonpath={.spec}{\"\\n\"}{.metadata.managedFields}",
        ],
        None,
    )
    .unwrap_or_else(|e| format!("{e:#}"))
}

async fn generation(env: &Env, ns: &str) -> Result<i64> {
    let d = get(&env.client, ns, WorkloadKind::Deployment, "web").await?;
    Ok(d["metadata"]["generation"].as_i64().unwrap_or_default())
}
