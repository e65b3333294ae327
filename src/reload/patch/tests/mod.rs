use super::*;
use serde_json::json;

use WorkloadKind::*;

const H1: &str = "86eda770a6060824b090dd4df091e3bd4121279c";
const H2: &str = "112240a7d992e03a90439a8cee8f0281e19edf75";
const NOW: i64 = 1_700_000_000;
const NOW_RFC3339: &str = "2023-11-14T22:13:20Z";

fn cm(n: &str) -> SourceRef {
    SourceRef::configmap(n)
}

/// A pod template: `app` takes configmap/app-config by envFrom and has one plain env var;
/// `sidecar` mounts secret/tls; the init container alone mounts configmap/init-cfg.
fn template() -> Value {
    json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {
            "volumes": [
                {"name": "tls", "secret": {"secretName": "tls"}},
                {"name": "init", "configMap": {"name": "init-cfg"}}
            ],
            "initContainers": [{"name": "setup", "image": "busybox",
                "volumeMounts": [{"name": "init", "mountPath": "/init"}]}],
            "containers": [
                {"name": "app", "image": "web:1",
                 "envFrom": [{"configMapRef": {"name": "app-config"}}],
                 "env": [{"name": "LOG", "value": "info"}]},
                {"name": "sidecar", "image": "proxy:1",
                 "volumeMounts": [{"name": "tls", "mountPath": "/tls"}]}
            ]
        }
    })
}

/// A live object of `kind` around `template`, at resourceVersion 100.
fn workload(kind: WorkloadKind, annotations: Option<Value>, template: Value) -> Value {
    let api_version = match kind {
        CronJob | Job => "batch/v1",
        Rollout => "argoproj.io/v1alpha1",
        _ => "apps/v1",
    };
    let selector = json!({"matchLabels": {"app": "web"}});
    let spec = match kind {
        CronJob => {
            json!({"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": template}}})
        }
        Rollout => json!({"replicas": 2, "selector": selector, "template": template,
            "strategy": {"canary": {"steps": [{"setWeight": 20}]}}}),
        _ => json!({"selector": selector, "template": template}),
    };
    let mut obj = json!({
        "apiVersion": api_version,
        "kind": kind.api_kind(),
        "metadata": {"name": "web", "namespace": "prod", "resourceVersion": "100", "uid": "u-1"},
        "spec": spec,
        "status": {"observedGeneration": 3}
    });
    if let Some(a) = annotations {
        obj["metadata"]["annotations"] = a;
    }
    obj
}

fn change<'a>(src: &'a SourceRef, hash: &'a str, strategy: Strategy, auto: bool) -> Change<'a> {
    Change {
        source: src,
        hash,
        deleted: false,
        strategy,
        auto,
        annotation_prefix: "kreload.dev",
        now_unix: NOW,
        now_rfc3339: NOW_RFC3339,
    }
}

/// What the worker does: read the typed views it needs out of the live JSON, then plan.
fn plan_for(obj: &Value, kind: WorkloadKind, c: &Change) -> Plan {
    let annotations: BTreeMap<String, String> = obj
        .pointer("/metadata/annotations")
        .map(|a| serde_json::from_value(a.clone()).expect("string map"))
        .unwrap_or_default();
    let template: PodTemplateSpec = serde_json::from_value(
        obj.pointer(template_path(kind))
            .cloned()
            .expect("template present"),
    )
    .expect("valid template");
    let rv = obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default();
    let rollout_strategy = RolloutStrategy::from_annotation(
        annotations
            .get("kreload.dev/rollout-strategy")
            .map(String::as_str),
    );
    plan(
        &Target {
            kind,
            namespace: "prod",
            resource_version: rv,
            annotations: &annotations,
            template: &template,
            rollout_strategy,
        },
        c,
    )
}

fn patch_of(p: Plan) -> Patch {
    match p {
        Plan::Patch(p) => p,
        other => panic!("expected a patch, got {other:?}"),
    }
}

/// Plans, applies the patch like the API server would, and bumps resourceVersion.
fn reload(obj: &mut Value, kind: WorkloadKind, c: &Change) -> Patch {
    let p = patch_of(plan_for(obj, kind, c));
    json_patch::patch(obj, &p).expect("patch applies to the live object");
    let rv: u64 = obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("numeric rv");
    obj["metadata"]["resourceVersion"] = json!((rv + 1).to_string());
    p
}

fn env_of(obj: &Value, kind: WorkloadKind, container: usize) -> Value {
    let path = format!("{}/spec/containers/{container}/env", template_path(kind));
    obj.pointer(&path).cloned().unwrap_or(Value::Null)
}

fn observed_of(obj: &Value) -> Observed {
    Observed::parse(
        obj["metadata"]["annotations"][OBSERVED]
            .as_str()
            .expect("observed annotation written"),
    )
    .expect("observed annotation valid")
}

#[test]
fn template_paths() {
    assert_eq!(template_path(Deployment), "/spec/template");
    assert_eq!(template_path(StatefulSet), "/spec/template");
    assert_eq!(template_path(DaemonSet), "/spec/template");
    assert_eq!(template_path(Job), "/spec/template");
    assert_eq!(template_path(Rollout), "/spec/template");
    assert_eq!(template_path(CronJob), "/spec/jobTemplate/spec/template");
}

mod env_vars;
mod marks;
