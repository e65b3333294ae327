//! The workload mutation: on CREATE and UPDATE of an opted-in workload, record in the
//! metadata annotation `kreload.dev/observed` the content hashes of the ConfigMaps and
//! Secrets its pod template now reflects (a metadata annotation never rolls pods), and put
//! back kreload's own env var or template annotation when an UPDATE drops them (a GitOps
//! re-apply with replace), so that re-apply causes no rollout. Never denies.

mod ops;

pub use ops::{escape, rebaseline_ops, restore_ops};
use ops::{string_map, template};

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
use crate::reload::keys::{FIELD_MANAGER, OBSERVED};
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

/// The field manager the request's options name (`fieldManager` of its Create/Update
/// options; a patch's options arrive as UpdateOptions).
fn field_manager(req: &AdmissionRequest<DynamicObject>) -> Option<&str> {
    req.options.as_ref()?.0.get("fieldManager")?.as_str()
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
                if field_manager(&req) == Some(FIELD_MANAGER) {
                    // kreload's own write (a reload, a pause, a resume): it records every
                    // change it makes, a removal included, so leave it as it is.
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
                if old.pointer(template_path(kind)) != patched.pointer(template_path(kind)) {
                    // New pods start with the live content: that is the new baseline.
                    let live = self.live_hashes(namespace, &new_template).await;
                    ops.extend(rebaseline_ops(
                        kind,
                        &self.rules.vocabulary,
                        &patched,
                        &live,
                    ));
                    Some(live.render())
                } else {
                    // Same template, same baseline: put back a record a replace dropped
                    // or overwrote.
                    string_map(old.pointer("/metadata/annotations")).remove(OBSERVED)
                }
            }
            _ => {
                let live = self.live_hashes(namespace, &new_template).await;
                ops.extend(rebaseline_ops(kind, &self.rules.vocabulary, &new, &live));
                Some(live.render())
            }
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
