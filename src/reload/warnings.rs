//! Admission warnings for misused annotations on a workload, the mistakes that make a
//! workload silently not reload: a typo under a known prefix, a source's key put on the
//! workload, a list where a boolean goes, an invalid regex, a named source that does not
//! exist, `search` with no referenced source carrying `match`. Warnings only: the write is
//! never denied. Decided from values; what needs the live sources says so ([`lookups`]) and
//! takes what the shell read.

use std::collections::BTreeMap;

use super::keys::{Key, Vocabulary, parse_bool};
use super::model::{SourceKind, SourceRef};
use super::refs::PodRefs;
use super::rules::{effective, invalid_reload_patterns, named_key};
use super::workload::Entry;

/// What the warnings look at in a workload object: its projection, unfiltered
/// ([`Entry::of`]).
pub type Parts = Entry;

impl Entry {
    pub fn subject<'a>(&'a self, kind: &'a str) -> Subject<'a> {
        Subject {
            kind,
            annotations: &self.annotations,
            template_annotations: &self.template_annotations,
            refs: &self.refs,
        }
    }
}

/// The workload being written.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// `Deployment`, … (for the texts).
    pub kind: &'a str,
    pub annotations: &'a BTreeMap<String, String>,
    pub template_annotations: &'a BTreeMap<String, String>,
    pub refs: &'a PodRefs,
}

/// What the shell found for a source [`lookups`] asked about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    Missing,
    /// It exists, with these annotations.
    Found(BTreeMap<String, String>),
}

/// The most sources the shell reads for one workload write (the webhook has seconds).
pub const MAX_LOOKUPS: usize = 8;

/// Named-reload entries that are plain object names (no regex beyond `.`, which matches
/// itself too), from the annotations that count (metadata, or the pod template).
pub fn named(vocab: &Vocabulary, s: &Subject) -> Vec<SourceRef> {
    let mut out = Vec::new();
    for kind in SourceKind::ALL {
        let key = named_key(kind);
        let eff = effective(vocab, kind, s.annotations, s.template_annotations);
        let Some(list) = vocab.get(eff, key) else {
            continue;
        };
        for entry in list.split(',').map(str::trim) {
            let plain = !entry.is_empty()
                && entry.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                });
            if plain {
                out.push(SourceRef::new(kind, entry));
            }
        }
    }
    out
}

fn searches(vocab: &Vocabulary, s: &Subject) -> bool {
    SourceKind::ALL.into_iter().any(|kind| {
        let eff = effective(vocab, kind, s.annotations, s.template_annotations);
        vocab.get(eff, Key::Search) == Some("true")
    })
}

/// The sources to read before [`warnings`] can say all it has to: the plainly named ones
/// and, with `search`, the referenced ones; at most [`MAX_LOOKUPS`].
pub fn lookups(vocab: &Vocabulary, s: &Subject) -> Vec<SourceRef> {
    let mut out = named(vocab, s);
    if searches(vocab, s) {
        out.extend(s.refs.sources());
    }
    out.sort();
    out.dedup();
    out.truncate(MAX_LOOKUPS);
    out
}

/// Levenshtein distance, for the closest valid key.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let next = (row[j + 1] + 1).min(row[j] + 1).min(prev + cost);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// The valid key closest to `unknown`, if it is close (a typo, not another word).
fn closest(vocab: &Vocabulary, unknown: &str) -> Option<String> {
    vocab
        .prefixes()
        .iter()
        .flat_map(|p| Key::ALL.into_iter().map(move |k| vocab.key(p, k)))
        .map(|k| (distance(unknown, &k), k))
        .min()
        .filter(|(d, k)| *d <= 3.max(k.len() / 5))
        .map(|(_, k)| k)
}

/// Warnings about one annotation map of the workload (`place`: where it sits).
fn annotation_warnings(
    vocab: &Vocabulary,
    map: &BTreeMap<String, String>,
    place: &str,
    out: &mut Vec<String>,
) {
    for (k, v) in map {
        if vocab.is_unknown_key(k) {
            let hint = closest(vocab, k)
                .map(|c| format!("; did you mean {c}?"))
                .unwrap_or_default();
            out.push(format!(
                "kreload: unknown annotation {k} on the {place}{hint}"
            ));
            continue;
        }
        match vocab.is_known_key(k) {
            Some(Key::Match | Key::Ignore) => out.push(format!(
                "kreload: {k} goes on a ConfigMap or Secret; on a workload it does nothing"
            )),
            Some(
                Key::Auto | Key::ConfigMapAuto | Key::SecretAuto | Key::SecretProviderClassAuto,
            ) if parse_bool(v).is_none() => out.push(not_a_boolean(k, v)),
            // Reloader compares search with "true" exactly.
            Some(Key::Search) if v != "true" && v != "false" => out.push(not_a_boolean(k, v)),
            _ => {}
        }
    }
}

fn not_a_boolean(key: &str, value: &str) -> String {
    if value.contains(',') {
        return format!(
            "kreload: {key} takes \"true\" or \"false\", not a list; name sources with configmap.…/reload or secret.…/reload"
        );
    }
    format!(
        "kreload: {key} takes \"true\" or \"false\", not {value:?}; this workload does not reload"
    )
}

/// Every warning for `s`. `found` holds what the shell read for [`lookups`]; a source it
/// could not read is left out of it, and nothing is said about it.
pub fn warnings(
    vocab: &Vocabulary,
    s: &Subject,
    found: &BTreeMap<SourceRef, Lookup>,
) -> Vec<String> {
    let mut out = Vec::new();
    annotation_warnings(vocab, s.annotations, s.kind, &mut out);
    annotation_warnings(vocab, s.template_annotations, "pod template", &mut out);
    for map in [s.annotations, s.template_annotations] {
        for bad in invalid_reload_patterns(vocab, map) {
            // The regex error spans lines (pattern, caret, message): keep the message.
            let why = bad.error.lines().last().unwrap_or_default().trim();
            let why = why.strip_prefix("error: ").unwrap_or(why);
            out.push(format!(
                "kreload: invalid regex {:?} in {}: {why}; the entry never matches",
                bad.entry, bad.key
            ));
        }
    }
    for source in named(vocab, s) {
        if found.get(&source) == Some(&Lookup::Missing) {
            out.push(format!(
                "kreload: named reload of {source}, which does not exist in this namespace"
            ));
        }
    }
    if searches(vocab, s) {
        let referenced: Vec<SourceRef> = s.refs.sources().into_iter().collect();
        let read: Vec<&Lookup> = referenced.iter().filter_map(|r| found.get(r)).collect();
        let matched = read
            .iter()
            .any(|l| matches!(l, Lookup::Found(a) if vocab.get(a, Key::Match) == Some("true")));
        if read.len() == referenced.len() && !matched {
            out.push(
                "kreload: search is on but no ConfigMap or Secret this workload uses carries match: \"true\"; it never reloads"
                    .to_owned(),
            );
        }
    }
    out.into_iter().map(printable).collect()
}

/// The API server drops a warning with control characters, and shortens long ones: one
/// line of at most [`WARNING_LIMIT`] bytes.
fn printable(w: String) -> String {
    let mut w: String = w
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if w.len() > WARNING_LIMIT {
        let mut end = WARNING_LIMIT;
        while !w.is_char_boundary(end) {
            end -= 1;
        }
        w.truncate(end);
    }
    w
}

/// Kubernetes' advice for a warning's length.
pub const WARNING_LIMIT: usize = 256;

#[cfg(test)]
mod tests;
