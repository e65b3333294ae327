//! Batch planning (which workloads a batch reloads) and per-workload planning (the one
//! patch for all of a workload's changes), driven with values.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::reload::patch::ReloadRecord;
use crate::reload::workload::project;

fn rules() -> RuleOptions {
    RuleOptions {
        vocabulary: Vocabulary::new(true),
        auto_reload_all: false,
        ignored_workload_kinds: Default::default(),
    }
}

fn entry(annotations: &[(&str, &str)], uses: &str) -> Arc<Entry> {
    let annotations: BTreeMap<String, String> = annotations
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let template = serde_json::from_value(json!({"spec": {"containers": [{
        "name": "app", "envFrom": [{"configMapRef": {"name": uses}}]
    }]}}))
    .expect("template");
    Arc::new(project(&rules(), &annotations, &template).expect("opted in"))
}

fn id(kind: WorkloadKind, name: &str) -> WorkloadId {
    WorkloadId {
        kind,
        name: name.into(),
    }
}

fn change(namespace: &str, name: &str, hash: &str) -> Confirmed {
    Confirmed {
        namespace: namespace.into(),
        source: SourceRef::configmap(name),
        hash: hash.into(),
        annotations: BTreeMap::new(),
        deleted: false,
    }
}

const AUTO: (&str, &str) = ("reloader.stakater.com/auto", "true");

#[test]
fn a_batch_reloads_each_workload_once_with_all_of_its_changes() {
    let web = entry(
        &[AUTO, ("configmap.reloader.stakater.com/reload", "flags")],
        "app",
    );
    let api = entry(&[AUTO], "other");
    let candidates = |ns: &str| match ns {
        "shop" => vec![
            (id(WorkloadKind::Deployment, "web"), web.clone()),
            (id(WorkloadKind::Deployment, "api"), api.clone()),
        ],
        _ => Vec::new(),
    };
    let confirmed = [
        change("shop", "app", "h1"),
        change("shop", "flags", "h2"),
        // The same names in another namespace concern nobody here.
        change("elsewhere", "app", "h3"),
    ];
    let batch = batch(&rules(), &confirmed, candidates);
    assert_eq!(batch.reloads.len(), 1, "{batch:?}");
    let reloads = &batch.reloads[&("shop".to_owned(), id(WorkloadKind::Deployment, "web"))];
    assert_eq!(
        reloads,
        &[
            Reload {
                source: SourceRef::configmap("app"),
                hash: "h1".into(),
                auto: true,
                deleted: false
            },
            Reload {
                source: SourceRef::configmap("flags"),
                hash: "h2".into(),
                auto: false,
                deleted: false
            },
        ]
    );
    assert!(batch.pausable.is_empty());
}

#[test]
fn deployments_with_a_pause_period_or_a_pause_of_ours_are_pausable() {
    let paused = entry(
        &[AUTO, ("deployment.kreload.dev/pause-period", "5m")],
        "app",
    );
    let candidates = |_: &str| {
        vec![
            (id(WorkloadKind::Deployment, "web"), paused.clone()),
            // Only Deployments pause.
            (id(WorkloadKind::StatefulSet, "db"), paused.clone()),
        ]
    };
    let batch = batch(&rules(), &[change("shop", "app", "h1")], candidates);
    assert_eq!(batch.reloads.len(), 2);
    let pausable: Vec<_> = batch.pausable.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(pausable, [id(WorkloadKind::Deployment, "web")]);
}

#[test]
fn an_ignored_source_reloads_nothing() {
    let web = entry(&[AUTO], "app");
    let mut ignored = change("shop", "app", "h1");
    ignored
        .annotations
        .insert("reloader.stakater.com/ignore".into(), "true".into());
    let batch = batch(&rules(), &[ignored], |_| {
        vec![(id(WorkloadKind::Deployment, "web"), web.clone())]
    });
    assert_eq!(batch, Batch::default());
}

fn deployment(env: Value) -> Value {
    json!({
        "metadata": {"name": "web", "resourceVersion": "42", "annotations": {"kreload.dev/auto": "true"}},
        "spec": {"template": {"spec": {"containers": [{
            "name": "app", "envFrom": [{"configMapRef": {"name": "app"}}, {"configMapRef": {"name": "flags"}}],
            "env": env
        }]}}}
    })
}

fn reload(name: &str, hash: &str) -> Reload {
    Reload {
        source: SourceRef::configmap(name),
        hash: hash.into(),
        auto: true,
        deleted: false,
    }
}

fn writing(vocabulary: &Vocabulary, strategy: Strategy) -> Writing<'_> {
    Writing {
        strategy,
        vocabulary,
        now: "2026-12-01T10:00:00Z".parse().expect("time"),
    }
}

#[test]
fn several_changes_make_one_guarded_patch() {
    let v = Vocabulary::new(true);
    let obj = deployment(json!([]));
    let (ops, planned) = workload(
        &writing(&v, Strategy::EnvVars),
        "shop",
        WorkloadKind::Deployment,
        &obj,
        &[reload("app", "h1"), reload("flags", "h2")],
    )
    .expect("plan");
    assert_eq!(planned, Planned::Reload);
    let tests = ops
        .iter()
        .filter(|op| matches!(op, PatchOperation::Test(_)))
        .count();
    assert_eq!(tests, 1);
    assert!(matches!(ops[0], PatchOperation::Test(_)));
    let mut patched = obj.clone();
    json_patch::patch(&mut patched, &json_patch::Patch(ops)).expect("applies");
    let env = &patched["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(
        env[0],
        json!({"name": "STAKATER_APP_CONFIGMAP", "value": "h1"})
    );
    assert_eq!(
        env[1],
        json!({"name": "STAKATER_FLAGS_CONFIGMAP", "value": "h2"})
    );
}

