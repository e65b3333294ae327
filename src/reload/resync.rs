//! The resync's decision, from values: given what a workload records about the sources it
//! uses (`kreload.dev/observed`, else kreload's or Reloader's env var, else the
//! `last-reloaded-from` record) and the live content hash of each source, which sources
//! are stale (reload them) and which have no record yet (write a baseline to the metadata,
//! rolling nothing). A restart or a new leader therefore rolls only what really changed.

use std::collections::BTreeMap;

use serde_json::Value;

use super::keys::{Key, Vocabulary};
use super::model::{SourceRef, WorkloadKind};
use super::observed::Observed;
use super::patch::{ReloadRecord, env_var_name, template_path};
use super::rules::{RuleOptions, named_literals};
use super::workload::Entry;

/// What one workload says it reflects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    /// `kreload.dev/observed` (empty when absent or unreadable: it is rewritten).
    pub observed: Observed,
    /// Hashes found in the template's marks (env vars, `last-reloaded-from`), for sources
    /// the observed record does not list (a workload Reloader used to serve).
    pub marks: BTreeMap<SourceRef, String>,
}

impl Recorded {
    /// Reads the records of workload `obj` (as JSON) for `sources`.
    pub fn read(
        vocabulary: &Vocabulary,
        kind: WorkloadKind,
        obj: &Value,
        sources: &[SourceRef],
    ) -> Recorded {
        let annotations: BTreeMap<String, String> = obj
            .pointer("/metadata/annotations")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        let observed = Observed::from_annotations(&annotations).unwrap_or_default();
        let template = obj.pointer(template_path(kind));
        let mut marks = BTreeMap::new();
        for src in sources {
            if let Some(hash) = template.and_then(|t| mark(vocabulary, t, src)) {
                marks.insert(src.clone(), hash);
            }
        }
        Recorded { observed, marks }
    }

    /// The hash recorded for `src`, if any.
    pub fn get(&self, src: &SourceRef) -> Option<&str> {
        self.observed
            .get(src)
            .or_else(|| self.marks.get(src).map(String::as_str))
    }
}

/// The hash a template's env var or `last-reloaded-from` record carries for `src`.
fn mark(vocabulary: &Vocabulary, template: &Value, src: &SourceRef) -> Option<String> {
    let var = env_var_name(src);
    let containers = template
        .pointer("/spec/containers")
        .and_then(Value::as_array);
    let from_env = containers.into_iter().flatten().find_map(|c| {
        c.get("env")?.as_array()?.iter().find_map(|e| {
            (e.get("name")?.as_str()? == var)
                .then(|| e.get("value")?.as_str().map(str::to_owned))?
        })
    });
    if from_env.is_some() {
        return from_env;
    }
    let annotations = template.pointer("/metadata/annotations")?;
    vocabulary.prefixes().iter().find_map(|p| {
        let raw = annotations
            .get(Key::LastReloadedFrom.with_prefix(p))?
            .as_str()?;
        let record = ReloadRecord::parse(raw)?;
        record.records(src, &record.hash).then_some(record.hash)
    })
}

/// The sources the resync looks at for an indexed workload: everything its pod spec
/// references, and the named reloads that are plain names (a pattern would need a list of
/// every source in the namespace, which kreload does not read).
pub fn sources(rules: &RuleOptions, entry: &Entry) -> Vec<SourceRef> {
    let mut out: Vec<SourceRef> = entry.refs.sources().into_iter().collect();
    for src in named_literals(rules, &entry.annotations, &entry.template_annotations) {
        if !out.contains(&src) {
            out.push(src);
        }
    }
    out
}

/// What the resync does to one workload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Sources whose live hash differs from the recorded one, with the live hash: reload.
    pub stale: Vec<(SourceRef, String)>,
    /// The observed record to write without a rollout, when some source had no record.
    pub baseline: Option<Observed>,
}

/// Compares the records with the live hashes (`live`: the sources the rules let reload
/// this workload; an empty hash for one that was deleted, under `--reload-on-delete`).
pub fn compare(recorded: &Recorded, live: &BTreeMap<SourceRef, String>) -> Verdict {
    let mut verdict = Verdict::default();
    let mut observed = recorded.observed.clone();
    let mut baseline = false;
    for (src, hash) in live {
        let in_observed = recorded.observed.get(src);
        let in_mark = recorded.marks.get(src).map(String::as_str);
        if in_observed == Some(hash.as_str()) {
            continue;
        }
        if hash.is_empty() {
            // Deleted (`--reload-on-delete`). A mark in the template is removed by a reload;
            // with none, there is nothing to roll: record the deletion.
            match (in_mark, in_observed) {
                (Some(_), _) => verdict.stale.push((src.clone(), String::new())),
                (None, Some(_)) => {
                    observed.set(src.clone(), String::new());
                    baseline = true;
                }
                (None, None) => {}
            }
            continue;
        }
        if in_mark == Some(hash.as_str()) || (in_observed.is_none() && in_mark.is_none()) {
            // Nothing recorded yet, or the template already carries this content (a mark
            // from before kreload): record it, roll nothing.
            observed.set(src.clone(), hash.clone());
            baseline = true;
            continue;
        }
        verdict.stale.push((src.clone(), hash.clone()));
    }
    verdict.baseline = baseline.then_some(observed);
    verdict
}

#[cfg(test)]
mod tests;
