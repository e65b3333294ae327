//! Every rule of the precedence list, as `explain` words it.

use std::collections::BTreeSet;

use serde_json::json;

use super::*;
use crate::reload::keys::Vocabulary;
use crate::reload::testing::pairs as map;

fn opts(auto_reload_all: bool, ignored: &[WorkloadKind]) -> RuleOptions {
    RuleOptions {
        vocabulary: Vocabulary::default(),
        auto_reload_all,
        ignored_workload_kinds: ignored.iter().copied().collect::<BTreeSet<_>>(),
    }
}

/// A Deployment `name` with these metadata and template annotations whose container `app`
/// mounts ConfigMap `used` and whose init container reads it from env.
fn workload(name: &str, annotations: Value, template: Value) -> (WorkloadId, Parts, Value) {
    let obj = json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"template": {"metadata": {"annotations": template}, "spec": {
            "volumes": [{"name": "v", "configMap": {"name": "used"}}],
            "containers": [{"name": "app", "volumeMounts": [{"name": "v", "mountPath": "/v"}],
                "env": [{"name": "STAKATER_USED_CONFIGMAP", "value": "h1"}]}],
            "initContainers": [{"name": "init", "envFrom": [{"configMapRef": {"name": "used"}}]}]
        }}}
    });
    let id = WorkloadId {
        kind: WorkloadKind::Deployment,
        name: name.to_owned(),
    };
    (id, Parts::of(WorkloadKind::Deployment, &obj), obj)
}

fn rule_of(
    o: &RuleOptions,
    annotations: Value,
    template: Value,
    source: &str,
    source_annotations: &[(&str, &str)],
) -> (bool, &'static str, Option<String>) {
    let (id, parts, _) = workload("w", annotations, template);
    let v = verdict(
        o,
        &id,
        &parts,
        &SourceRef::configmap(source),
        &map(source_annotations),
    );
    (v.reloads, v.rule, v.annotation)
}

#[test]
fn every_precedence_rule_is_named() {
    let o = opts(false, &[]);
    let none = json!({});
    let auto = json!({"reloader.stakater.com/auto": "true"});
    assert_eq!(
        rule_of(
            &opts(false, &[WorkloadKind::Deployment]),
            auto.clone(),
            none.clone(),
            "used",
            &[]
        ),
        (false, "kind-ignored", None)
    );
    assert_eq!(
        rule_of(
            &o,
            auto.clone(),
            none.clone(),
            "used",
            &[("kreload.dev/ignore", "true")]
        ),
        (false, "source-ignored", Some("kreload.dev/ignore".into()))
    );
    let excluded = json!({"reloader.stakater.com/auto": "true", "configmaps.exclude.reloader.stakater.com/reload": "x, used"});
    assert_eq!(
        rule_of(&o, excluded, none.clone(), "used", &[]),
        (
            false,
            "excluded",
            Some("configmaps.exclude.reloader.stakater.com/reload".into())
        )
    );
    let named = json!({"configmap.kreload.dev/reload": "other-.*"});
    assert_eq!(
        rule_of(&o, named, none.clone(), "other-x", &[]),
        (true, "named", Some("configmap.kreload.dev/reload".into()))
    );
}

#[test]
fn the_opt_in_rules_are_named() {
    let o = opts(false, &[]);
    let none = json!({});
    let auto = json!({"reloader.stakater.com/auto": "true"});
    let search = json!({"reloader.stakater.com/search": "true"});
    assert_eq!(
        rule_of(
            &o,
            search.clone(),
            none.clone(),
            "used",
            &[("reloader.stakater.com/match", "true")]
        ),
        (
            true,
            "search-match",
            Some("reloader.stakater.com/match".into())
        )
    );
    assert_eq!(
        rule_of(&o, search, none.clone(), "used", &[]).1,
        "not-opted-in"
    );
    assert_eq!(
        rule_of(&o, auto.clone(), none.clone(), "used", &[]),
        (true, "auto", Some("reloader.stakater.com/auto".into()))
    );
    // The pod template is read when the metadata has no opt-in key.
    assert_eq!(
        rule_of(
            &o,
            none.clone(),
            json!({"configmap.reloader.stakater.com/auto": "true"}),
            "used",
            &[]
        ),
        (
            true,
            "auto",
            Some("configmap.reloader.stakater.com/auto".into())
        )
    );
    assert_eq!(
        rule_of(&opts(true, &[]), none.clone(), none.clone(), "used", &[]),
        (true, "auto-reload-all", None)
    );
    assert_eq!(
        rule_of(&o, auto, none.clone(), "unused", &[]).1,
        "not-referenced"
    );
    assert_eq!(
        rule_of(&o, none.clone(), none, "used", &[]).1,
        "not-opted-in"
    );
}