#[test]
fn content_already_there_plans_nothing() {
    let v = Vocabulary::new(true);
    let obj = deployment(json!([{"name": "STAKATER_APP_CONFIGMAP", "value": "h1"}]));
    let (ops, planned) = workload(
        &writing(&v, Strategy::EnvVars),
        "shop",
        WorkloadKind::Deployment,
        &obj,
        &[reload("app", "h1")],
    )
    .expect("plan");
    assert!(ops.is_empty());
    assert_eq!(planned, Planned::AlreadyApplied);
}

/// `obj` after the plan for `app` at `h1` is applied to it.
fn reloaded(w: &Writing, obj: &Value) -> Value {
    let (ops, _) = workload(
        w,
        "shop",
        WorkloadKind::Deployment,
        obj,
        &[reload("app", "h1")],
    )
    .expect("plan");
    let mut patched = obj.clone();
    json_patch::patch(&mut patched, &json_patch::Patch(ops)).expect("applies");
    patched
}

#[test]
fn the_record_carries_the_time_passed_in() {
    let v = Vocabulary::new(true);
    let w = writing(&v, Strategy::Annotations);
    let patched = reloaded(&w, &deployment(json!([])));
    let record =
        patched["spec"]["template"]["metadata"]["annotations"]["kreload.dev/last-reloaded-from"]
            .as_str()
            .and_then(ReloadRecord::parse)
            .expect("record");
    assert_eq!(record.observed_at, w.now.as_second());
    assert_eq!(record.hash, "h1");
}

/// The record answers in the vocabulary the workload opted in with (its metadata, or its
/// pod template when the metadata has no opt-in key).
#[test]
fn the_record_key_follows_the_opt_in_vocabulary() {
    let v = Vocabulary::new(true);
    let w = writing(&v, Strategy::Annotations);
    let theirs = |obj: &mut Value| {
        obj["metadata"]["annotations"] = json!({"reloader.stakater.com/auto": "true"});
    };
    let in_template = |obj: &mut Value| {
        obj["metadata"]["annotations"] = json!({});
        obj["spec"]["template"]["metadata"] =
            json!({"annotations": {"configmap.reloader.stakater.com/reload": "app"}});
    };
    for (setup, want) in [
        (
            theirs as fn(&mut Value),
            "reloader.stakater.com/last-reloaded-from",
        ),
        (in_template, "reloader.stakater.com/last-reloaded-from"),
        (|_: &mut Value| {}, "kreload.dev/last-reloaded-from"),
    ] {
        let mut obj = deployment(json!([]));
        setup(&mut obj);
        let obj = reloaded(&w, &obj);
        let annotations = obj["spec"]["template"]["metadata"]["annotations"]
            .as_object()
            .expect("template annotations");
        let records: Vec<&String> = annotations
            .keys()
            .filter(|k| k.ends_with("/last-reloaded-from"))
            .collect();
        assert_eq!(records, [want]);
    }
}

#[test]
fn a_workload_without_a_template_is_an_error() {
    let v = Vocabulary::new(true);
    let obj = json!({"metadata": {"name": "web"}, "spec": {}});
    let result = workload(
        &writing(&v, Strategy::EnvVars),
        "shop",
        WorkloadKind::Deployment,
        &obj,
        &[reload("app", "h1")],
    );
    assert!(matches!(result, Err(PlanError::NoTemplate)), "{result:?}");
}

#[test]
fn a_job_copy_carries_the_change_and_none_of_the_old_identity() {
    let v = Vocabulary::new(true);
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "once", "uid": "u1", "resourceVersion": "7",
                     "annotations": {"kreload.dev/auto": "true"}},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{
            "name": "app", "envFrom": [{"configMapRef": {"name": "app"}}]
        }]}}}
    }))
    .expect("job");
    let w = writing(&v, Strategy::EnvVars);
    let copy = job_copy(&w, "shop", &job, &[reload("app", "h1")])
        .expect("plan")
        .expect("a copy");
    assert_eq!(copy.metadata.uid, None);
    assert_eq!(copy.metadata.resource_version, None);
    let env = copy
        .spec
        .and_then(|s| s.template.spec)
        .map(|s| s.containers[0].env.clone().unwrap_or_default())
        .unwrap_or_default();
    assert_eq!(env[0].name, "STAKATER_APP_CONFIGMAP");
    assert_eq!(env[0].value.as_deref(), Some("h1"));
    // Once the copy carries the hash, nothing is recreated again.
    let mut carried: Job =
        serde_json::from_value(serde_json::to_value(&job).expect("json")).expect("job");
    if let Some(c) = carried
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut())
        .map(|s| &mut s.containers[0])
    {
        c.env = Some(vec![k8s_openapi::api::core::v1::EnvVar {
            name: "STAKATER_APP_CONFIGMAP".into(),
            value: Some("h1".into()),
            ..Default::default()
        }]);
    }
    let again = job_copy(&w, "shop", &carried, &[reload("app", "h1")]).expect("plan");
    assert!(matches!(again, Err(Planned::AlreadyApplied)), "{again:?}");
}
