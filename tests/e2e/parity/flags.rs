//! Reloader's command lines: what Reloader's chart (v2.2.15, Reloader v1.4.21's source tree)
//! renders, run as they are by kreload, and Reloader's annotation-key flags end to end.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, ensure};
use kreload::reload::model::{SourceKind, SourceRef, WorkloadKind};
use serde_json::json;

use crate::reload::wait_indexed;
use crate::support::instance::{Extra, Instance};
use crate::support::workloads::{
    self as w, Form, create, create_source, data, expected_hash, get, reload_env, update_source,
};
use crate::support::{Env, eventually, namespace};

const D: WorkloadKind = WorkloadKind::Deployment;

/// `helm template r deployments/kubernetes/chart/reloader --namespace tools` with the
/// chart's default values: the arguments, and the environment Reloader reads.
const DEFAULT_ARGS: &[&str] = &["--log-level=info"];
const DEFAULT_ENV: &[(&str, &str)] = &[
    ("GOMAXPROCS", "2"),
    ("RELOADER_NAMESPACE", "tools"),
    ("RELOADER_DEPLOYMENT_NAME", "r-reloader"),
];

/// The same chart with every `reloader.*` value that maps to a flag set (except `enableHA`
/// and `syncAfterRestart`, which another branch adds): logFormat=json, logLevel=warning,
/// ignoreSecrets, ignoreConfigMaps, ignoreJobs, ignoreCronJobs, ignoreNamespaces,
/// namespaceSelector, resourceLabelSelector, enablePProf, pprofAddr, enableCSIIntegration,
/// every custom_annotations key, webhookUrl, isArgoRollouts, reloadOnCreate,
/// reloadOnDelete, reloadStrategy, autoReloadAll; enableMetricsByNamespace sets the env.
const EVERY_ARGS: &[&str] = &[
    "--log-format=json",
    "--log-level=warning",
    "--resources-to-ignore=secrets",
    "--resources-to-ignore=configmaps",
    "--ignored-workload-types=jobs,cronjobs",
    "--namespaces-to-ignore=kube-public,legacy",
    "--namespace-selector=\"team=a,env notin (dev)\"",
    "--resource-label-selector=reload=yes",
    "--enable-pprof",
    "--pprof-addr=:6061",
    "--enable-csi-integration=true",
    "--configmap-annotation",
    "example.com/cm-reload",
    "--secret-annotation",
    "example.com/secret-reload",
    "--auto-annotation",
    "example.com/auto",
    "--secret-auto-annotation",
    "example.com/secret-auto",
    "--configmap-auto-annotation",
    "example.com/cm-auto",
    "--auto-search-annotation",
    "example.com/search",
    "--search-match-annotation",
    "example.com/match",
    "--ignore-annotation",
    "example.com/ignore",
    "--pause-deployment-annotation",
    "example.com/pause-period",
    "--pause-deployment-time-annotation",
    "example.com/paused-at",
    "--webhook-url",
    "http://127.0.0.1:9/hook",
    "--is-Argo-Rollouts=true",
    "--reload-on-create=true",
    "--reload-on-delete=true",
    "--reload-strategy=annotations",
    "--auto-reload-all=true",
];

