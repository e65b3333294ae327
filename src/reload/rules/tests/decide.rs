//! The precedence table of `decide`, read from `decide.jsonl` (one case a line).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::*;
use crate::reload::refs::ContainerUse;

use Decision::{Reload, Skip};

const TABLE: &str = include_str!("decide.jsonl");

/// One line of the table; absent fields take the defaults the table's header names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    want: String,
    #[serde(default)]
    strict: bool,
    #[serde(default)]
    all: bool,
    kind: Option<String>,
    #[serde(default)]
    meta: BTreeMap<String, String>,
    #[serde(default)]
    tmpl: BTreeMap<String, String>,
    src: Option<String>,
    #[serde(default)]
    src_ann: BTreeMap<String, String>,
    #[serde(default)]
    unreferenced: bool,
}

fn cases() -> Vec<Case> {
    TABLE
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// The decision in the table's words.
fn render(d: &Decision) -> String {
    match d {
        Reload { auto: true } => "auto".into(),
        Reload { auto: false } => "named".into(),
        Skip(reason) => format!("skip:{reason:?}"),
    }
}

fn run(c: &Case) -> Decision {
    let opts = RuleOptions {
        vocabulary: Vocabulary::new(!c.strict),
        auto_reload_all: c.all,
        ignored_workload_kinds: [WorkloadKind::Job].into(),
    };
    let kind = c.kind.as_deref().map_or(WorkloadKind::Deployment, |k| {
        WorkloadKind::from_api_kind(k).unwrap_or_else(|| panic!("{}: kind {k}", c.name))
    });
    let src: SourceRef = c
        .src
        .as_deref()
        .unwrap_or("configmap/app-config")
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", c.name));
    let uses = if c.unreferenced {
        vec![]
    } else {
        vec![src.clone()]
    };
    let refs = PodRefs {
        containers: vec![ContainerUse {
            name: "app".into(),
            mounts: vec![],
            env: uses,
        }],
        init_containers: vec![],
    };
    let w = WorkloadView {
        kind,
        annotations: &c.meta,
        template_annotations: &c.tmpl,
        refs: &refs,
    };
    let s = SourceView {
        source: &src,
        annotations: &c.src_ann,
    };
    let got = decide(&opts, &w, &s);
    // The index's filter must never hide a workload that would reload.
    if matches!(got, Reload { .. }) {
        assert!(
            opted_in(&opts, &c.meta, &c.tmpl),
            "{}: opted_in false",
            c.name
        );
    }
    got
}

#[test]
fn decide_table() {
    let cases = cases();
    assert_eq!(cases.len(), 75, "every line of the table is read");
    let mut failures = Vec::new();
    for c in &cases {
        let got = render(&run(c));
        if got != c.want {
            failures.push(format!("{}: got {got}, want {}", c.name, c.want));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
