//! Reloads that must happen: every workload kind, both source kinds, every opt-in style,
//! every reference form, under both strategies; real rollouts; Reloader-identical values.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::apps::v1::{ControllerRevision, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use kreload::reload::model::{SourceKind, SourceRef, Strategy, WorkloadKind};
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

use crate::support::workloads::secret;
use crate::support::workloads::{
    self as w, FORMS, Form, KINDS, configmap, create, create_source, data, expected_hash, get,
    last_reloaded, reload_env, update_source,
};
use crate::support::workloads::{update_configmap, update_secret};
use crate::support::{Env, eventually, namespace, trial};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    vec![
        trial("reload::matrix_env_vars", |env| {
            matrix(env, Strategy::EnvVars)
        }),
        trial("reload::matrix_annotations", |env| {
            matrix(env, Strategy::Annotations)
        }),
        trial("reload::real_rollouts_per_kind", real_rollouts_per_kind),
        trial("reload::values_equal_reloaders", values_equal_reloaders),
        trial("reload::job_is_recreated", job_is_recreated),
    ]
}

/// Flags of the shared instances: a short coalescing window keeps the tests quick.
pub const ENV_FLAGS: &[&str] = &["--coalesce-window=2s", "--own-namespace=kreload-home-e2e"];
pub const ANNOTATIONS_FLAGS: &[&str] = &["--coalesce-window=2s", "--reload-strategy=annotations"];

pub async fn env_instance(env: &Env) -> Result<Arc<crate::support::instance::Instance>> {
    env.kreload("env", ENV_FLAGS).await
}

#[derive(Clone, Copy, Debug)]
enum OptIn {
    Auto,
    TypedAuto,
    Named,
    Search,
}

struct Case {
    kind: WorkloadKind,
    name: String,
    source: SourceRef,
    label: String,
    /// The vocabulary that opted the workload in, which the record answers in.
    prefix: &'static str,
}

/// Waits until the instance's index holds at least `count` workloads, so a change made
/// next cannot race the watch that tells kreload about them.
pub async fn wait_indexed(inst: &crate::support::instance::Instance, count: usize) -> Result<()> {
    eventually(
        "kreload to index the workloads",
        Duration::from_secs(60),
        || async {
            let n = inst.metric("kreload_index_workloads", &[]).await?;
            Ok((n >= count as f64).then_some(()))
        },
    )
    .await
}

