//! Does a change to this ConfigMap/Secret/SecretProviderClass reload this workload? Reloader's ShouldReload
//! precedence, kept exactly (README, "Opting in"), over both annotation vocabularies.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use regex::Regex;

use super::keys::{Key, Vocabulary, parse_bool};
use super::model::{SourceKind, SourceRef, WorkloadKind};
use super::refs::PodRefs;

/// Flag-level settings the decision depends on.
#[derive(Clone, Debug)]
pub struct RuleOptions {
    pub vocabulary: Vocabulary,
    pub auto_reload_all: bool,
    pub ignored_workload_kinds: BTreeSet<WorkloadKind>,
}

/// What a decision needs to know about a workload.
#[derive(Clone, Copy, Debug)]
pub struct WorkloadView<'a> {
    pub kind: WorkloadKind,
    /// Workload metadata annotations.
    pub annotations: &'a BTreeMap<String, String>,
    /// Pod template annotations.
    pub template_annotations: &'a BTreeMap<String, String>,
    pub refs: &'a PodRefs,
}

/// What a decision needs to know about the changed ConfigMap/Secret.
#[derive(Clone, Copy, Debug)]
pub struct SourceView<'a> {
    pub source: &'a SourceRef,
    pub annotations: &'a BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Reload. `auto` is false for a named reload, which targets the first container even
    /// when the pod spec does not reference the object.
    Reload {
        auto: bool,
    },
    Skip(SkipReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    WorkloadKindIgnored,
    SourceIgnored,
    Excluded,
    /// Opted in by auto or search, but the pod spec does not use the object.
    NotReferenced,
    NotOptedIn,
}

/// A named-reload entry that is not a valid regular expression (skipped when matching).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPattern {
    /// The full annotation key the entry came from.
    pub key: String,
    /// The trimmed entry.
    pub entry: String,
    pub error: String,
}

impl fmt::Display for InvalidPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid regex {:?} in annotation {}: {}",
            self.entry, self.key, self.error
        )
    }
}

/// Reloader's precedence: kind ignored, source ignored, excluded, named, search+match,
/// auto. Auto and search need the object referenced; a named match does not.
pub fn decide(opts: &RuleOptions, w: &WorkloadView, s: &SourceView) -> Decision {
    decide_why(opts, w, s).0
}

/// Which rule of the precedence decided, and through which annotation (for `explain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// `--ignored-workload-types`.
    KindIgnored,
    /// The source's `ignore` annotation (this key).
    SourceIgnored(String),
    /// The workload's exclude annotation (this key) lists the source.
    Excluded(String),
    /// A named-reload annotation (this key) has an entry (this one) matching the name.
    Named { key: String, entry: String },
    /// `search` on the workload and `match` (this key) on the source.
    SearchMatch(String),
    /// `auto` or typed `auto` (this key).
    Auto(String),
    /// `--auto-reload-all`.
    AutoReloadAll,
    /// Not opted in for this source by any annotation.
    NotOptedIn,
}

/// [`decide`], and why. For `NotReferenced`, the `Why` is the opt-in that needed a reference.
pub fn decide_why(opts: &RuleOptions, w: &WorkloadView, s: &SourceView) -> (Decision, Why) {
    let vocab = &opts.vocabulary;
    let src = s.source;
    let skip = |reason, why| (Decision::Skip(reason), why);
    if opts.ignored_workload_kinds.contains(&w.kind) {
        return skip(SkipReason::WorkloadKindIgnored, Why::KindIgnored);
    }
    // Reloader compares with "true" exactly here, not with ParseBool.
    if let Some((key, "true")) = vocab.find(s.annotations, Key::Ignore) {
        return skip(SkipReason::SourceIgnored, Why::SourceIgnored(key));
    }
    // Exclusion is read from workload metadata only, even when the rest falls back.
    if let Some((key, list)) = vocab.find(w.annotations, exclude_key(src.kind))
        && list.split(',').any(|e| e.trim() == src.name)
    {
        return skip(SkipReason::Excluded, Why::Excluded(key));
    }
    let eff = effective(vocab, src.kind, w.annotations, w.template_annotations);
    if let Some((key, list)) = vocab.find(eff, named_key(src.kind))
        && let Some(entry) = named_match(list, &src.name)
    {
        let entry = entry.to_owned();
        return (Decision::Reload { auto: false }, Why::Named { key, entry });
    }
    let referenced = |why| {
        if w.refs.references(src) {
            (Decision::Reload { auto: true }, why)
        } else {
            (Decision::Skip(SkipReason::NotReferenced), why)
        }
    };
    if vocab.get(eff, Key::Search) == Some("true")
        && let Some((key, "true")) = vocab.find(s.annotations, Key::Match)
    {
        return referenced(Why::SearchMatch(key));
    }
    if let Some(why) = auto_why(opts, src.kind, eff) {
        return referenced(why);
    }
    skip(SkipReason::NotOptedIn, Why::NotOptedIn)
}

/// The index's cheap filter: could some change of some ConfigMap or Secret reload a workload
/// with these annotations? Never false where [`decide`] could reload; ignores the workload
/// kind (checked separately) and per-object details (names, match, references).
pub fn opted_in(
    opts: &RuleOptions,
    annotations: &BTreeMap<String, String>,
    template_annotations: &BTreeMap<String, String>,
) -> bool {
    SourceKind::ALL.into_iter().any(|kind| {
        let vocab = &opts.vocabulary;
        let eff = effective(vocab, kind, annotations, template_annotations);
        // A named list can only match names when it is non-empty (names are non-empty).
        vocab
            .get(eff, named_key(kind))
            .is_some_and(|v| !v.is_empty())
            || vocab.get(eff, Key::Search) == Some("true")
            || auto_enabled(opts, kind, eff)
    })
}

