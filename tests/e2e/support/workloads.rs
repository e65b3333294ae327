//! Builders and readers for the workloads and sources the tests use.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kreload::kube::workloads::api_resource;
use kreload::reload::hash::{configmap_hash, secret_hash};
use kreload::reload::model::{SourceKind, SourceRef, WorkloadKind};
use kreload::reload::patch::{ReloadRecord, env_var_name, template_path};
use kube::api::{Api, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

pub const IMAGE: &str = "registry.k8s.io/pause:3.10";

/// The ways a pod spec can use a ConfigMap or Secret (README, "Opting in").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    Volume,
    Projected,
    EnvValueFrom,
    EnvFrom,
    InitContainer,
}

pub const FORMS: [Form; 5] = [
    Form::Volume,
    Form::Projected,
    Form::EnvValueFrom,
    Form::EnvFrom,
    Form::InitContainer,
];

pub const KINDS: [WorkloadKind; 4] = [
    WorkloadKind::Deployment,
    WorkloadKind::StatefulSet,
    WorkloadKind::DaemonSet,
    WorkloadKind::CronJob,
];

fn env_from(kind: SourceKind, name: &str) -> Value {
    match kind {
        SourceKind::ConfigMap => json!([{"configMapRef": {"name": name}}]),
        SourceKind::Secret => json!([{"secretRef": {"name": name}}]),
        SourceKind::SecretProviderClass => no_data(kind),
    }
}

/// A SecretProviderClass has no env form and no data of its own: tests/e2e/csi.rs writes
/// its statuses instead.
fn no_data(kind: SourceKind) -> ! {
    panic!("{kind} has no env reference and no data; use the helpers in tests/e2e/csi.rs")
}

/// A CSI Secrets Store volume `src` naming the SecretProviderClass `name`, as the driver's
/// documentation writes it.
pub fn csi_volume(name: &str) -> Value {
    json!({"name": "src", "csi": {
        "driver": kreload::reload::csi::DRIVER,
        "readOnly": true,
        "volumeAttributes": {"secretProviderClass": name},
    }})
}

/// A pod spec with one container `app` that uses `name` in the given form.
pub fn pod_spec(form: Form, kind: SourceKind, name: &str) -> Value {
    let mut app = json!({"name": "app", "image": IMAGE});
    let mut spec = json!({});
    match form {
        Form::Volume => {
            spec["volumes"] = match kind {
                SourceKind::ConfigMap => json!([{"name": "src", "configMap": {"name": name}}]),
                SourceKind::Secret => json!([{"name": "src", "secret": {"secretName": name}}]),
                SourceKind::SecretProviderClass => json!([csi_volume(name)]),
            };
            app["volumeMounts"] = json!([{"name": "src", "mountPath": "/etc/src"}]);
        }
        Form::Projected => {
            let source = match kind {
                SourceKind::ConfigMap => json!({"configMap": {"name": name}}),
                SourceKind::Secret => json!({"secret": {"name": name}}),
                SourceKind::SecretProviderClass => no_data(kind),
            };
            spec["volumes"] = json!([{"name": "src", "projected": {"sources": [source]}}]);
            app["volumeMounts"] = json!([{"name": "src", "mountPath": "/etc/src"}]);
        }
        Form::EnvValueFrom => {
            let from = match kind {
                SourceKind::ConfigMap => json!({"configMapKeyRef": {"name": name, "key": "k"}}),
                SourceKind::Secret => json!({"secretKeyRef": {"name": name, "key": "k"}}),
                SourceKind::SecretProviderClass => no_data(kind),
            };
            app["env"] = json!([{"name": "VALUE", "valueFrom": from}]);
        }
        Form::EnvFrom => app["envFrom"] = env_from(kind, name),
        Form::InitContainer => {
            spec["initContainers"] =
                json!([{"name": "init", "image": IMAGE, "envFrom": env_from(kind, name)}]);
        }
    }
    spec["containers"] = json!([app]);
    spec
}

