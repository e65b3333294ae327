//! The `last-reloaded-from` pod-template annotation value, field for field Reloader's
//! ReloadSource JSON so that tools reading either find the same shape.

use serde::{Deserialize, Serialize};

use crate::reload::model::SourceRef;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ReloadRecord {
    /// `CONFIGMAP` or `SECRET`.
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub hash: String,
    /// Reloader writes `null` for a nil slice; accept it.
    #[serde(rename = "containerRefs", default, deserialize_with = "null_as_empty")]
    pub container_refs: Vec<String>,
    #[serde(rename = "observedAt")]
    pub observed_at: i64,
}

impl ReloadRecord {
    pub fn new(
        src: &SourceRef,
        namespace: &str,
        hash: &str,
        container: &str,
        observed_at: i64,
    ) -> Self {
        ReloadRecord {
            kind: src.kind.env_suffix().to_owned(),
            name: src.name.clone(),
            namespace: namespace.to_owned(),
            hash: hash.to_owned(),
            container_refs: vec![container.to_owned()],
            observed_at,
        }
    }

    /// Whether this record says the template was rolled for `src` at `hash`.
    pub fn records(&self, src: &SourceRef, hash: &str) -> bool {
        self.kind == src.kind.env_suffix() && self.name == src.name && self.hash == hash
    }

    /// Compact JSON in Reloader's field order. Built by hand from JSON values, which cannot
    /// fail to print, so no error path is needed.
    pub fn to_json(&self) -> String {
        use serde_json::Value;
        let s = |v: &str| Value::String(v.to_owned());
        let refs = Value::Array(self.container_refs.iter().map(|r| s(r)).collect());
        format!(
            r#"{{"type":{},"name":{},"namespace":{},"hash":{},"containerRefs":{},"observedAt":{}}}"#,
            s(&self.kind),
            s(&self.name),
            s(&self.namespace),
            s(&self.hash),
            refs,
            self.observed_at
        )
    }

    /// Parses an annotation value; anything unreadable is simply not a record.
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_str(s).ok()
    }
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ReloadRecord {
        ReloadRecord::new(
            &SourceRef::configmap("app-config"),
            "prod",
            "86eda770a6060824b090dd4df091e3bd4121279c",
            "app",
            1_700_000_000,
        )
    }

    #[test]
    fn json_is_reloaders_shape() {
        let want = r#"{"type":"CONFIGMAP","name":"app-config","namespace":"prod","hash":"86eda770a6060824b090dd4df091e3bd4121279c","containerRefs":["app"],"observedAt":1700000000}"#;
        assert_eq!(sample().to_json(), want);
        // serde agrees with the hand-built form.
        assert_eq!(serde_json::to_string(&sample()).expect("serializes"), want);
        assert_eq!(ReloadRecord::parse(want), Some(sample()));
    }

    #[test]
    fn escapes_and_nulls() {
        let mut r = sample();
        r.name = "we\"ird".into();
        assert!(r.to_json().contains(r#""name":"we\"ird""#));
        assert_eq!(ReloadRecord::parse(&r.to_json()), Some(r));
        let nil = r#"{"type":"SECRET","name":"s","namespace":"n","hash":"h","containerRefs":null,"observedAt":1}"#;
        let parsed = ReloadRecord::parse(nil).expect("null refs accepted");
        assert!(parsed.container_refs.is_empty());
        assert!(parsed.records(&SourceRef::secret("s"), "h"));
        assert!(!parsed.records(&SourceRef::configmap("s"), "h"));
        assert!(!parsed.records(&SourceRef::secret("s"), "other"));
        assert_eq!(ReloadRecord::parse("not json"), None);
    }
}
