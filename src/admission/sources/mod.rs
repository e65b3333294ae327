//! The ConfigMap/Secret trigger: decide inline whether an admitted write may reload
//! something, and if so enqueue an intent carrying only the new content hash. The answer
//! is always "allowed": kreload never blocks a write because it is slow, full or broken.
//! No ConfigMap or Secret data outlives the request. With `--enable-csi-integration`, an
//! update of a SecretProviderClassPodStatus is a change of the SecretProviderClass it names.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::ByteString;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation as AdmissionOp};

use futures::future::BoxFuture;

use super::review::Reviewer;
use crate::index::SharedIndex;
use crate::logging::Escaped;
use crate::metrics::{DropReason, Metrics};
use crate::queue::{Intent, Operation, Push, Queue};
use crate::reload::csi::{PodStatus, SPCPS_KIND};
use crate::reload::hash::{configmap_hash, secret_hash};
use crate::reload::keys::{Key, Vocabulary};
use crate::reload::model::{SourceKind, SourceRef};
use crate::scope::Scope;

/// The decision for one admitted write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    Enqueue(Intent),
    Skip(&'static str),
}

fn labels(obj: Option<&DynamicObject>) -> BTreeMap<String, String> {
    obj.and_then(|o| o.metadata.labels.clone())
        .unwrap_or_default()
}

fn annotations(obj: Option<&DynamicObject>) -> BTreeMap<String, String> {
    obj.and_then(|o| o.metadata.annotations.clone())
        .unwrap_or_default()
}

/// The source kind a write of `api_kind` changes: a SecretProviderClassPodStatus write
/// changes its SecretProviderClass (a write of the class itself changes no content).
fn trigger_kind(api_kind: &str) -> Option<SourceKind> {
    match api_kind {
        SPCPS_KIND => Some(SourceKind::SecretProviderClass),
        "SecretProviderClass" => None,
        other => SourceKind::from_api_kind(other),
    }
}

/// The source an admitted write is about: the object itself, or the class a status names.
fn source_name(kind: SourceKind, req: &AdmissionRequest<DynamicObject>) -> Option<String> {
    if kind != SourceKind::SecretProviderClass {
        return Some(req.name.clone());
    }
    let current = req.object.as_ref().or(req.old_object.as_ref())?;
    PodStatus::of(&current.data).map(|s| s.secret_provider_class_name)
}

/// The content hash of a ConfigMap or Secret as it appears in an AdmissionReview (for a
/// SecretProviderClass, of the SecretProviderClassPodStatus written), or `None` when the
/// object cannot be read as that kind.
pub fn content_hash(kind: SourceKind, obj: &DynamicObject) -> Option<String> {
    fn field<T: serde::de::DeserializeOwned>(obj: &DynamicObject, name: &str) -> Option<Option<T>> {
        match obj.data.get(name) {
            None | Some(serde_json::Value::Null) => Some(None),
            Some(v) => T::deserialize(v).ok().map(Some),
        }
    }
    match kind {
        SourceKind::ConfigMap => {
            let data: Option<BTreeMap<String, String>> = field(obj, "data")?;
            let binary: Option<BTreeMap<String, ByteString>> = field(obj, "binaryData")?;
            Some(configmap_hash(data.as_ref(), binary.as_ref()))
        }
        SourceKind::Secret => {
            let data: Option<BTreeMap<String, ByteString>> = field(obj, "data")?;
            let string_data: Option<BTreeMap<String, String>> = field(obj, "stringData")?;
            Some(secret_hash(data.as_ref(), string_data.as_ref()))
        }
        SourceKind::SecretProviderClass => PodStatus::of(&obj.data).map(|s| s.hash()),
    }
}

