//! The workload mutation: on CREATE and UPDATE of an opted-in workload, record in the
//! metadata annotation `kreload.dev/observed` the content hashes of the ConfigMaps and
//! Secrets its pod template now reflects (a metadata annotation never rolls pods), and put
//! back kreload's own env var or template annotation when an UPDATE drops them (a GitOps
//! re-apply with replace), so that re-apply causes no rollout. Never denies.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, PodTemplateSpec, Secret};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::{Api, Client};
use serde_json::{Value, json};

use futures::future::BoxFuture;

use super::review::Reviewer;
use super::sources::SourceFilter;
use crate::reload::hash::{configmap_hash_of, secret_hash_of};
use crate::reload::keys::{ENV_PREFIX, Key, OBSERVED, Vocabulary};
use crate::reload::model::{SourceKind, SourceRef, WorkloadKind};
use crate::reload::observed::Observed;
use crate::reload::patch::template_path;
use crate::reload::refs::pod_refs;
use crate::reload::rules::{RuleOptions, opted_in};

pub struct WorkloadsReviewer {
    pub client: Client,
    pub rules: Arc<RuleOptions>,
    pub filter: SourceFilter,
    /// Budget for reading the referenced objects; the webhook timeout is a few seconds.
    pub read_budget: Duration,
}

/// Escapes one JSON Pointer segment (RFC 6901).
pub fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn template(kind: WorkloadKind, obj: &Value) -> Option<PodTemplateSpec> {
    obj.pointer(template_path(kind))
        .and_then(|t| serde_json::from_value(t.clone()).ok())
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// Operations that put back kreload's env vars and last-reloaded-from annotations that
/// `old` had and `new` lost. Pure; the operations apply to `new`.
pub fn restore_ops(
    kind: WorkloadKind,
    vocabulary: &Vocabulary,
    old: &Value,
    new: &Value,
) -> Vec<Value> {
    let base = template_path(kind);
    let mut ops = Vec::new();
    let (Some(old_t), Some(new_t)) = (old.pointer(base), new.pointer(base)) else {
        return ops;
    };
    let ours = |name: &str| {
        name.starts_with(ENV_PREFIX) && (name.ends_with("_CONFIGMAP") || name.ends_with("_SECRET"))
    };
    let empty = Vec::new();
    let old_containers = old_t
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let new_containers = new_t
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    for (i, nc) in new_containers.iter().enumerate() {
        let Some(oc) = old_containers
            .iter()
            .find(|oc| oc.get("name") == nc.get("name"))
        else {
            continue;
        };
        let new_env = nc.get("env").and_then(Value::as_array);
        for var in oc.get("env").and_then(Value::as_array).unwrap_or(&empty) {
            let Some(name) = var.get("name").and_then(Value::as_str) else {
                continue;
            };
            if !ours(name) {
                continue;
            }
            let present = new_env
                .map(|e| {
                    e.iter()
                        .any(|v| v.get("name").and_then(Value::as_str) == Some(name))
                })
                .unwrap_or(false);
            if present {
                continue;
            }
            if new_env.is_some() {
                ops.push(json!({"op": "add", "path": format!("{base}/spec/containers/{i}/env/-"), "value": var}));
            } else {
                ops.push(json!({"op": "add", "path": format!("{base}/spec/containers/{i}/env"), "value": [var]}));
            }
        }
    }
    let old_ann = string_map(old_t.pointer("/metadata/annotations"));
    let new_ann = new_t.pointer("/metadata/annotations");
    let mut missing = BTreeMap::new();
    for prefix in vocabulary.prefixes() {
        let key = Key::LastReloadedFrom.with_prefix(prefix);
        if let Some(v) = old_ann.get(&key)
            && new_ann.and_then(|a| a.get(&key)).is_none()
        {
            missing.insert(key, v.clone());
        }
    }
    if !missing.is_empty() {
        if new_ann.is_some() {
            for (k, v) in missing {
                ops.push(json!({"op": "add", "path": format!("{base}/metadata/annotations/{}", escape(&k)), "value": v}));
            }
        } else if new_t.get("metadata").is_some() {
            ops.push(json!({"op": "add", "path": format!("{base}/metadata/annotations"), "value": missing}));
        } else {
            ops.push(json!({"op": "add", "path": format!("{base}/metadata"), "value": {"annotations": missing}}));
        }
    }
    ops
}

impl Reviewer for WorkloadsReviewer {
    fn review(&self, req: AdmissionRequest<DynamicObject>) -> BoxFuture<'_, AdmissionResponse> {
        Box::pin(self.mutate(req))
    }
}

