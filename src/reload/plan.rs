//! Planning a batch of confirmed changes: which workloads each change reloads (the join of
//! the index's projections with the rules), and, per workload, the one JSON Patch that
//! applies all of its changes. `now` is passed in; nothing here reads a clock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use jiff::Timestamp;
use json_patch::PatchOperation;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

use super::keys::{Key, Vocabulary};
use super::model::{RolloutStrategy, SourceRef, Strategy, WorkloadKind};
use super::patch::{self, Change, Plan, Target};
use super::rules::{Decision, RuleOptions, SourceView, decide};
use super::workload::{Entry, WorkloadId};

/// A change of a source that the worker confirmed against the live object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmed {
    pub namespace: String,
    pub source: SourceRef,
    /// The content hash to write (for a delete, the hash of empty content).
    pub hash: String,
    /// The live source's annotations (for `ignore` and `match`).
    pub annotations: BTreeMap<String, String>,
    /// The source was deleted.
    pub deleted: bool,
}

/// One change to apply to a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reload {
    pub source: SourceRef,
    pub hash: String,
    pub auto: bool,
    /// The source was deleted (see [`Change::deleted`]).
    pub deleted: bool,
}

/// A workload in a namespace.
pub type WorkloadKey = (String, WorkloadId);

/// What a batch of confirmed changes does.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// Every workload to reload, with all of its changes (one patch each).
    pub reloads: BTreeMap<WorkloadKey, Vec<Reload>>,
    /// Deployments whose reload may pause them: their pause window is checked after it.
    pub pausable: BTreeSet<WorkloadKey>,
}

/// Decides, for every confirmed change, which of the namespace's indexed workloads
/// (`candidates`) it reloads, and groups the reloads by workload.
pub fn batch(
    rules: &RuleOptions,
    confirmed: &[Confirmed],
    candidates: impl Fn(&str) -> Vec<(WorkloadId, Arc<Entry>)>,
) -> Batch {
    let mut out = Batch::default();
    for change in confirmed {
        for (id, entry) in candidates(&change.namespace) {
            let workload = entry.view(id.kind);
            let source = SourceView {
                source: &change.source,
                annotations: &change.annotations,
            };
            let Decision::Reload { auto } = decide(rules, &workload, &source) else {
                continue;
            };
            let vocabulary = &rules.vocabulary;
            let key = (change.namespace.clone(), id);
            if key.1.kind == WorkloadKind::Deployment
                && (vocabulary.contains(&entry.annotations, Key::PausePeriod)
                    || vocabulary.contains(&entry.annotations, Key::PausedAt))
            {
                out.pausable.insert(key.clone());
            }
            out.reloads.entry(key).or_default().push(Reload {
                source: change.source.clone(),
                hash: change.hash.clone(),
                auto,
                deleted: change.deleted,
            });
        }
    }
    out
}

/// What planning a workload's changes found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planned {
    /// A patch to write (a rollout follows).
    Reload,
    /// Every change is already reflected; nothing to write.
    AlreadyApplied,
    /// No container to carry the change (auto reload of an object the pod does not use).
    NoContainer,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("the workload has no pod template")]
    NoTemplate,
    #[error("reading the workload")]
    Read(#[source] serde_json::Error),
    #[error("applying the planned operations")]
    Apply(#[source] json_patch::PatchError),
}

/// How reloads are written.
#[derive(Debug, Clone, Copy)]
pub struct Writing<'a> {
    pub strategy: Strategy,
    pub vocabulary: &'a Vocabulary,
    pub now: Timestamp,
}

fn field<T: serde::de::DeserializeOwned>(obj: &Value, path: &str) -> Result<Option<T>, PlanError> {
    obj.pointer(path)
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(PlanError::Read)
}

/// Plans every change against the workload `obj` (as JSON), each on top of the previous
/// ones, and returns the combined operations (one resourceVersion test first).
pub fn workload(
    writing: &Writing,
    namespace: &str,
    kind: WorkloadKind,
    obj: &Value,
    changes: &[Reload],
) -> Result<(Vec<PatchOperation>, Planned), PlanError> {
    let mut value = obj.clone();
    let resource_version: String = field(obj, "/metadata/resourceVersion")?.unwrap_or_default();
    let now_rfc3339 = writing.now.to_string();
    let mut ops: Vec<PatchOperation> = Vec::new();
    let mut outcome = Planned::AlreadyApplied;
    for change in changes {
        let template: PodTemplateSpec =
            field(&value, patch::template_path(kind))?.ok_or(PlanError::NoTemplate)?;
        let annotations = field(&value, "/metadata/annotations")?.unwrap_or_default();
        let template_annotations = template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.clone())
            .unwrap_or_default();
        let annotation_prefix = writing
            .vocabulary
            .record_prefix(&annotations, &template_annotations);
        let rollout_strategy = RolloutStrategy::from_annotation(
            writing.vocabulary.get(&annotations, Key::RolloutStrategy),
        );
        let target = Target {
            kind,
            namespace,
            resource_version: &resource_version,
            annotations: &annotations,
            template: &template,
            rollout_strategy,
        };
        let c = Change {
            source: &change.source,
            hash: &change.hash,
            deleted: change.deleted,
            strategy: writing.strategy,
            auto: change.auto,
            annotation_prefix,
            now_unix: writing.now.as_second(),
            now_rfc3339: &now_rfc3339,
        };
        match patch::plan(&target, &c) {
            Plan::AlreadyApplied => {}
            Plan::NoContainer => {
                if outcome == Planned::AlreadyApplied {
                    outcome = Planned::NoContainer;
                }
            }
            Plan::Patch(p) => {
                json_patch::patch(&mut value, &p).map_err(PlanError::Apply)?;
                let skip_test = !ops.is_empty();
                ops.extend(
                    p.0.into_iter()
                        .filter(|op| !(skip_test && matches!(op, PatchOperation::Test(_)))),
                );
                outcome = Planned::Reload;
            }
        }
    }
    Ok((ops, outcome))
}

/// Jobs cannot change their template: the Job to create in place of `job` (as Reloader
/// does), or what was found when nothing needs recreating.
pub fn job_copy(
    writing: &Writing,
    namespace: &str,
    job: &Job,
    changes: &[Reload],
) -> Result<Result<Job, Planned>, PlanError> {
    let mut value = serde_json::to_value(job).map_err(PlanError::Read)?;
    let (ops, outcome) = workload(writing, namespace, WorkloadKind::Job, &value, changes)?;
    if ops.is_empty() {
        return Ok(Err(outcome));
    }
    // The copy is created, not patched: the resourceVersion test has no place in it.
    let ops: Vec<_> = ops
        .into_iter()
        .filter(|op| !matches!(op, PatchOperation::Test(_)))
        .collect();
    json_patch::patch(&mut value, &json_patch::Patch(ops)).map_err(PlanError::Apply)?;
    let patched: Job = serde_json::from_value(value).map_err(PlanError::Read)?;
    Ok(Ok(patch::recreate_job(&patched)))
}

#[cfg(test)]
mod tests;