/// Pure decision: does this write need the worker? `has_candidates` says whether any
/// opted-in workload lives in the namespace.
pub fn admit(
    filter: &Scope,
    vocabulary: &Vocabulary,
    req: &AdmissionRequest<DynamicObject>,
    has_candidates: impl Fn(&str) -> bool,
) -> Admitted {
    let Some(kind) = trigger_kind(&req.kind.kind) else {
        return Admitted::Skip("not a configmap or secret");
    };
    if req.dry_run {
        return Admitted::Skip("dry run");
    }
    let Some(namespace) = req.namespace.as_deref() else {
        return Admitted::Skip("no namespace");
    };
    if !filter.namespace_allowed(namespace) {
        return Admitted::Skip("namespace not watched");
    }
    if filter.ignored_kinds.contains(&kind) {
        return Admitted::Skip("kind ignored");
    }
    let current = req.object.as_ref().or(req.old_object.as_ref());
    let labels = labels(current);
    if !filter.resource_labels.matches(&labels) {
        return Admitted::Skip("labels do not match");
    }
    // A class's `ignore` sits on the class, which the worker reads.
    let csi = kind == SourceKind::SecretProviderClass;
    if !csi && vocabulary.get(&annotations(current), Key::Ignore) == Some("true") {
        return Admitted::Skip("ignore annotation");
    }
    // Reloader acts on status updates only: a status is created and deleted with its pod.
    let operation = match req.operation {
        AdmissionOp::Update => Operation::Update,
        AdmissionOp::Create if filter.reload_on_create && !csi => Operation::Create,
        AdmissionOp::Delete if filter.reload_on_delete && !csi => Operation::Delete,
        _ => return Admitted::Skip("operation not watched"),
    };
    // Cheap checks first: hashing reads the whole object.
    if !has_candidates(namespace) {
        return Admitted::Skip("no opted-in workload in namespace");
    }
    let hash_of = |obj: Option<&DynamicObject>| obj.map(|o| content_hash(kind, o));
    let (new, old) = (
        hash_of(req.object.as_ref()),
        hash_of(req.old_object.as_ref()),
    );
    // `None`: absent; `Some(None)`: present but unreadable.
    let (hash, base) = match (operation, new, old) {
        (_, Some(None), _) | (_, _, Some(None)) => return Admitted::Skip("unreadable object"),
        (Operation::Update, Some(new), Some(old)) if new == old => {
            return Admitted::Skip("content unchanged");
        }
        (Operation::Update, Some(new), Some(old)) => (new, old),
        (Operation::Create, Some(new), _) => (new, None),
        (Operation::Delete, _, Some(old)) => (None, old),
        _ => return Admitted::Skip("write without the objects it needs"),
    };
    let Some(name) = source_name(kind, req) else {
        return Admitted::Skip("unreadable object");
    };
    Admitted::Enqueue(Intent {
        namespace: namespace.to_owned(),
        source: SourceRef { kind, name },
        hash,
        base,
        operation,
        admitted: None,
    })
}

/// The admission endpoint's shell around [`admit`].
pub struct SourcesReviewer {
    pub filter: Scope,
    pub vocabulary: Vocabulary,
    pub index: SharedIndex,
    pub queue: Arc<Queue>,
    pub metrics: Arc<Metrics>,
}

impl Reviewer for SourcesReviewer {
    fn review(&self, req: AdmissionRequest<DynamicObject>) -> BoxFuture<'_, AdmissionResponse> {
        let response = self.review_sync(&req);
        Box::pin(std::future::ready(response))
    }
}

impl SourcesReviewer {
    pub fn review_sync(&self, req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        let now = std::time::Instant::now();
        let decision = admit(&self.filter, &self.vocabulary, req, |ns| {
            self.index.read(|i| i.may_have_candidates(ns, now))
        });
        match decision {
            Admitted::Skip(reason) => {
                self.metrics.source_skipped(reason);
                tracing::debug!(uid = %Escaped(&req.uid), namespace = %Escaped(req.namespace.as_deref().unwrap_or("")), name = %Escaped(&req.name), reason, "write skipped");
            }
            Admitted::Enqueue(intent) => {
                let kind = intent.source.kind;
                let pushed = self.queue.push(intent);
                match pushed {
                    Push::Queued => self.metrics.intent_enqueued(kind.as_str()),
                    Push::Coalesced => self.metrics.intent_coalesced(),
                    Push::Full => self.metrics.intent_dropped(DropReason::QueueFull),
                    Push::Closed => self.metrics.intent_dropped(DropReason::QueueClosed),
                }
                self.metrics.set_queue_depth(self.queue.len());
                if pushed == Push::Full {
                    tracing::warn!(uid = %Escaped(&req.uid), namespace = %Escaped(req.namespace.as_deref().unwrap_or("")), name = %Escaped(&req.name), "queue full; change dropped");
                }
            }
        }
        AdmissionResponse::from(req)
    }
}

#[cfg(test)]
mod tests;