/// The named-reload entries of a workload that are plain names (a regex that matches only
/// itself), as sources: what the resync can read without listing a namespace.
pub fn named_literals(
    opts: &RuleOptions,
    annotations: &BTreeMap<String, String>,
    template_annotations: &BTreeMap<String, String>,
) -> Vec<SourceRef> {
    let mut out = Vec::new();
    for kind in SourceKind::ALL {
        let eff = effective(&opts.vocabulary, kind, annotations, template_annotations);
        let Some(list) = opts.vocabulary.get(eff, named_key(kind)) else {
            continue;
        };
        for entry in list.split(',').map(str::trim) {
            if !entry.is_empty() && is_literal(entry) {
                out.push(SourceRef::new(kind, entry));
            }
        }
    }
    out
}

fn is_literal(entry: &str) -> bool {
    entry
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Named-reload entries, under any enabled prefix, in metadata or template annotations, that
/// do not compile (for admission warnings and logs).
pub fn invalid_reload_patterns(
    vocabulary: &Vocabulary,
    annotations: &BTreeMap<String, String>,
) -> Vec<InvalidPattern> {
    let mut out = Vec::new();
    for kind in SourceKind::ALL {
        for (_, key) in vocabulary.keys(named_key(kind)) {
            let Some(list) = annotations.get(&key) else {
                continue;
            };
            for entry in list.split(',').map(str::trim) {
                if let Err(e) = Regex::new(&anchored(entry)) {
                    out.push(InvalidPattern {
                        key: key.clone(),
                        entry: entry.to_owned(),
                        error: e.to_string(),
                    });
                }
            }
        }
    }
    out
}

/// The named-reload key of `kind` (`configmap.P/reload`, …).
pub fn named_key(kind: SourceKind) -> Key {
    match kind {
        SourceKind::ConfigMap => Key::ConfigMapReload,
        SourceKind::Secret => Key::SecretReload,
        SourceKind::SecretProviderClass => Key::SecretProviderClassReload,
    }
}

/// The typed auto key of `kind` (`configmap.P/auto`, …).
pub fn typed_auto_key(kind: SourceKind) -> Key {
    match kind {
        SourceKind::ConfigMap => Key::ConfigMapAuto,
        SourceKind::Secret => Key::SecretAuto,
        SourceKind::SecretProviderClass => Key::SecretProviderClassAuto,
    }
}

fn exclude_key(kind: SourceKind) -> Key {
    match kind {
        SourceKind::ConfigMap => Key::ConfigMapsExclude,
        SourceKind::Secret => Key::SecretsExclude,
        SourceKind::SecretProviderClass => Key::SecretProviderClassesExclude,
    }
}

/// Reloader reads the opt-in keys from the pod template only when the workload metadata has
/// none of them (present with any value counts as having one).
pub(super) fn effective<'a>(
    vocab: &Vocabulary,
    kind: SourceKind,
    annotations: &'a BTreeMap<String, String>,
    template_annotations: &'a BTreeMap<String, String>,
) -> &'a BTreeMap<String, String> {
    let keys = [
        named_key(kind),
        Key::Auto,
        typed_auto_key(kind),
        Key::Search,
    ];
    if keys.iter().any(|k| vocab.contains(annotations, *k)) {
        annotations
    } else {
        template_annotations
    }
}

/// Auto, typed auto, or `--auto-reload-all` when neither auto key has a value (so
/// `auto: "false"` opts out of reload-all, and so does any unparsable value).
fn auto_enabled(opts: &RuleOptions, kind: SourceKind, eff: &BTreeMap<String, String>) -> bool {
    auto_why(opts, kind, eff).is_some()
}

/// [`auto_enabled`], saying which.
fn auto_why(opts: &RuleOptions, kind: SourceKind, eff: &BTreeMap<String, String>) -> Option<Why> {
    let vocab = &opts.vocabulary;
    let auto = vocab.find(eff, Key::Auto);
    let typed = vocab.find(eff, typed_auto_key(kind));
    for (key, value) in auto.iter().chain(typed.iter()) {
        if parse_bool(value) == Some(true) {
            return Some(Why::Auto(key.clone()));
        }
    }
    let empty = |v: &Option<(String, &str)>| v.as_ref().is_none_or(|(_, v)| v.is_empty());
    (empty(&auto) && empty(&typed) && opts.auto_reload_all).then_some(Why::AutoReloadAll)
}

/// Reloader wraps each entry as `^entry$` textually, so `a|b` means `^a|b$` (Go and Rust
/// regexes agree on that); kept for compatibility.
fn anchored(entry: &str) -> String {
    format!("^{entry}$")
}

/// The first entry of `list` matching `name`.
fn named_match<'a>(list: &'a str, name: &str) -> Option<&'a str> {
    list.split(',').map(str::trim).find(|entry| {
        // Most entries are plain names whose regex matches only themselves (`-` and `_` are
        // literal outside a class; `.` is not): compare without compiling.
        if is_literal(entry) {
            return *entry == name;
        }
        Regex::new(&anchored(entry)).is_ok_and(|re| re.is_match(name))
    })
}

#[cfg(test)]
mod tests;
