//! The workload mutation, decided from values: on CREATE and UPDATE of an opted-in
//! workload, record in the metadata annotation `kreload.dev/observed` the content hashes of
//! the sources its pod template now reflects (a metadata annotation never rolls pods), and
//! put back kreload's own env var or template annotation when an UPDATE drops them (a
//! GitOps re-apply with replace), so that re-apply causes no rollout.
//!
//! The decision needs the live hashes only when the template is new or changed; it then
//! answers [`Mutation::NeedsLive`] and the shell asks again with them.

mod ops;

pub use ops::{Marks, rebaseline_ops, restore_ops};
use ops::{string_map, template};

use std::collections::BTreeMap;

use json_patch::PatchOperation;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

use super::keys::OBSERVED;
use super::model::{SourceRef, WorkloadKind};
use super::observed::Observed;
use super::patch::{observed_op, template_path};
use super::refs::pod_refs;
use super::rules::{RuleOptions, opted_in};

/// The write being admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
}

/// One admitted workload write, as values.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub kind: WorkloadKind,
    pub operation: Operation,
    /// The write is kreload's own (its field manager): a reload, a pause, a resume.
    pub by_kreload: bool,
    /// Whether kreload acts in the namespace at all (the caller's scope).
    pub in_scope: bool,
    pub old: Option<&'a Value>,
    pub new: &'a Value,
}

/// What to do with the object.
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    /// Leave it as it is.
    Nothing,
    /// Read the live content hashes of these sources, then decide again with them.
    NeedsLive(Vec<SourceRef>),
    /// Apply these operations, in order, to the incoming object.
    Patch(Vec<PatchOperation>),
}

/// Whether the admitted object is one the index will hold: in scope, of a kind kreload acts
/// on, and opted in. The sources webhook counts its namespace as having candidates from
/// this admission on, before the watch delivers the object (a source changed right after
/// its workload was created is not skipped).
pub fn indexes(rules: &RuleOptions, req: &Request) -> bool {
    opted_in_template(rules, req).is_some()
}

/// The new object's pod template, when the workload is in scope, of a kind kreload acts on
/// and opted in.
fn opted_in_template(rules: &RuleOptions, req: &Request) -> Option<PodTemplateSpec> {
    if !req.in_scope || rules.ignored_workload_kinds.contains(&req.kind) {
        return None;
    }
    let new_template = template(req.kind, req.new)?;
    let annotations = string_map(req.new.pointer("/metadata/annotations"));
    let empty = BTreeMap::new();
    let template_annotations = new_template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .unwrap_or(&empty);
    opted_in(rules, &annotations, template_annotations).then_some(new_template)
}

/// Decides the mutation of `req`. With `live: None` it may answer
/// [`Mutation::NeedsLive`]; with `live: Some` it never does.
pub fn decide(rules: &RuleOptions, req: &Request, live: Option<&Observed>) -> Mutation {
    let Some(new_template) = opted_in_template(rules, req) else {
        return Mutation::Nothing;
    };
    let annotations = string_map(req.new.pointer("/metadata/annotations"));
    // The sources the new pods will read, when their content becomes the baseline.
    let needs_live = || {
        let sources = new_template
            .spec
            .as_ref()
            .map(|spec| pod_refs(spec).sources().into_iter().collect())
            .unwrap_or_default();
        Mutation::NeedsLive(sources)
    };
    let marks = Marks {
        kind: req.kind,
        vocabulary: &rules.vocabulary,
    };
    let mut ops = Vec::new();
    let observed = match (req.operation, req.old) {
        (Operation::Update, Some(_)) if req.by_kreload => {
            // kreload's own write records every change it makes, a removal included.
            return Mutation::Nothing;
        }
        (Operation::Update, Some(old)) => {
            ops = restore_ops(marks, old, req.new);
            let mut patched = req.new.clone();
            if json_patch::patch(&mut patched, &json_patch::Patch(ops.clone())).is_err() {
                ops.clear();
                patched = req.new.clone();
            }
            let path = template_path(req.kind);
            if old.pointer(path) != patched.pointer(path) {
                // New pods start with the live content: that is the new baseline.
                let Some(live) = live else {
                    return needs_live();
                };
                ops.extend(rebaseline_ops(marks, &patched, live));
                Some(live.render())
            } else {
                // Same template, same baseline: put back a record a replace dropped or
                // overwrote.
                string_map(old.pointer("/metadata/annotations")).remove(OBSERVED)
            }
        }
        _ => {
            let Some(live) = live else {
                return needs_live();
            };
            ops.extend(rebaseline_ops(marks, req.new, live));
            Some(live.render())
        }
    };
    if let Some(observed) = observed
        && annotations.get(OBSERVED) != Some(&observed)
    {
        ops.push(observed_op(&annotations, &observed));
    }
    if ops.is_empty() {
        Mutation::Nothing
    } else {
        Mutation::Patch(ops)
    }
}

#[cfg(test)]
mod tests;
