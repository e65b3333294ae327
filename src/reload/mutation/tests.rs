//! The workload-mutation decision, driven with workload JSON as the API server sends it.

use serde_json::{Value, json};

use super::*;
use crate::reload::keys::Vocabulary;

fn rules() -> RuleOptions {
    RuleOptions {
        vocabulary: Vocabulary::new(true),
        auto_reload_all: false,
        ignored_workload_kinds: Default::default(),
    }
}

fn deployment(annotations: Value, env: Value) -> Value {
    json!({
        "metadata": {"name": "web", "annotations": annotations},
        "spec": {"template": {"spec": {"containers": [{
            "name": "app", "image": "x",
            "envFrom": [{"configMapRef": {"name": "app"}}],
            "env": env
        }]}}}
    })
}

fn request<'a>(operation: Operation, old: Option<&'a Value>, new: &'a Value) -> Request<'a> {
    Request {
        kind: WorkloadKind::Deployment,
        operation,
        by_kreload: false,
        in_scope: true,
        old,
        new,
    }
}

fn live(hash: &str) -> Observed {
    let mut o = Observed::default();
    o.set(SourceRef::configmap("app"), hash);
    o
}

fn apply(doc: &Value, m: Mutation) -> Value {
    let Mutation::Patch(ops) = m else {
        panic!("expected a patch, got {m:?}");
    };
    let mut doc = doc.clone();
    json_patch::patch(&mut doc, &json_patch::Patch(ops)).expect("applies");
    doc
}

const AUTO: &str = "reloader.stakater.com/auto";

#[test]
fn a_created_workload_asks_for_the_live_hashes_then_records_them() {
    let new = deployment(json!({AUTO: "true"}), json!([]));
    let req = request(Operation::Create, None, &new);
    assert_eq!(
        decide(&rules(), &req, None),
        Mutation::NeedsLive(vec![SourceRef::configmap("app")])
    );
    let mutated = apply(&new, decide(&rules(), &req, Some(&live("h1"))));
    assert_eq!(
        mutated["metadata"]["annotations"][OBSERVED],
        live("h1").render()
    );
    assert_eq!(mutated["metadata"]["annotations"][AUTO], "true");
}

#[test]
fn workloads_out_of_scope_ignored_or_not_opted_in_are_left_alone() {
    let opted = deployment(json!({AUTO: "true"}), json!([]));
    let plain = deployment(json!({"team": "a"}), json!([]));
    let mut out = request(Operation::Create, None, &opted);
    out.in_scope = false;
    assert_eq!(decide(&rules(), &out, Some(&live("h"))), Mutation::Nothing);
    let mut ignoring = rules();
    ignoring
        .ignored_workload_kinds
        .insert(WorkloadKind::Deployment);
    let req = request(Operation::Create, None, &opted);
    assert_eq!(decide(&ignoring, &req, Some(&live("h"))), Mutation::Nothing);
    let req = request(Operation::Create, None, &plain);
    assert_eq!(decide(&rules(), &req, None), Mutation::Nothing);
}

#[test]
fn kreloads_own_writes_are_not_mutated() {
    let old = deployment(json!({AUTO: "true"}), json!([]));
    let new = deployment(
        json!({AUTO: "true"}),
        json!([{"name": "STAKATER_APP_CONFIGMAP", "value": "h2"}]),
    );
    let mut req = request(Operation::Update, Some(&old), &new);
    req.by_kreload = true;
    assert_eq!(decide(&rules(), &req, None), Mutation::Nothing);
}

#[test]
fn a_replace_that_drops_kreloads_marks_gets_them_back_without_a_rollout() {
    let var = json!({"name": "STAKATER_APP_CONFIGMAP", "value": "h1"});
    let recorded = live("h1").render();
    let old = deployment(json!({AUTO: "true", OBSERVED: recorded}), json!([var]));
    // A GitOps re-apply with replace: kreload's variable and record are gone.
    let new = deployment(json!({AUTO: "true"}), json!([]));
    let req = request(Operation::Update, Some(&old), &new);
    // Once the variable is back the template is the old one: no live read is needed.
    let mutated = apply(&new, decide(&rules(), &req, None));
    assert_eq!(
        mutated["spec"]["template"]["spec"]["containers"][0]["env"][0],
        var
    );
    assert_eq!(mutated["metadata"]["annotations"][OBSERVED], recorded);
}

#[test]
fn a_template_change_takes_the_live_content_as_the_new_baseline() {
    let old = deployment(
        json!({AUTO: "true"}),
        json!([{"name": "STAKATER_APP_CONFIGMAP", "value": "h1"}]),
    );
    let mut new = old.clone();
    new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("y");
    let req = request(Operation::Update, Some(&old), &new);
    assert!(matches!(
        decide(&rules(), &req, None),
        Mutation::NeedsLive(_)
    ));
    let mutated = apply(&new, decide(&rules(), &req, Some(&live("h2"))));
    let container = &mutated["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["env"][0]["value"], "h2");
    assert_eq!(container["image"], "y");
    assert_eq!(
        mutated["metadata"]["annotations"][OBSERVED],
        live("h2").render()
    );
}

#[test]
fn an_update_that_changes_nothing_of_ours_is_left_alone() {
    let recorded = live("h1").render();
    let old = deployment(json!({AUTO: "true", OBSERVED: recorded}), json!([]));
    let mut new = old.clone();
    new["metadata"]["annotations"]["team"] = json!("b");
    let req = request(Operation::Update, Some(&old), &new);
    assert_eq!(decide(&rules(), &req, None), Mutation::Nothing);
}

#[test]
fn a_workload_without_annotations_gets_the_whole_map() {
    // Opted in through the pod template, no metadata annotations at all.
    let new = json!({
        "metadata": {"name": "web"},
        "spec": {"template": {
            "metadata": {"annotations": {AUTO: "true"}},
            "spec": {"containers": [{"name": "app", "envFrom": [{"configMapRef": {"name": "app"}}]}]}
        }}
    });
    let req = request(Operation::Create, None, &new);
    let mutated = apply(&new, decide(&rules(), &req, Some(&live("h1"))));
    assert_eq!(
        mutated["metadata"]["annotations"],
        json!({OBSERVED: live("h1").render()})
    );
}