fn with_window(args: &[&'static str]) -> Vec<&'static str> {
    let mut flags = vec!["--coalesce-window=1s"];
    flags.extend_from_slice(args);
    flags
}

/// Both rendered command lines start kreload and its webhooks answer; under the default
/// one, a Reloader-annotated Deployment reloads with Reloader's variable.
pub async fn chart_command_lines(env: Arc<Env>) -> Result<()> {
    let client = env.client.clone();
    let kubeconfig = env.cp.kubeconfig();
    let every_env: Vec<(&str, &str)> = DEFAULT_ENV
        .iter()
        .copied()
        .chain([("METRICS_COUNT_BY_NAMESPACE", "enabled")])
        .collect();
    let every = Extra {
        canary_labels: &[("team", "a")],
        envs: &every_env,
        ..Extra::default()
    };
    let flags = with_window(EVERY_ARGS);
    let full = Instance::start_extra(
        &client,
        kubeconfig,
        "chart-every",
        "chart-every",
        &flags,
        &every,
    )
    .await?;
    drop(full);

    let extra = Extra {
        envs: DEFAULT_ENV,
        ..Extra::default()
    };
    let flags = with_window(DEFAULT_ARGS);
    let inst = Instance::start_extra(
        &client,
        kubeconfig,
        "chart-default",
        "chart-default",
        &flags,
        &extra,
    )
    .await?;
    let ns = namespace(&client, "chart-default", &inst.labels()).await?;
    crate::support::workloads::configmap(&client, &ns, "cfg", &[("k", "1")]).await?;
    let spec = w::pod_spec(Form::EnvFrom, SourceKind::ConfigMap, "cfg");
    let web = w::workload(
        D,
        "web",
        json!({"reloader.stakater.com/auto": "true"}),
        json!({}),
        spec,
    );
    create(&client, &ns, &web).await?;
    wait_indexed(&inst, 1).await?;
    let v2 = data(&[("k", "2")]);
    update_source(&client, &ns, SourceKind::ConfigMap, "cfg", &v2).await?;
    let want = expected_hash(SourceKind::ConfigMap, &v2);
    eventually("the reload", Duration::from_secs(60), || async {
        let obj = get(&client, &ns, D, "web").await?;
        Ok((reload_env(D, &obj, &SourceRef::configmap("cfg")) == Some(want.clone())).then_some(()))
    })
    .await
}

/// The annotation-key flags replace Reloader's keys: the replacements opt in, mark, ignore
/// and name sources; Reloader's replaced key no longer does anything; kreload's own keys
/// keep working.
pub async fn annotation_key_flags(env: Arc<Env>) -> Result<()> {
    let client = env.client.clone();
    let flags = with_window(&[
        "--configmap-annotation",
        "example.com/cm-reload",
        "--auto-annotation",
        "example.com/auto",
        "--auto-search-annotation",
        "example.com/search",
        "--search-match-annotation",
        "example.com/match",
        "--ignore-annotation",
        "example.com/ignore",
    ]);
    let inst = Instance::start(&client, env.cp.kubeconfig(), "keys", "keys", &flags).await?;
    let ns = namespace(&client, "keys", &inst.labels()).await?;
    let v1 = data(&[("k", "1")]);
    let cm = SourceKind::ConfigMap;
    // (workload, its annotations, its source, the source's annotations, reloads?)
    let cases = [
        (
            "custom-auto",
            json!({"example.com/auto": "true"}),
            "a",
            vec![],
            true,
        ),
        (
            "named",
            json!({"example.com/cm-reload": "n.*"}),
            "nx",
            vec![],
            true,
        ),
        (
            "search",
            json!({"example.com/search": "true"}),
            "m",
            vec![("example.com/match", "true")],
            true,
        ),
        (
            "ours",
            json!({"kreload.dev/auto": "true"}),
            "o",
            vec![],
            true,
        ),
        (
            "ignored",
            json!({"example.com/auto": "true"}),
            "i",
            vec![("example.com/ignore", "true")],
            false,
        ),
        (
            "replaced",
            json!({"reloader.stakater.com/auto": "true"}),
            "r",
            vec![],
            false,
        ),
    ];
    for (name, annotations, source, source_annotations, _) in &cases {
        create_source(&client, &ns, cm, source, &v1, source_annotations).await?;
        let spec = w::pod_spec(Form::EnvFrom, cm, source);
        create(
            &client,
            &ns,
            &w::workload(D, name, annotations.clone(), json!({}), spec),
        )
        .await?;
    }
    // "replaced" does not opt in any more, so it is not indexed.
    wait_indexed(&inst, cases.len() - 1).await?;
    let v2 = data(&[("k", "2")]);
    // Those that must not reload are changed first.
    for (_, _, source, _, _) in cases.iter().rev() {
        update_source(&client, &ns, cm, source, &v2).await?;
    }
    let want = expected_hash(cm, &v2);
    for (name, _, source, _, reloads) in cases.iter().filter(|c| c.4) {
        eventually(
            &format!("{name} to reload"),
            Duration::from_secs(60),
            || async {
                let obj = get(&client, &ns, D, name).await?;
                let done =
                    reload_env(D, &obj, &SourceRef::configmap(*source)) == Some(want.clone());
                Ok((done == *reloads).then_some(()))
            },
        )
        .await?;
    }
    for (name, _, source, _, _) in cases.iter().filter(|c| !c.4) {
        let obj = get(&client, &ns, D, name).await?;
        ensure!(
            reload_env(D, &obj, &SourceRef::configmap(*source)).is_none(),
            "{name} reloaded"
        );
    }
    Ok(())
}