impl WorkloadsReviewer {
    pub async fn mutate(&self, req: AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        let response = AdmissionResponse::from(&req);
        let Some(kind) = WorkloadKind::from_api_kind(&req.kind.kind) else {
            return response;
        };
        let (Some(obj), Some(namespace)) = (req.object.as_ref(), req.namespace.as_deref()) else {
            return response;
        };
        if !self.filter.namespace_allowed(namespace)
            || self.rules.ignored_workload_kinds.contains(&kind)
        {
            return response;
        }
        let Ok(new) = serde_json::to_value(obj) else {
            return response;
        };
        let Some(new_template) = template(kind, &new) else {
            return response;
        };
        let annotations = string_map(new.pointer("/metadata/annotations"));
        let template_annotations = new_template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.clone())
            .unwrap_or_default();
        if !opted_in(&self.rules, &annotations, &template_annotations) {
            return response;
        }
        let old = req
            .old_object
            .as_ref()
            .and_then(|o| serde_json::to_value(o).ok());
        let mut ops = Vec::new();
        let observed = match (&req.operation, &old) {
            (Operation::Update, Some(old)) => {
                let old_obs = string_map(old.pointer("/metadata/annotations")).remove(OBSERVED);
                let new_obs = annotations.get(OBSERVED).cloned();
                if new_obs.is_some() && new_obs != old_obs {
                    // kreload's worker wrote this (it records every change it makes, a
                    // removal included): leave its template and record alone.
                    return response;
                }
                ops = restore_ops(kind, &self.rules.vocabulary, old, &new);
                let mut patched = new.clone();
                if !ops.is_empty()
                    && let Ok(p) =
                        serde_json::from_value::<json_patch::Patch>(Value::Array(ops.clone()))
                    && json_patch::patch(&mut patched, &p).is_err()
                {
                    ops.clear();
                    patched = new.clone();
                }
                let template_changed =
                    old.pointer(template_path(kind)) != patched.pointer(template_path(kind));
                if template_changed {
                    Some(self.live_hashes(namespace, &new_template).await.render())
                } else if new_obs.is_none() {
                    old_obs // put back what a replace dropped
                } else {
                    None
                }
            }
            _ => Some(self.live_hashes(namespace, &new_template).await.render()),
        };
        if let Some(observed) = observed
            && annotations.get(OBSERVED) != Some(&observed)
        {
            if new.pointer("/metadata/annotations").is_some() {
                ops.push(json!({"op": "add", "path": format!("/metadata/annotations/{}", escape(OBSERVED)), "value": observed}));
            } else {
                ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": {OBSERVED: observed}}));
            }
        }
        if ops.is_empty() {
            return response;
        }
        match serde_json::from_value::<json_patch::Patch>(Value::Array(ops)) {
            Ok(patch) => match response.clone().with_patch(patch) {
                Ok(r) => r,
                Err(error) => {
                    tracing::warn!(uid = %req.uid, %error, "cannot encode the workload patch");
                    response
                }
            },
            Err(error) => {
                tracing::warn!(uid = %req.uid, %error, "cannot build the workload patch");
                response
            }
        }
    }

    /// Content hashes of the objects the template references, read one at a time within
    /// the read budget; objects that are missing or unreadable are left out.
    async fn live_hashes(&self, namespace: &str, template: &PodTemplateSpec) -> Observed {
        let mut observed = Observed::default();
        let Some(spec) = template.spec.as_ref() else {
            return observed;
        };
        let deadline = tokio::time::Instant::now() + self.read_budget;
        for source in pod_refs(spec).sources() {
            let read = read_hash(&self.client, namespace, &source);
            match tokio::time::timeout_at(deadline, read).await {
                Ok(Some(hash)) => {
                    observed.set(source, hash);
                }
                Ok(None) => {}
                Err(_) => {
                    tracing::warn!(
                        namespace,
                        "reading referenced objects took too long; recording what was read"
                    );
                    break;
                }
            }
        }
        observed
    }
}

