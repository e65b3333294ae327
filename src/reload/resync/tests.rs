use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::reload::keys::{OBSERVED, Vocabulary};
use crate::reload::model::SourceRef;

fn live(pairs: &[(SourceRef, &str)]) -> BTreeMap<SourceRef, String> {
    pairs
        .iter()
        .map(|(s, h)| (s.clone(), (*h).to_owned()))
        .collect()
}

fn deployment(annotations: serde_json::Value, env: serde_json::Value) -> serde_json::Value {
    json!({
        "metadata": {"annotations": annotations},
        "spec": {"template": {"spec": {"containers": [{"name": "app", "env": env}]}}}
    })
}

fn read(obj: &serde_json::Value, sources: &[SourceRef]) -> Recorded {
    Recorded::read(
        &Vocabulary::new(true),
        WorkloadKind::Deployment,
        obj,
        sources,
    )
}

#[test]
fn a_current_workload_needs_nothing() {
    let cm = SourceRef::configmap("settings");
    let obj = deployment(
        json!({ OBSERVED: r#"{"configmap/settings":"h1"}"# }),
        json!([]),
    );
    let verdict = compare(&read(&obj, std::slice::from_ref(&cm)), &live(&[(cm, "h1")]));
    assert_eq!(verdict, Verdict::default());
}

#[test]
fn a_change_made_while_kreload_was_down_is_stale() {
    let cm = SourceRef::configmap("settings");
    let s = SourceRef::secret("token");
    let obj = deployment(
        json!({ OBSERVED: r#"{"configmap/settings":"h1","secret/token":"t1"}"# }),
        json!([]),
    );
    let verdict = compare(
        &read(&obj, &[cm.clone(), s.clone()]),
        &live(&[(cm.clone(), "h2"), (s, "t1")]),
    );
    assert_eq!(verdict.stale, vec![(cm, "h2".to_owned())]);
    assert_eq!(verdict.baseline, None);
}

#[test]
fn a_workload_without_any_record_gets_a_baseline_and_no_reload() {
    let cm = SourceRef::configmap("settings");
    let obj = deployment(json!({}), json!([]));
    let verdict = compare(
        &read(&obj, std::slice::from_ref(&cm)),
        &live(&[(cm.clone(), "h1")]),
    );
    assert!(verdict.stale.is_empty());
    let baseline = verdict.baseline.expect("baseline");
    assert_eq!(baseline.get(&cm), Some("h1"));
}

#[test]
fn reloaders_env_var_counts_as_a_record() {
    let cm = SourceRef::configmap("settings");
    let obj = deployment(
        json!({}),
        json!([{"name": "STAKATER_SETTINGS_CONFIGMAP", "value": "h1"}]),
    );
    let recorded = read(&obj, std::slice::from_ref(&cm));
    // Current: recorded in the metadata so later passes need not look at the template.
    let verdict = compare(&recorded, &live(&[(cm.clone(), "h1")]));
    assert!(verdict.stale.is_empty());
    assert_eq!(verdict.baseline.expect("baseline").get(&cm), Some("h1"));
    // Changed while nobody watched: reload.
    let verdict = compare(&recorded, &live(&[(cm.clone(), "h2")]));
    assert_eq!(verdict.stale, vec![(cm, "h2".to_owned())]);
    assert_eq!(verdict.baseline, None);
}

#[test]
fn the_last_reloaded_from_record_counts_under_either_prefix() {
    let s = SourceRef::secret("token");
    let record = r#"{"type":"SECRET","name":"token","namespace":"ns","hash":"t1","containerRefs":["app"],"observedAt":1}"#;
    let obj = json!({
        "metadata": {},
        "spec": {"template": {
            "metadata": {"annotations": {"reloader.stakater.com/last-reloaded-from": record}},
            "spec": {"containers": [{"name": "app"}]}
        }}
    });
    let recorded = read(&obj, &[s.clone(), SourceRef::secret("other")]);
    assert_eq!(recorded.get(&s), Some("t1"));
    assert_eq!(recorded.get(&SourceRef::secret("other")), None);
}

#[test]
fn observed_wins_over_an_older_mark() {
    let cm = SourceRef::configmap("settings");
    let obj = deployment(
        json!({ OBSERVED: r#"{"configmap/settings":"h2"}"# }),
        json!([{"name": "STAKATER_SETTINGS_CONFIGMAP", "value": "h1"}]),
    );
    let verdict = compare(&read(&obj, std::slice::from_ref(&cm)), &live(&[(cm, "h2")]));
    assert_eq!(verdict, Verdict::default());
}

#[test]
fn an_unreadable_observed_record_is_rebuilt_from_live_content() {
    let cm = SourceRef::configmap("settings");
    let obj = deployment(json!({ OBSERVED: "garbage" }), json!([]));
    let verdict = compare(
        &read(&obj, std::slice::from_ref(&cm)),
        &live(&[(cm.clone(), "h1")]),
    );
    assert!(verdict.stale.is_empty());
    assert_eq!(verdict.baseline.expect("baseline").get(&cm), Some("h1"));
}

#[test]
fn sources_are_the_references_and_the_plain_named_reloads() {
    let rules = crate::reload::rules::RuleOptions {
        vocabulary: Vocabulary::new(true),
        auto_reload_all: false,
        ignored_workload_kinds: Default::default(),
    };
    let template: k8s_openapi::api::core::v1::PodTemplateSpec = serde_json::from_value(json!({
        "spec": {"containers": [{"name": "app", "envFrom": [{"configMapRef": {"name": "settings"}}]}]}
    }))
    .expect("template");
    let annotations = crate::reload::testing::pairs(&[
        ("reloader.stakater.com/auto", "true"),
        (
            "secret.reloader.stakater.com/reload",
            "token, tls-.*,settings",
        ),
        ("configmap.reloader.stakater.com/reload", "settings"),
    ]);
    let entry =
        crate::reload::workload::project(&rules, &annotations, &template).expect("opted in");
    let got = sources(&rules, &entry);
    assert_eq!(
        got,
        vec![
            SourceRef::configmap("settings"),
            SourceRef::secret("token"),
            SourceRef::secret("settings"),
        ]
    );
}

#[test]
fn a_template_mark_newer_than_the_observed_record_is_current() {
    // Reloader (during a migration) wrote the variable after kreload's record.
    let cm = SourceRef::configmap("settings");
    let obj = deployment(
        json!({ OBSERVED: r#"{"configmap/settings":"h1"}"# }),
        json!([{"name": "STAKATER_SETTINGS_CONFIGMAP", "value": "h2"}]),
    );
    let verdict = compare(
        &read(&obj, std::slice::from_ref(&cm)),
        &live(&[(cm.clone(), "h2")]),
    );
    assert!(verdict.stale.is_empty());
    assert_eq!(verdict.baseline.expect("baseline").get(&cm), Some("h2"));
}

#[test]
fn a_source_deleted_while_nobody_watched_removes_its_variable() {
    let cm = SourceRef::configmap("settings");
    let with_var = deployment(
        json!({ OBSERVED: r#"{"configmap/settings":"h1"}"# }),
        json!([{"name": "STAKATER_SETTINGS_CONFIGMAP", "value": "h1"}]),
    );
    let gone = live(&[(cm.clone(), "")]);
    let verdict = compare(&read(&with_var, std::slice::from_ref(&cm)), &gone);
    assert_eq!(verdict.stale, vec![(cm.clone(), String::new())]);
    // No variable to remove: record the deletion, roll nothing.
    let without = deployment(
        json!({ OBSERVED: r#"{"configmap/settings":"h1"}"# }),
        json!([]),
    );
    let verdict = compare(&read(&without, std::slice::from_ref(&cm)), &gone);
    assert!(verdict.stale.is_empty());
    assert_eq!(verdict.baseline.expect("baseline").get(&cm), Some(""));
    // Already recorded as deleted, or never recorded: nothing.
    let done = deployment(
        json!({ OBSERVED: r#"{"configmap/settings":""}"# }),
        json!([]),
    );
    assert_eq!(
        compare(&read(&done, std::slice::from_ref(&cm)), &gone),
        Verdict::default()
    );
    let never = deployment(json!({}), json!([]));
    assert_eq!(
        compare(&read(&never, std::slice::from_ref(&cm)), &gone),
        Verdict::default()
    );
}
