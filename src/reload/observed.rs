//! The `kreload.dev/observed` workload metadata annotation: which content hash of each
//! ConfigMap/Secret the pod template currently reflects. Metadata annotations never roll
//! pods, so writing it is free; it is the baseline for idempotence and for the resync.
//!
//! Format: a compact JSON object, `{"configmap/NAME":"<sha1>","secret/NAME":"<sha1>"}`,
//! keys sorted; an empty hash records a deleted source whose reload has been applied.

use std::collections::BTreeMap;
use std::collections::btree_map;

use super::keys::OBSERVED;
use super::model::SourceRef;

#[derive(Debug, thiserror::Error)]
pub enum ObservedError {
    #[error("observed annotation is not a JSON object of strings")]
    Json(#[source] serde_json::Error),
    #[error("observed annotation key {0:?} is not configmap/NAME or secret/NAME")]
    Key(String),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed(BTreeMap<SourceRef, String>);

impl Observed {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the annotation value. It comes from outside (anyone can edit it), so bad input
    /// is an error, never a panic.
    pub fn parse(s: &str) -> Result<Observed, ObservedError> {
        let raw: BTreeMap<String, String> = serde_json::from_str(s).map_err(ObservedError::Json)?;
        raw.into_iter()
            .map(|(k, v)| match k.parse::<SourceRef>() {
                Ok(r) => Ok((r, v)),
                Err(_) => Err(ObservedError::Key(k)),
            })
            .collect::<Result<_, _>>()
            .map(Observed)
    }

    /// The record in a workload's metadata annotations; an absent annotation is empty.
    pub fn from_annotations(
        annotations: &BTreeMap<String, String>,
    ) -> Result<Observed, ObservedError> {
        annotations
            .get(OBSERVED)
            .map_or_else(|| Ok(Observed::default()), |v| Observed::parse(v))
    }

    /// Deterministic compact JSON, sorted by key.
    pub fn render(&self) -> String {
        let map: serde_json::Map<String, serde_json::Value> = self
            .0
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.clone())))
            .collect();
        serde_json::Value::Object(map).to_string()
    }

    pub fn get(&self, src: &SourceRef) -> Option<&str> {
        self.0.get(src).map(String::as_str)
    }

    /// Records `hash` for `src`, returning the previous hash.
    pub fn set(&mut self, src: SourceRef, hash: impl Into<String>) -> Option<String> {
        self.0.insert(src, hash.into())
    }

    pub fn remove(&mut self, src: &SourceRef) -> Option<String> {
        self.0.remove(src)
    }

    pub fn iter(&self) -> btree_map::Iter<'_, SourceRef, String> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(SourceRef, String)> for Observed {
    fn from_iter<I: IntoIterator<Item = (SourceRef, String)>>(iter: I) -> Self {
        Observed(iter.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a Observed {
    type Item = (&'a SourceRef, &'a String);
    type IntoIter = btree_map::Iter<'a, SourceRef, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_is_sorted_and_compact() {
        let mut o = Observed::new();
        assert_eq!(o.render(), "{}");
        assert_eq!(o.set(SourceRef::secret("tls"), "bb"), None);
        o.set(SourceRef::configmap("z"), "cc");
        o.set(SourceRef::configmap("a"), "aa");
        assert_eq!(
            o.render(),
            r#"{"configmap/a":"aa","configmap/z":"cc","secret/tls":"bb"}"#
        );
        assert_eq!(Observed::parse(&o.render()).expect("round trip"), o);
    }

    #[test]
    fn get_set_remove() {
        let mut o: Observed = [(SourceRef::configmap("a"), "1".to_string())]
            .into_iter()
            .collect();
        assert_eq!(o.get(&SourceRef::configmap("a")), Some("1"));
        assert_eq!(o.get(&SourceRef::secret("a")), None);
        assert_eq!(o.set(SourceRef::configmap("a"), "2"), Some("1".into()));
        assert_eq!(o.len(), 1);
        assert_eq!(o.remove(&SourceRef::configmap("a")), Some("2".into()));
        assert!(o.is_empty());
    }

    #[test]
    fn parse_accepts_whitespace_and_any_order() {
        let o = Observed::parse(r#" { "secret/s" : "2", "configmap/c": "1" } "#).expect("valid");
        assert_eq!(o.render(), r#"{"configmap/c":"1","secret/s":"2"}"#);
        let names: Vec<String> = o.iter().map(|(k, _)| k.to_string()).collect();
        assert_eq!(names, ["configmap/c", "secret/s"]);
    }

    #[test]
    fn bad_input_is_an_error() {
        for bad in [
            "",
            "null",
            "[]",
            "{",
            r#"{"configmap/a": 1}"#,
            r#"{"configmap/a": null}"#,
            r#""configmap/a""#,
        ] {
            assert!(
                matches!(Observed::parse(bad), Err(ObservedError::Json(_))),
                "{bad:?}"
            );
        }
        for bad in [r#"{"pod/a":"1"}"#, r#"{"configmap/":"1"}"#, r#"{"a":"1"}"#] {
            assert!(
                matches!(Observed::parse(bad), Err(ObservedError::Key(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn from_annotations() {
        let mut ann = BTreeMap::new();
        assert!(Observed::from_annotations(&ann).expect("absent").is_empty());
        ann.insert(OBSERVED.to_string(), r#"{"secret/s":"h"}"#.to_string());
        let o = Observed::from_annotations(&ann).expect("valid");
        assert_eq!(o.get(&SourceRef::secret("s")), Some("h"));
        ann.insert(OBSERVED.to_string(), "garbage".to_string());
        assert!(Observed::from_annotations(&ann).is_err());
    }
}
