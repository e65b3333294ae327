//! `kreload explain`: for a ConfigMap or Secret, which workloads of its namespace would
//! reload if it changed and why (the rule of the precedence list, the annotation, the
//! references, the container that carries the change), and which opted-in ones would not
//! and why; for a workload, the same for each source it uses or names, and when it was last
//! reloaded and from what. Decided from values the shell read; printed as text or JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use super::keys::{ENV_PREFIX, Key, OBSERVED};
use super::model::{ModelError, SourceRef, WorkloadKind};
use super::patch::{ReloadRecord, template_path};
use super::rules::{Decision, RuleOptions, SourceView, Why, decide_why, opted_in};
use super::warnings::Parts;
use super::workload::WorkloadId;

/// What to explain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Source(SourceRef),
    Workload(WorkloadId),
}

/// `configmap/NAME`, `secret/NAME`, or `KIND/NAME` for a workload kind (`deployment/web`).
pub fn parse_target(s: &str) -> Result<Target, ModelError> {
    if let Ok(source) = s.parse::<SourceRef>() {
        return Ok(Target::Source(source));
    }
    let bad = || ModelError::SourceRef(s.to_owned());
    let (kind, name) = s.split_once('/').ok_or_else(bad)?;
    let kind: WorkloadKind = kind.parse()?;
    if name.is_empty() {
        return Err(bad());
    }
    Ok(Target::Workload(WorkloadId {
        kind,
        name: name.to_owned(),
    }))
}

/// One workload and one source: would a change reload it, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// `Deployment/web`.
    pub workload: String,
    /// `configmap/app`.
    pub source: String,
    pub reloads: bool,
    /// The rule of the precedence list: `kind-ignored`, `source-ignored`, `excluded`,
    /// `named`, `search-match`, `auto`, `auto-reload-all`, `not-referenced`, `not-opted-in`.
    pub rule: &'static str,
    /// The annotation the rule read, if any.
    pub annotation: Option<String>,
    /// In words.
    pub reason: String,
    /// How the pod spec uses the source: `app (volume)`, `init (env)`.
    pub used_by: Vec<String>,
    /// The container whose variable carries the change (env-vars strategy).
    pub container: Option<String>,
}

fn used_by(refs: &super::refs::PodRefs, src: &SourceRef) -> Vec<String> {
    let mut out = Vec::new();
    for (list, what) in [(&refs.containers, ""), (&refs.init_containers, "init ")] {
        for c in list {
            if c.mounts.contains(src) {
                out.push(format!("{what}container {} (volume)", c.name));
            }
            if c.env.contains(src) {
                out.push(format!("{what}container {} (env)", c.name));
            }
        }
    }
    out
}

/// The verdict for `parts` (a workload `id`) and the source.
pub fn verdict(
    opts: &RuleOptions,
    id: &WorkloadId,
    parts: &Parts,
    source: &SourceRef,
    source_annotations: &BTreeMap<String, String>,
) -> Verdict {
    let view = parts.view(id.kind);
    let s = SourceView {
        source,
        annotations: source_annotations,
    };
    let (decision, why) = decide_why(opts, &view, &s);
    let reloads = matches!(decision, Decision::Reload { .. });
    let (mut rule, annotation, mut reason) = match why {
        Why::KindIgnored => (
            "kind-ignored",
            None,
            "--ignored-workload-types leaves this kind out".to_owned(),
        ),
        Why::SourceIgnored(k) => (
            "source-ignored",
            Some(k),
            "the source carries ignore: \"true\"".to_owned(),
        ),
        Why::Excluded(k) => (
            "excluded",
            Some(k),
            "the workload excludes the source by name".to_owned(),
        ),
        Why::Named { key, entry } => (
            "named",
            Some(key),
            format!("named reload: entry {entry:?} matches"),
        ),
        Why::SearchMatch(k) => (
            "search-match",
            Some(k),
            "search on the workload, match on the source".to_owned(),
        ),
        Why::Auto(k) => (
            "auto",
            Some(k),
            "auto reload of what the pod spec uses".to_owned(),
        ),
        Why::AutoReloadAll => (
            "auto-reload-all",
            None,
            "--auto-reload-all, no auto annotation".to_owned(),
        ),
        Why::NotOptedIn => (
            "not-opted-in",
            None,
            "no annotation opts the workload in for this source".to_owned(),
        ),
    };
    if decision == Decision::Skip(super::rules::SkipReason::NotReferenced) {
        reason = format!("{reason}, but the pod spec does not use the source");
        rule = "not-referenced";
    }
    let auto = matches!(decision, Decision::Reload { auto: true });
    Verdict {
        workload: format!("{}/{}", id.kind.api_kind(), id.name),
        source: source.to_string(),
        reloads,
        rule,
        annotation,
        reason,
        used_by: used_by(&parts.refs, source),
        container: reloads
            .then(|| parts.refs.target_container(source, auto).map(str::to_owned))
            .flatten(),
    }
}

