//! What to write to reload a workload (README, "How a reload is written").
//!
//! Every patch is a JSON Patch against the live object the worker just read, so one code
//! path serves built-in kinds and the Argo Rollout CRD. It starts with a `test` of
//! `metadata.resourceVersion`: a concurrent writer turns the patch into a conflict, and the
//! worker re-reads and decides again. With values derived from content only (the hash, not a
//! clock, decides whether anything changes), replicas, retries and resyncs converge on one
//! rollout.

mod env;
mod job;
mod record;

use std::collections::BTreeMap;

use json_patch::{Patch, PatchOperation};
use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};
use serde_json::{Value, json};

pub use env::{convert_to_env_var_name, env_var_name};
pub use job::{job_from_cronjob, recreate_job};
pub use record::ReloadRecord;

use super::hash::delete_marker_hash;
use super::keys::{Key, OBSERVED};
use super::model::{RolloutStrategy, SourceRef, Strategy, WorkloadKind};
use super::observed::Observed;
use super::ops::{add, remove, replace, test_resource_version};
use super::refs::pod_refs;

/// The live workload, as read.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    pub kind: WorkloadKind,
    pub namespace: &'a str,
    pub resource_version: &'a str,
    /// The live object's full metadata annotations (empty when absent), not the index's
    /// filtered copy: an empty map makes the patch add the whole map, replacing what is there.
    pub annotations: &'a BTreeMap<String, String>,
    /// The live pod template at [`template_path`] (for a CronJob, `jobTemplate.spec.template`);
    /// container indexes and absent maps in the patch are taken from it.
    pub template: &'a PodTemplateSpec,
    /// Only read for [`WorkloadKind::Rollout`].
    pub rollout_strategy: RolloutStrategy,
}

/// The change to write.
#[derive(Clone, Copy, Debug)]
pub struct Change<'a> {
    pub source: &'a SourceRef,
    /// The source's new content hash (for a deleted source, the hash of empty content).
    pub hash: &'a str,
    /// The source was deleted (`--reload-on-delete`). As in Reloader, the env-vars strategy
    /// then removes its variable (nothing to do when there is none), and the annotations
    /// strategy records Reloader's delete marker hash. `kreload.dev/observed` records the source
    /// with an empty hash, so the workload webhook can tell kreload's removal from a
    /// re-apply that dropped the variable.
    pub deleted: bool,
    pub strategy: Strategy,
    /// From [`Decision::Reload`](super::rules::Decision::Reload); picks the container.
    pub auto: bool,
    /// Prefix of the `last-reloaded-from` template annotation.
    pub annotation_prefix: &'a str,
    /// For the record's `observedAt` (informational only).
    pub now_unix: i64,
    /// For an Argo Rollout's `spec.restartAt`.
    pub now_rfc3339: &'a str,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// The pod template already reflects this content; nothing to roll.
    AlreadyApplied,
    /// No container to carry the change (an auto reload of an object the pods do not use).
    NoContainer,
    /// Apply with a JSON patch. For a Job, apply it to the object read, then create
    /// [`recreate_job`] of the result after deleting the old Job.
    Patch(Patch),
}

/// JSON pointer of the pod template in a workload of `kind`.
pub fn template_path(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::CronJob => "/spec/jobTemplate/spec/template",
        _ => "/spec/template",
    }
}

/// [`template_path`] as pointer tokens.
pub fn template_tokens(kind: WorkloadKind) -> &'static [&'static str] {
    match kind {
        WorkloadKind::CronJob => &["spec", "jobTemplate", "spec", "template"],
        _ => &["spec", "template"],
    }
}

/// Decides what reloads `t` for `c`. `AlreadyApplied` when `kreload.dev/observed` already
/// records this hash, or the active strategy's mark in the template already carries it
/// (Reloader's env var from before a migration counts). Otherwise a patch that writes the
/// mark — env var, `last-reloaded-from` record, or a Rollout's `restartAt` — and records the
/// hash in `kreload.dev/observed`.
pub fn plan(t: &Target, c: &Change) -> Plan {
    // An unreadable record is overwritten with a fresh one rather than failing the reload.
    let current = Observed::from_annotations(t.annotations).unwrap_or_default();
    // A deleted source is recorded with an empty hash: the template reflects nothing.
    let recorded = if c.deleted { "" } else { c.hash };
    if current.get(c.source) == Some(recorded) {
        return Plan::AlreadyApplied;
    }
    let Some(spec) = t.template.spec.as_ref() else {
        return Plan::NoContainer;
    };
    let refs = pod_refs(spec);
    let Some(container) = refs.target_container(c.source, c.auto) else {
        return Plan::NoContainer;
    };

    let mark = if t.kind == WorkloadKind::Rollout && t.rollout_strategy == RolloutStrategy::Restart
    {
        Mark::Op(add(&["spec", "restartAt"], json!(c.now_rfc3339)))
    } else {
        match c.strategy {
            Strategy::EnvVars => env_mark(t.kind, spec, container, c),
            Strategy::Annotations => annotation_mark(t, container, c),
        }
    };
    let op = match mark {
        Mark::Present => return Plan::AlreadyApplied,
        Mark::NoContainer => return Plan::NoContainer,
        Mark::Op(op) => op,
    };
    let mut observed = current;
    observed.set(c.source.clone(), recorded);
    Plan::Patch(Patch(vec![
        test_resource_version(t.resource_version),
        op,
        observed_op(t.annotations, &observed.render()),
    ]))
}