/// A complete workload object.
pub fn workload(
    kind: WorkloadKind,
    name: &str,
    annotations: Value,
    template_annotations: Value,
    spec: Value,
) -> Value {
    let mut spec = spec;
    let template = |spec: Value| json!({"metadata": {"labels": {"app": name}, "annotations": template_annotations}, "spec": spec});
    let selector = json!({"matchLabels": {"app": name}});
    let body = match kind {
        WorkloadKind::Deployment => {
            json!({"replicas": 1, "selector": selector, "template": template(spec)})
        }
        WorkloadKind::StatefulSet => {
            json!({"replicas": 1, "serviceName": name, "selector": selector, "template": template(spec)})
        }
        WorkloadKind::DaemonSet => json!({"selector": selector, "template": template(spec)}),
        WorkloadKind::CronJob | WorkloadKind::Job => {
            spec["restartPolicy"] = "Never".into();
            let job = json!({"template": template(spec)});
            if kind == WorkloadKind::Job {
                job
            } else {
                json!({"schedule": "0 0 1 1 *", "jobTemplate": {"spec": job}})
            }
        }
        WorkloadKind::Rollout => json!({"selector": selector, "template": template(spec)}),
    };
    let resource = api_resource(kind);
    json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": {"name": name, "annotations": annotations},
        "spec": body,
    })
}

fn api(client: &kube::Client, ns: &str, kind: WorkloadKind) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &api_resource(kind))
}

pub async fn create(client: &kube::Client, ns: &str, obj: &Value) -> Result<()> {
    let kind =
        WorkloadKind::from_api_kind(obj["kind"].as_str().unwrap_or_default()).context("kind")?;
    let dynamic: DynamicObject = serde_json::from_value(obj.clone())?;
    api(client, ns, kind)
        .create(&PostParams::default(), &dynamic)
        .await
        .with_context(|| format!("creating {kind} {}", obj["metadata"]["name"]))?;
    Ok(())
}

pub async fn get(client: &kube::Client, ns: &str, kind: WorkloadKind, name: &str) -> Result<Value> {
    let obj = api(client, ns, kind)
        .get(name)
        .await
        .with_context(|| format!("reading {kind} {ns}/{name}"))?;
    Ok(serde_json::to_value(obj)?)
}

pub fn template(kind: WorkloadKind, obj: &Value) -> Value {
    obj.pointer(template_path(kind))
        .cloned()
        .unwrap_or(Value::Null)
}

/// The value of env var `var` on the first container of the workload's template.
pub fn env_value(kind: WorkloadKind, obj: &Value, var: &str) -> Option<String> {
    template(kind, obj)["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == var)
        .and_then(|e| e["value"].as_str().map(str::to_owned))
}

/// kreload's env var for `source` on the first container.
pub fn reload_env(kind: WorkloadKind, obj: &Value, source: &SourceRef) -> Option<String> {
    env_value(kind, obj, &env_var_name(source))
}

/// The `last-reloaded-from` record under `prefix` on the template.
pub fn last_reloaded(kind: WorkloadKind, obj: &Value, prefix: &str) -> Option<ReloadRecord> {
    let key = format!("{prefix}/last-reloaded-from");
    template(kind, obj)["metadata"]["annotations"][key]
        .as_str()
        .and_then(ReloadRecord::parse)
}

pub fn generation(obj: &Value) -> i64 {
    obj["metadata"]["generation"].as_i64().unwrap_or_default()
}

pub fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// What kreload must write for this content (Reloader's algorithm, unit-tested against
/// independent vectors).
pub fn expected_hash(kind: SourceKind, data: &BTreeMap<String, String>) -> String {
    match kind {
        SourceKind::ConfigMap => configmap_hash(Some(data), None),
        SourceKind::Secret => {
            let bytes: BTreeMap<String, ByteString> = data
                .iter()
                .map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes())))
                .collect();
            secret_hash(Some(&bytes), None)
        }
        SourceKind::SecretProviderClass => no_data(kind),
    }
}