/// What a change of one source does in its namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceReport {
    pub source: String,
    pub namespace: String,
    /// Workloads that would reload.
    pub reloads: Vec<Verdict>,
    /// Opted-in workloads, or workloads that use the source, that would not.
    pub skips: Vec<Verdict>,
}

/// Explains a change of `source` for the namespace's `workloads`.
pub fn explain_source(
    opts: &RuleOptions,
    namespace: &str,
    source: &SourceRef,
    source_annotations: &BTreeMap<String, String>,
    workloads: &[(WorkloadId, Parts)],
) -> SourceReport {
    let mut report = SourceReport {
        source: source.to_string(),
        namespace: namespace.to_owned(),
        reloads: Vec::new(),
        skips: Vec::new(),
    };
    for (id, parts) in workloads {
        let v = verdict(opts, id, parts, source, source_annotations);
        let interesting = opted_in(opts, &parts.annotations, &parts.template_annotations)
            || parts.refs.references(source);
        if v.reloads {
            report.reloads.push(v);
        } else if interesting {
            report.skips.push(v);
        }
    }
    report
}

/// A mark of a past reload found on the workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mark {
    /// `env`, `last-reloaded-from` or `observed`.
    pub kind: &'static str,
    /// The variable or annotation.
    pub key: String,
    pub source: Option<String>,
    pub hash: String,
    /// Unix seconds, from a `last-reloaded-from` record.
    pub at: Option<i64>,
}

/// A workload: each source it uses or names, and its marks of past reloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkloadReport {
    pub workload: String,
    pub namespace: String,
    pub sources: Vec<Verdict>,
    /// Named sources that do not exist in the namespace.
    pub missing: Vec<String>,
    pub marks: Vec<Mark>,
}

/// The marks of past reloads in the workload object `obj`.
pub fn marks(kind: WorkloadKind, obj: &Value) -> Vec<Mark> {
    let mut out = Vec::new();
    let template = obj.pointer(template_path(kind));
    let containers = template
        .and_then(|t| t.pointer("/spec/containers"))
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for var in containers
        .iter()
        .flat_map(|c| c["env"].as_array().into_iter().flatten())
    {
        let (Some(name), Some(value)) = (var["name"].as_str(), var["value"].as_str()) else {
            continue;
        };
        if name.starts_with(ENV_PREFIX) {
            out.push(Mark {
                kind: "env",
                key: name.to_owned(),
                source: None,
                hash: value.to_owned(),
                at: None,
            });
        }
    }
    let annotations = template.and_then(|t| t.pointer("/metadata/annotations"));
    for prefix in [super::keys::KRELOAD_PREFIX, super::keys::RELOADER_PREFIX] {
        let key = Key::LastReloadedFrom.with_prefix(prefix);
        let record = annotations
            .and_then(|a| a[&key].as_str())
            .and_then(ReloadRecord::parse);
        if let Some(r) = record {
            let source = format!("{}/{}", r.kind.to_ascii_lowercase(), r.name);
            out.push(Mark {
                kind: "last-reloaded-from",
                key,
                source: Some(source),
                hash: r.hash,
                at: Some(r.observed_at),
            });
        }
    }
    let observed = obj
        .pointer("/metadata/annotations")
        .and_then(|a| a[OBSERVED].as_str());
    let recorded: BTreeMap<String, String> = observed
        .and_then(|o| serde_json::from_str(o).ok())
        .unwrap_or_default();
    for (source, hash) in recorded {
        out.push(Mark {
            kind: "observed",
            key: OBSERVED.to_owned(),
            source: Some(source),
            hash,
            at: None,
        });
    }
    out
}