/// A patch that records `observed` in the workload metadata without touching the template
/// (no rollout): the baseline the resync writes for workloads that have none
/// ([`super::resync`]). `None` when the record already says exactly this.
pub fn record_observed(
    resource_version: &str,
    annotations: &BTreeMap<String, String>,
    observed: &Observed,
) -> Option<Patch> {
    let rendered = observed.render();
    if annotations.get(OBSERVED) == Some(&rendered) {
        return None;
    }
    Some(Patch(vec![
        test_resource_version(resource_version),
        observed_op(annotations, &rendered),
    ]))
}

/// The operation that sets `kreload.dev/observed` to `value` (a rendered [`Observed`]; no
/// resourceVersion test, e.g. for an admission response, which patches the incoming object).
/// `annotations` must be the object's full map, as for [`Target::annotations`].
pub fn observed_op(annotations: &BTreeMap<String, String>, value: &str) -> PatchOperation {
    let value = value.to_owned();
    if annotations.is_empty() {
        // Absent (or empty) map: add it whole; `add` on a missing member would fail.
        add(&["metadata", "annotations"], json!({ OBSERVED: value }))
    } else {
        add(&["metadata", "annotations", OBSERVED], Value::String(value))
    }
}

/// The outcome of looking at the template for one strategy.
enum Mark {
    Present,
    NoContainer,
    Op(PatchOperation),
}

fn env_mark(kind: WorkloadKind, spec: &PodSpec, container: &str, c: &Change) -> Mark {
    let Some((index, target)) = spec
        .containers
        .iter()
        .enumerate()
        .find(|(_, x)| x.name == container)
    else {
        return Mark::NoContainer;
    };
    let name = env_var_name(c.source);
    let var = json!({ "name": name, "value": c.hash });
    let index = index.to_string();
    let mut base: Vec<&str> = template_tokens(kind).to_vec();
    base.extend(["spec", "containers", &index, "env"]);
    let env = target.env.as_deref().unwrap_or_default();
    let position = env.iter().position(|e| e.name == name);
    if c.deleted {
        return match position {
            Some(j) => {
                let j = j.to_string();
                base.push(&j);
                Mark::Op(remove(&base))
            }
            None => Mark::Present,
        };
    }
    match position {
        Some(j) if env[j].value.as_deref() == Some(c.hash) => Mark::Present,
        // Replace the whole entry: a leftover valueFrom next to value would be invalid.
        Some(j) => {
            let j = j.to_string();
            base.push(&j);
            Mark::Op(replace(&base, var))
        }
        None if env.is_empty() => Mark::Op(add(&base, json!([var]))),
        None => {
            base.push("-");
            Mark::Op(add(&base, var))
        }
    }
}

fn annotation_mark(t: &Target, container: &str, c: &Change) -> Mark {
    let key = Key::LastReloadedFrom.with_prefix(c.annotation_prefix);
    // Reloader records a deleted source with the hash of its marker, not of empty content.
    let marker;
    let hash = if c.deleted {
        marker = delete_marker_hash();
        marker.as_str()
    } else {
        c.hash
    };
    let meta = t.template.metadata.as_ref();
    let existing = meta.and_then(|m| m.annotations.as_ref());
    if existing
        .and_then(|a| a.get(&key))
        .and_then(|v| ReloadRecord::parse(v))
        .is_some_and(|r| r.records(c.source, hash))
    {
        return Mark::Present;
    }
    let value = ReloadRecord::new(c.source, t.namespace, hash, container, c.now_unix).to_json();
    let mut path: Vec<&str> = template_tokens(t.kind).to_vec();
    path.push("metadata");
    if meta.is_none() {
        return Mark::Op(add(&path, json!({ "annotations": { key: value } })));
    }
    path.push("annotations");
    if existing.is_none_or(BTreeMap::is_empty) {
        return Mark::Op(add(&path, json!({ key: value })));
    }
    path.push(&key);
    Mark::Op(add(&path, Value::String(value)))
}

#[cfg(test)]
mod tests;