#[test]
fn a_source_report_lists_who_reloads_and_which_opted_in_do_not() {
    let o = opts(false, &[]);
    let workloads: Vec<(WorkloadId, Parts)> = [
        workload(
            "a",
            json!({"reloader.stakater.com/auto": "true"}),
            json!({}),
        ),
        workload("b", json!({"kreload.dev/auto": "false"}), json!({})),
        workload("c", json!({"secret.kreload.dev/reload": "s"}), json!({})),
    ]
    .into_iter()
    .map(|(id, parts, _)| (id, parts))
    .collect();
    let r = explain_source(
        &o,
        "shop",
        &SourceRef::configmap("used"),
        &map(&[]),
        &workloads,
    );
    assert_eq!(r.reloads.len(), 1);
    let a = &r.reloads[0];
    assert_eq!(a.workload, "Deployment/a");
    assert_eq!(a.container.as_deref(), Some("app"));
    assert_eq!(
        a.used_by,
        ["container app (volume)", "init container init (env)"]
    );
    // b uses it without opting in; c opted in for something else.
    let skipped: Vec<&str> = r.skips.iter().map(|v| v.workload.as_str()).collect();
    assert_eq!(skipped, ["Deployment/b", "Deployment/c"]);
    let text = render_source(&r);
    assert!(text.starts_with("configmap/used in namespace shop\nA change reloads:\n  Deployment/a: auto reload of what the pod spec uses (auto) [reloader.stakater.com/auto]; used by container app (volume), init container init (env); the change goes to container app\n"), "{text}");
    assert!(
        text.contains("It does not reload:\n  Deployment/b: no annotation opts the workload in"),
        "{text}"
    );
    let json = serde_json::to_value(&r).expect("json");
    assert_eq!(json["reloads"][0]["rule"], "auto");
}

#[test]
fn a_workload_report_has_its_sources_and_its_marks() {
    let o = opts(false, &[]);
    let record = r#"{"type":"CONFIGMAP","name":"used","namespace":"shop","hash":"h1","containerRefs":["app"],"observedAt":1764583200}"#;
    let (id, _, obj) = workload(
        "web",
        json!({"reloader.stakater.com/auto": "true", "kreload.dev/observed": "{\"configmap/used\":\"h1\"}"}),
        json!({"reloader.stakater.com/last-reloaded-from": record}),
    );
    let sources = [
        (SourceRef::configmap("used"), Some(map(&[]))),
        (SourceRef::secret("gone"), None),
    ];
    let r = explain_workload(&o, "shop", &id, &obj, &sources);
    assert_eq!(r.sources.len(), 1);
    assert!(r.sources[0].reloads);
    assert_eq!(r.missing, ["secret/gone"]);
    let kinds: Vec<&str> = r.marks.iter().map(|m| m.kind).collect();
    assert_eq!(kinds, ["env", "last-reloaded-from", "observed"]);
    let text = render_workload(&r);
    assert!(text.contains("last-reloaded-from reloader.stakater.com/last-reloaded-from from configmap/used: h1 at 2025-12-01T10:00:00Z"), "{text}");
    assert!(
        text.contains("secret/gone is named but does not exist"),
        "{text}"
    );
}

#[test]
fn targets_parse() {
    assert_eq!(
        parse_target("configmap/app").ok(),
        Some(Target::Source(SourceRef::configmap("app")))
    );
    assert_eq!(
        parse_target("secret/db").ok(),
        Some(Target::Source(SourceRef::secret("db")))
    );
    assert_eq!(
        parse_target("deployment/web").ok(),
        Some(Target::Workload(WorkloadId {
            kind: WorkloadKind::Deployment,
            name: "web".into()
        }))
    );
    assert!(parse_target("statefulsets/db").is_ok());
    for bad in ["web", "pod/x", "deployment/", "configmap/"] {
        assert!(parse_target(bad).is_err(), "{bad}");
    }
}
