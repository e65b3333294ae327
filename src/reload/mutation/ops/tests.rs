//! The workload mutation's patch operations, applied to workload JSON.

use serde_json::{Value, json};

use super::*;
use crate::reload::model::{SourceKind, SourceRef};

fn deployment(env: Value, annotations: Option<Value>) -> Value {
    let mut t = json!({"spec": {"containers": [{"name": "app", "image": "x"}]}});
    if !env.is_null() {
        t["spec"]["containers"][0]["env"] = env;
    }
    if let Some(a) = annotations {
        t["metadata"] = json!({"annotations": a});
    }
    json!({"metadata": {"name": "web"}, "spec": {"template": t}})
}

fn apply(doc: &Value, ops: Vec<PatchOperation>) -> Value {
    let mut doc = doc.clone();
    json_patch::patch(&mut doc, &json_patch::Patch(ops)).expect("applies");
    doc
}

fn marks(vocabulary: &Vocabulary) -> Marks<'_> {
    Marks {
        kind: WorkloadKind::Deployment,
        vocabulary,
    }
}

fn restore(old: &Value, new: &Value) -> Vec<PatchOperation> {
    restore_ops(marks(&Vocabulary::new(true)), old, new)
}

fn rebaseline(obj: &Value, live: &Observed) -> Vec<PatchOperation> {
    rebaseline_ops(marks(&Vocabulary::new(true)), obj, live)
}

fn json(ops: &[PatchOperation]) -> Vec<Value> {
    ops.iter()
        .map(|op| serde_json::to_value(op).expect("op"))
        .collect()
}

#[test]
fn dropped_env_var_is_put_back() {
    let var = json!({"name": "STAKATER_SETTINGS_CONFIGMAP", "value": "abc"});
    let old = deployment(json!([{"name": "A", "value": "1"}, var.clone()]), None);
    let new = deployment(json!([{"name": "A", "value": "1"}]), None);
    let ops = restore(&old, &new);
    let restored = apply(&new, ops);
    assert_eq!(
        restored["spec"]["template"]["spec"]["containers"][0]["env"][1],
        var
    );
    // Without an env list at all.
    let new = deployment(Value::Null, None);
    let ops = restore(&old, &new);
    let restored = apply(&new, ops);
    assert_eq!(
        restored["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([var])
    );
}

#[test]
fn other_env_vars_and_kept_ones_are_left_alone() {
    let old = deployment(
        json!([{"name": "USER_VAR", "value": "1"}, {"name": "STAKATER_X_SECRET", "value": "h"}]),
        None,
    );
    let new = deployment(json!([{"name": "STAKATER_X_SECRET", "value": "h"}]), None);
    assert!(restore(&old, &new).is_empty());
}

#[test]
fn dropped_last_reloaded_from_is_put_back_with_escaped_key() {
    let old = deployment(
        Value::Null,
        Some(json!({"kreload.dev/last-reloaded-from": "{}", "x": "y"})),
    );
    let new = deployment(Value::Null, Some(json!({"x": "y"})));
    let ops = restore(&old, &new);
    assert_eq!(
        json(&ops)[0]["path"],
        "/spec/template/metadata/annotations/kreload.dev~1last-reloaded-from"
    );
    let restored = apply(&new, ops);
    assert_eq!(
        restored["spec"]["template"]["metadata"]["annotations"]["kreload.dev/last-reloaded-from"],
        "{}"
    );
    let bare = deployment(Value::Null, None);
    let restored = apply(&bare, restore(&old, &bare));
    assert_eq!(
        restored["spec"]["template"]["metadata"]["annotations"]["kreload.dev/last-reloaded-from"],
        "{}"
    );
}

#[test]
fn several_dropped_vars_are_all_put_back() {
    let a = json!({"name": "STAKATER_A_CONFIGMAP", "value": "1"});
    let b = json!({"name": "STAKATER_B_SECRET", "value": "2"});
    let old = deployment(json!([a.clone(), b.clone()]), None);
    let new = deployment(Value::Null, None);
    let ops = restore(&old, &new);
    let restored = apply(&new, ops);
    assert_eq!(
        restored["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([a, b])
    );
    let new = deployment(json!([{"name": "USER", "value": "x"}]), None);
    let ops = restore(&old, &new);
    let restored = apply(&new, ops);
    assert_eq!(
        restored["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([{"name": "USER", "value": "x"}, a, b])
    );
}

#[test]
fn rebaseline_rewrites_stale_marks_to_the_live_content() {
    let cm = SourceRef {
        kind: SourceKind::ConfigMap,
        name: "settings".into(),
    };
    let record = ReloadRecord::new(&cm, "prod", "old", "app", 1).to_json();
    let obj = deployment(
        json!([{"name": "USER", "value": "x"}, {"name": "STAKATER_SETTINGS_CONFIGMAP", "value": "old"}]),
        Some(json!({"kreload.dev/last-reloaded-from": record})),
    );
    let live: Observed = [(cm.clone(), "new".to_owned())].into_iter().collect();
    let ops = rebaseline(&obj, &live);
    let fixed = apply(&obj, ops);
    let t = &fixed["spec"]["template"];
    assert_eq!(
        t["spec"]["containers"][0]["env"][1],
        json!({"name": "STAKATER_SETTINGS_CONFIGMAP", "value": "new"})
    );
    assert_eq!(t["spec"]["containers"][0]["env"][0]["value"], "x");
    let rewritten = t["metadata"]["annotations"]["kreload.dev/last-reloaded-from"]
        .as_str()
        .and_then(ReloadRecord::parse)
        .expect("record");
    assert_eq!(rewritten.hash, "new");
    assert_eq!(rewritten.name, "settings");
    // Marks that already agree, or name other sources, are left alone.
    assert!(rebaseline(&fixed, &live).is_empty());
    let other: Observed = [(
        SourceRef {
            kind: SourceKind::Secret,
            name: "settings".into(),
        },
        "z".to_owned(),
    )]
    .into_iter()
    .collect();
    assert!(rebaseline(&obj, &other).is_empty());
}