async fn read_hash(client: &Client, namespace: &str, source: &SourceRef) -> Option<String> {
    match source.kind {
        SourceKind::ConfigMap => Api::<ConfigMap>::namespaced(client.clone(), namespace)
            .get_opt(&source.name)
            .await
            .ok()
            .flatten()
            .map(|cm| configmap_hash_of(&cm)),
        SourceKind::Secret => Api::<Secret>::namespaced(client.clone(), namespace)
            .get_opt(&source.name)
            .await
            .ok()
            .flatten()
            .map(|s| secret_hash_of(&s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(env: Value, annotations: Option<Value>) -> Value {
        let mut t = json!({"spec": {"containers": [{"name": "app", "image": "x"}]}});
        if !env.is_null() {
            t["spec"]["containers"][0]["env"] = env;
        }
        if let Some(a) = annotations {
            t["metadata"] = json!({"annotations": a});
        }
        json!({"metadata": {"name": "web"}, "spec": {"template": t}})
    }

    fn apply(doc: &Value, ops: Vec<Value>) -> Value {
        let mut doc = doc.clone();
        let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops)).expect("patch");
        json_patch::patch(&mut doc, &patch).expect("applies");
        doc
    }

    #[test]
    fn dropped_env_var_is_put_back() {
        let var = json!({"name": "STAKATER_SETTINGS_CONFIGMAP", "value": "abc"});
        let old = deployment(json!([{"name": "A", "value": "1"}, var.clone()]), None);
        let new = deployment(json!([{"name": "A", "value": "1"}]), None);
        let ops = restore_ops(WorkloadKind::Deployment, &Vocabulary::new(true), &old, &new);
        let restored = apply(&new, ops);
        assert_eq!(
            restored["spec"]["template"]["spec"]["containers"][0]["env"][1],
            var
        );
        // Without an env list at all.
        let new = deployment(Value::Null, None);
        let ops = restore_ops(WorkloadKind::Deployment, &Vocabulary::new(true), &old, &new);
        let restored = apply(&new, ops);
        assert_eq!(
            restored["spec"]["template"]["spec"]["containers"][0]["env"],
            json!([var])
        );
    }

    #[test]
    fn other_env_vars_and_kept_ones_are_left_alone() {
        let old = deployment(
            json!([{"name": "USER_VAR", "value": "1"}, {"name": "STAKATER_X_SECRET", "value": "h"}]),
            None,
        );
        let new = deployment(json!([{"name": "STAKATER_X_SECRET", "value": "h"}]), None);
        assert!(
            restore_ops(WorkloadKind::Deployment, &Vocabulary::new(true), &old, &new).is_empty()
        );
    }

    #[test]
    fn dropped_last_reloaded_from_is_put_back_with_escaped_key() {
        let old = deployment(
            Value::Null,
            Some(json!({"kreload.dev/last-reloaded-from": "{}", "x": "y"})),
        );
        let new = deployment(Value::Null, Some(json!({"x": "y"})));
        let ops = restore_ops(WorkloadKind::Deployment, &Vocabulary::new(true), &old, &new);
        assert_eq!(
            ops[0]["path"],
            "/spec/template/metadata/annotations/kreload.dev~1last-reloaded-from"
        );
        let restored = apply(&new, ops);
        assert_eq!(
            restored["spec"]["template"]["metadata"]["annotations"]["kreload.dev/last-reloaded-from"],
            "{}"
        );
        let bare = deployment(Value::Null, None);
        let restored = apply(
            &bare,
            restore_ops(
                WorkloadKind::Deployment,
                &Vocabulary::new(true),
                &old,
                &bare,
            ),
        );
        assert_eq!(
            restored["spec"]["template"]["metadata"]["annotations"]["kreload.dev/last-reloaded-from"],
            "{}"
        );
    }
}