async fn matrix(env: Arc<Env>, strategy: Strategy) -> Result<()> {
    let inst = match strategy {
        Strategy::EnvVars => env_instance(&env).await?,
        Strategy::Annotations => env.kreload("annotations", ANNOTATIONS_FLAGS).await?,
    };
    let client = env.client.clone();
    let ns = namespace(&client, &format!("matrix-{strategy}"), &inst.labels()).await?;
    let v1 = data(&[("k", "v1")]);
    let v2 = data(&[("k", "v2"), ("extra", "x")]);
    let mut cases = Vec::new();
    let mut i = 0;
    for kind in KINDS {
        for source_kind in [SourceKind::ConfigMap, SourceKind::Secret] {
            for opt in [OptIn::Auto, OptIn::TypedAuto, OptIn::Named, OptIn::Search] {
                for form in FORMS {
                    i += 1;
                    // Alternate the vocabulary so both prefixes are covered everywhere.
                    let prefix = if i % 2 == 0 {
                        "kreload.dev"
                    } else {
                        "reloader.stakater.com"
                    };
                    let src = format!("src-{i}");
                    let name = format!("wl-{i}");
                    let typed = source_kind.as_str();
                    let (annotations, source_annotations): (Value, Vec<(String, String)>) =
                        match opt {
                            OptIn::Auto => (json!({format!("{prefix}/auto"): "true"}), vec![]),
                            OptIn::TypedAuto => {
                                (json!({format!("{typed}.{prefix}/auto"): "true"}), vec![])
                            }
                            // A list with a regex entry that matches only this source.
                            OptIn::Named => (
                                json!({format!("{typed}.{prefix}/reload"): format!("unrelated, src-{i}[a-z]*")}),
                                vec![],
                            ),
                            OptIn::Search => (
                                json!({format!("{prefix}/search"): "true"}),
                                vec![(format!("{prefix}/match"), "true".to_owned())],
                            ),
                        };
                    let sa: Vec<(&str, &str)> = source_annotations
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    create_source(&client, &ns, source_kind, &src, &v1, &sa).await?;
                    create(
                        &client,
                        &ns,
                        &w::workload(
                            kind,
                            &name,
                            annotations,
                            json!({}),
                            w::pod_spec(form, source_kind, &src),
                        ),
                    )
                    .await?;
                    cases.push(Case {
                        kind,
                        name,
                        source: SourceRef {
                            kind: source_kind,
                            name: src,
                        },
                        label: format!("{kind} {source_kind} {opt:?} {form:?} ({prefix})"),
                        prefix,
                    });
                }
            }
        }
    }
    wait_indexed(&inst, cases.len()).await?;
    for case in &cases {
        update_source(&client, &ns, case.source.kind, &case.source.name, &v2).await?;
    }
    let mut pending: Vec<&Case> = cases.iter().collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let want = |kind: SourceKind| expected_hash(kind, &v2);
    while !pending.is_empty() {
        let mut still = Vec::new();
        for case in pending {
            let obj = get(&client, &ns, case.kind, &case.name).await?;
            let done = match strategy {
                Strategy::EnvVars => {
                    reload_env(case.kind, &obj, &case.source) == Some(want(case.source.kind))
                }
                Strategy::Annotations => {
                    last_reloaded(case.kind, &obj, case.prefix).is_some_and(|r| {
                        r.hash == want(case.source.kind)
                            && r.name == case.source.name
                            && r.container_refs == ["app"]
                    })
                }
            };
            if !done {
                still.push(case);
            }
        }
        pending = still;
        if !pending.is_empty() && std::time::Instant::now() > deadline {
            let missing: Vec<&str> = pending.iter().map(|c| c.label.as_str()).collect();
            anyhow::bail!(
                "{} of {} workloads did not reload within 120s: {missing:#?}\nkreload log:\n{}",
                missing.len(),
                cases.len(),
                inst.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "reload::matrix_{strategy}: {} workloads reloaded",
        cases.len()
    );
    Ok(())
}

/// The reload makes the controllers roll: a new ReplicaSet, a new StatefulSet and
/// DaemonSet revision; a CronJob only changes its template (no Job is started).
async fn real_rollouts_per_kind(env: Arc<Env>) -> Result<()> {
    let inst = env_instance(&env).await?;
    let client = env.client.clone();
    let ns = namespace(&client, "rollouts", &inst.labels()).await?;
    configmap(&client, &ns, "shared", &[("k", "1")]).await?;
    let auto = json!({"reloader.stakater.com/auto": "true"});
    for kind in KINDS {
        let name = kind.api_kind().to_lowercase();
        create(
            &client,
            &ns,
            &w::workload(
                kind,
                &name,
                auto.clone(),
                json!({}),
                w::pod_spec(Form::EnvFrom, SourceKind::ConfigMap, "shared"),
            ),
        )
        .await?;
    }
    let rs: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    let revisions: Api<ControllerRevision> = Api::namespaced(client.clone(), &ns);
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let count_rs = || async {
        Ok::<_, anyhow::Error>(
            rs.list(&ListParams::default().labels("app=deployment"))
                .await?
                .items
                .len(),
        )
    };
    let count_rev = |app: &'static str| {
        let revisions = revisions.clone();
        async move {
            Ok::<_, anyhow::Error>(
                revisions
                    .list(&ListParams::default().labels(&format!("app={app}")))
                    .await?
                    .items
                    .len(),
            )
        }
    };
    eventually("first revisions", Duration::from_secs(60), || async {
        Ok((count_rs().await? == 1
            && count_rev("daemonset").await? == 1
            && count_rev("statefulset").await? == 1)
            .then_some(()))
    })
    .await?;
    let sts_revision = sts
        .get("statefulset")
        .await?
        .status
        .and_then(|s| s.update_revision);
    wait_indexed(&inst, 4).await?;
    update_configmap(&client, &ns, "shared", &[("k", "2")]).await?;
    eventually(
        "a second ReplicaSet and new revisions",
        Duration::from_secs(60),
        || async {
            let sts_now = sts
                .get("statefulset")
                .await?
                .status
                .and_then(|s| s.update_revision);
            Ok((count_rs().await? == 2
                && count_rev("daemonset").await? == 2
                && count_rev("statefulset").await? == 2
                && sts_now != sts_revision)
                .then_some(()))
        },
    )
    .await?;
    let cron = get(&client, &ns, WorkloadKind::CronJob, "cronjob").await?;
    let source = SourceRef {
        kind: SourceKind::ConfigMap,
        name: "shared".into(),
    };
    ensure!(
        reload_env(WorkloadKind::CronJob, &cron, &source)
            == Some(expected_hash(SourceKind::ConfigMap, &data(&[("k", "2")])))
    );
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    ensure!(
        jobs.list(&ListParams::default()).await?.items.is_empty(),
        "a CronJob reload must not start a Job"
    );
    Ok(())
}

/// The variable name and value, and the annotation record, are what Reloader writes for
/// the same input. Expected hashes computed independently:
/// `python3 -c "import hashlib; print(hashlib.sha1(b'mode=blue;replicas=3').hexdigest())"`.
async fn values_equal_reloaders(env: Arc<Env>) -> Result<()> {
    const CM_HASH: &str = "76ee6717ef0c61b4b69afb0f9c2b48c7a485f3c0"; // mode=blue;replicas=3
    const SECRET_HASH: &str = "e013dcfd8b3a9e80e812740978788202e1ef1325"; // password=s3cr3t;user=admin
    let client = env.client.clone();
    for (profile, flags) in [("env", ENV_FLAGS), ("annotations", ANNOTATIONS_FLAGS)] {
        let inst = env.kreload(profile, flags).await?;
        let ns = namespace(&client, &format!("compat-{profile}"), &inst.labels()).await?;
        configmap(&client, &ns, "my-app.config", &[("mode", "green")]).await?;
        secret(&client, &ns, "db-credentials", &[("user", "root")]).await?;
        let cm_spec = w::pod_spec(Form::EnvFrom, SourceKind::ConfigMap, "my-app.config");
        let secret_spec = w::pod_spec(Form::Volume, SourceKind::Secret, "db-credentials");
        let cm_web = w::workload(
            WorkloadKind::Deployment,
            "web-cm",
            json!({"reloader.stakater.com/auto": "true"}),
            json!({}),
            cm_spec,
        );
        let secret_web = w::workload(
            WorkloadKind::Deployment,
            "web-secret",
            json!({"secret.reloader.stakater.com/reload": "db-credentials"}),
            json!({}),
            secret_spec,
        );
        create(&client, &ns, &cm_web).await?;
        create(&client, &ns, &secret_web).await?;
        wait_indexed(&inst, 2).await?;
        update_configmap(
            &client,
            &ns,
            "my-app.config",
            &[("mode", "blue"), ("replicas", "3")],
        )
        .await?;
        update_secret(
            &client,
            &ns,
            "db-credentials",
            &[("user", "admin"), ("password", "s3cr3t")],
        )
        .await?;
        let d = WorkloadKind::Deployment;
        if profile == "env" {
            let (cm, secret) = eventually("both reloads", Duration::from_secs(60), || async {
                let a = w::env_value(
                    d,
                    &get(&client, &ns, d, "web-cm").await?,
                    "STAKATER_MY_APP_CONFIG_CONFIGMAP",
                );
                let b = w::env_value(
                    d,
                    &get(&client, &ns, d, "web-secret").await?,
                    "STAKATER_DB_CREDENTIALS_SECRET",
                );
                Ok(a.zip(b))
            })
            .await?;
            assert_eq!(cm, CM_HASH);
            assert_eq!(secret, SECRET_HASH);
        } else {
            let record = eventually("the record", Duration::from_secs(60), || async {
                Ok(last_reloaded(
                    d,
                    &get(&client, &ns, d, "web-cm").await?,
                    "reloader.stakater.com",
                )
                .filter(|r| r.hash == CM_HASH))
            })
            .await?;
            let json: Value = serde_json::from_str(&serde_json::to_string(&record)?)?;
            let keys: Vec<&String> = json.as_object().context("object")?.keys().collect();
            assert_eq!(
                keys,
                [
                    "containerRefs",
                    "hash",
                    "name",
                    "namespace",
                    "observedAt",
                    "type"
                ]
            );
            assert_eq!(json["type"], "CONFIGMAP");
            assert_eq!(json["name"], "my-app.config");
            assert_eq!(json["namespace"], ns.as_str());
            assert_eq!(json["containerRefs"], json!(["app"]));
            // No STAKATER variable under the annotations strategy.
            let obj = get(&client, &ns, d, "web-cm").await?;
            assert_eq!(
                w::env_value(d, &obj, "STAKATER_MY_APP_CONFIG_CONFIGMAP"),
                None
            );
        }
    }
    Ok(())
}

/// A Job cannot change its template; like Reloader, kreload recreates it.
async fn job_is_recreated(env: Arc<Env>) -> Result<()> {
    let inst = env_instance(&env).await?;
    let client = env.client.clone();
    let ns = namespace(&client, "job", &inst.labels()).await?;
    secret(&client, &ns, "token", &[("t", "1")]).await?;
    let job = w::workload(
        WorkloadKind::Job,
        "migrate",
        json!({"kreload.dev/auto": "true"}),
        json!({}),
        w::pod_spec(Form::Volume, SourceKind::Secret, "token"),
    );
    create(&client, &ns, &job).await?;
    let before = get(&client, &ns, WorkloadKind::Job, "migrate").await?;
    wait_indexed(&inst, 1).await?;
    update_secret(&client, &ns, "token", &[("t", "2")]).await?;
    let source = SourceRef {
        kind: SourceKind::Secret,
        name: "token".into(),
    };
    let want = expected_hash(SourceKind::Secret, &data(&[("t", "2")]));
    let after = eventually(
        "the Job to be recreated",
        Duration::from_secs(60),
        || async {
            match get(&client, &ns, WorkloadKind::Job, "migrate").await {
                Ok(obj) if obj["metadata"]["uid"] != before["metadata"]["uid"] => Ok(Some(obj)),
                _ => Ok(None),
            }
        },
    )
    .await?;
    assert_eq!(reload_env(WorkloadKind::Job, &after, &source), Some(want));
    Ok(())
}