pub async fn create_source(
    client: &kube::Client,
    ns: &str,
    kind: SourceKind,
    name: &str,
    data: &BTreeMap<String, String>,
    annotations: &[(&str, &str)],
) -> Result<()> {
    let metadata = ObjectMeta {
        name: Some(name.to_owned()),
        annotations: Some(
            annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ),
        ..Default::default()
    };
    match kind {
        SourceKind::ConfigMap => {
            let cm = ConfigMap {
                metadata,
                data: Some(data.clone()),
                ..Default::default()
            };
            Api::<ConfigMap>::namespaced(client.clone(), ns)
                .create(&PostParams::default(), &cm)
                .await?;
        }
        SourceKind::Secret => {
            let s = Secret {
                metadata,
                data: Some(
                    data.iter()
                        .map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes())))
                        .collect(),
                ),
                ..Default::default()
            };
            Api::<Secret>::namespaced(client.clone(), ns)
                .create(&PostParams::default(), &s)
                .await?;
        }
        SourceKind::SecretProviderClass => no_data(kind),
    }
    Ok(())
}

/// Creates a ConfigMap with these data entries and no annotations.
pub async fn configmap(
    client: &kube::Client,
    ns: &str,
    name: &str,
    entries: &[(&str, &str)],
) -> Result<()> {
    create_source(client, ns, SourceKind::ConfigMap, name, &data(entries), &[]).await
}

/// Creates a Secret with these entries (given in plain text).
pub async fn secret(
    client: &kube::Client,
    ns: &str,
    name: &str,
    entries: &[(&str, &str)],
) -> Result<()> {
    create_source(client, ns, SourceKind::Secret, name, &data(entries), &[]).await
}

/// Replaces the data of a ConfigMap or Secret (a merge patch of `data`, with removed keys
/// set to null).
pub async fn update_source(
    client: &kube::Client,
    ns: &str,
    kind: SourceKind,
    name: &str,
    data: &BTreeMap<String, String>,
) -> Result<()> {
    update_source_with(client, ns, kind, name, data, &PatchParams::default()).await
}

/// Sets a ConfigMap's data to `pairs` (merge patch), the most common step of these tests.
pub async fn update_configmap(
    client: &kube::Client,
    ns: &str,
    name: &str,
    pairs: &[(&str, &str)],
) -> Result<()> {
    update_source(client, ns, SourceKind::ConfigMap, name, &data(pairs)).await
}

/// Sets a Secret's data to `pairs` (given in plain text, stored base64-encoded).
pub async fn update_secret(
    client: &kube::Client,
    ns: &str,
    name: &str,
    pairs: &[(&str, &str)],
) -> Result<()> {
    update_source(client, ns, SourceKind::Secret, name, &data(pairs)).await
}

pub async fn update_source_with(
    client: &kube::Client,
    ns: &str,
    kind: SourceKind,
    name: &str,
    data: &BTreeMap<String, String>,
    params: &PatchParams,
) -> Result<()> {
    let body = match kind {
        SourceKind::ConfigMap => json!({"data": data}),
        SourceKind::Secret => {
            let encoded: BTreeMap<&String, String> = data
                .iter()
                .map(|(k, v)| {
                    (
                        k,
                        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, v),
                    )
                })
                .collect();
            json!({"data": encoded})
        }
        SourceKind::SecretProviderClass => no_data(kind),
    };
    let patch = Patch::Merge(&body);
    match kind {
        SourceKind::ConfigMap => {
            Api::<ConfigMap>::namespaced(client.clone(), ns)
                .patch(name, params, &patch)
                .await?;
        }
        SourceKind::Secret => {
            Api::<Secret>::namespaced(client.clone(), ns)
                .patch(name, params, &patch)
                .await?;
        }
        SourceKind::SecretProviderClass => no_data(kind),
    }
    Ok(())
}