/// Explains the workload `id`: `sources` are what it uses or names, with the annotations
/// of those that exist (`None`: not found).
pub fn explain_workload(
    opts: &RuleOptions,
    namespace: &str,
    id: &WorkloadId,
    obj: &Value,
    sources: &[(SourceRef, Option<BTreeMap<String, String>>)],
) -> WorkloadReport {
    let parts = Parts::of(id.kind, obj);
    let mut report = WorkloadReport {
        workload: format!("{}/{}", id.kind.api_kind(), id.name),
        namespace: namespace.to_owned(),
        sources: Vec::new(),
        missing: Vec::new(),
        marks: marks(id.kind, obj),
    };
    for (source, annotations) in sources {
        match annotations {
            Some(a) => report.sources.push(verdict(opts, id, &parts, source, a)),
            None => report.missing.push(source.to_string()),
        }
    }
    report
}

fn verdict_line(out: &mut String, v: &Verdict, subject: &str) {
    let _ = write!(out, "  {subject}: {} ({})", v.reason, v.rule);
    if let Some(a) = &v.annotation {
        let _ = write!(out, " [{a}]");
    }
    if !v.used_by.is_empty() {
        let _ = write!(out, "; used by {}", v.used_by.join(", "));
    }
    if let Some(c) = &v.container {
        let _ = write!(out, "; the change goes to container {c}");
    }
    out.push('\n');
}

/// The human-readable form of a [`SourceReport`].
pub fn render_source(r: &SourceReport) -> String {
    let mut out = format!("{} in namespace {}\n", r.source, r.namespace);
    out.push_str(if r.reloads.is_empty() {
        "A change reloads nothing.\n"
    } else {
        "A change reloads:\n"
    });
    for v in &r.reloads {
        verdict_line(&mut out, v, &v.workload);
    }
    if !r.skips.is_empty() {
        out.push_str("It does not reload:\n");
        for v in &r.skips {
            verdict_line(&mut out, v, &v.workload);
        }
    }
    out
}

/// The human-readable form of a [`WorkloadReport`].
pub fn render_workload(r: &WorkloadReport) -> String {
    let mut out = format!("{} in namespace {}\n", r.workload, r.namespace);
    if r.sources.is_empty() {
        out.push_str("It uses and names no ConfigMap or Secret.\n");
    }
    for v in &r.sources {
        let verb = if v.reloads {
            "reloads it"
        } else {
            "does not reload it"
        };
        verdict_line(&mut out, v, &format!("a change of {} {verb}", v.source));
    }
    for m in &r.missing {
        let _ = writeln!(out, "  {m} is named but does not exist in the namespace");
    }
    if r.marks.is_empty() {
        out.push_str("No reload recorded.\n");
    } else {
        out.push_str("Recorded:\n");
        for m in &r.marks {
            let from = m
                .source
                .as_deref()
                .map(|s| format!(" from {s}"))
                .unwrap_or_default();
            let at =
                m.at.and_then(|t| jiff::Timestamp::from_second(t).ok())
                    .map(|t| format!(" at {t}"))
                    .unwrap_or_default();
            let _ = writeln!(out, "  {} {}{from}: {}{at}", m.kind, m.key, m.hash);
        }
    }
    out
}

#[cfg(test)]
mod tests;
