//! Tests of the env-vars strategy, container choice and the observed record.

use super::*;

#[test]
fn env_vars_every_kind_then_idempotent() {
    let src = cm("app-config");
    for kind in [Deployment, StatefulSet, DaemonSet, CronJob, Rollout, Job] {
        let mut obj = workload(kind, Some(json!({"kreload.dev/auto": "true"})), template());
        let before = obj.clone();
        let with = |hash: &str| {
            json!([{"name": "LOG", "value": "info"},
                   {"name": "STAKATER_APP_CONFIG_CONFIGMAP", "value": hash}])
        };
        reload(&mut obj, kind, &change(&src, H1, Strategy::EnvVars, true));
        assert_eq!(env_of(&obj, kind, 0), with(H1), "{kind}");
        assert_eq!(
            env_of(&obj, kind, 1),
            Value::Null,
            "{kind}: sidecar untouched"
        );
        assert_eq!(observed_of(&obj).get(&src), Some(H1), "{kind}");
        assert_eq!(obj["metadata"]["annotations"]["kreload.dev/auto"], "true");
        assert_eq!(obj["status"], before["status"]);

        // The same hash again (a retry, a second replica, a resync): nothing to do.
        let again = change(&src, H1, Strategy::EnvVars, true);
        assert_eq!(plan_for(&obj, kind, &again), Plan::AlreadyApplied, "{kind}");

        // New content: the variable is replaced in place, not duplicated.
        reload(&mut obj, kind, &change(&src, H2, Strategy::EnvVars, true));
        assert_eq!(env_of(&obj, kind, 0), with(H2), "{kind}");
        assert_eq!(observed_of(&obj).get(&src), Some(H2));
    }
}

#[test]
fn patch_shape_tests_resource_version_first() {
    let src = cm("app-config");
    let obj = workload(Deployment, Some(json!({"a": "b"})), template());
    let p = patch_of(plan_for(
        &obj,
        Deployment,
        &change(&src, H1, Strategy::EnvVars, true),
    ));
    assert_eq!(
        serde_json::to_value(&p).expect("serializes"),
        json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": "100"},
            {"op": "add", "path": "/spec/template/spec/containers/0/env/-",
             "value": {"name": "STAKATER_APP_CONFIG_CONFIGMAP", "value": H1}},
            {"op": "add", "path": "/metadata/annotations/kreload.dev~1observed",
             "value": format!(r#"{{"configmap/app-config":"{H1}"}}"#)}
        ])
    );
}

#[test]
fn concurrent_write_makes_the_patch_fail() {
    let src = cm("app-config");
    let mut obj = workload(Deployment, None, template());
    let p = patch_of(plan_for(
        &obj,
        Deployment,
        &change(&src, H1, Strategy::EnvVars, true),
    ));
    obj["metadata"]["resourceVersion"] = json!("101");
    let before = obj.clone();
    assert!(json_patch::patch(&mut obj, &p).is_err());
    assert_eq!(obj, before, "a failed patch changes nothing");
}

#[test]
fn absent_maps_and_lists_are_added_whole() {
    let src = cm("app-config");
    let mut tpl = template();
    tpl["spec"]["containers"][0]
        .as_object_mut()
        .expect("object")
        .remove("env");
    let mut obj = workload(StatefulSet, None, tpl);
    let p = reload(
        &mut obj,
        StatefulSet,
        &change(&src, H1, Strategy::EnvVars, true),
    );
    let ops = serde_json::to_value(&p).expect("serializes");
    assert_eq!(ops[1]["path"], "/spec/template/spec/containers/0/env");
    assert_eq!(ops[2]["path"], "/metadata/annotations");
    assert_eq!(
        env_of(&obj, StatefulSet, 0),
        json!([{"name": "STAKATER_APP_CONFIG_CONFIGMAP", "value": H1}])
    );
    assert_eq!(
        obj["metadata"]["annotations"],
        json!({"kreload.dev/observed": format!(r#"{{"configmap/app-config":"{H1}"}}"#)})
    );
}

#[test]
fn reloader_env_var_already_there_counts_as_applied() {
    // Migrated from Reloader: the variable carries the current hash, no observed record yet.
    let src = cm("app-config");
    let mut tpl = template();
    tpl["spec"]["containers"][0]["env"] = json!([
        {"name": "STAKATER_APP_CONFIG_CONFIGMAP", "value": H1}, {"name": "LOG", "value": "info"}
    ]);
    let obj = workload(
        Deployment,
        Some(json!({"reloader.stakater.com/auto": "true"})),
        tpl,
    );
    let c = change(&src, H1, Strategy::EnvVars, true);
    assert_eq!(plan_for(&obj, Deployment, &c), Plan::AlreadyApplied);

    // The worker can then record the baseline without a rollout.
    let mut observed = Observed::new();
    observed.set(src.clone(), H1);
    let ann = BTreeMap::from([("reloader.stakater.com/auto".to_string(), "true".to_string())]);
    let p = record_observed("100", &ann, &observed).expect("record missing");
    let mut patched = obj.clone();
    json_patch::patch(&mut patched, &p).expect("applies");
    assert_eq!(patched["spec"], obj["spec"], "no template change");
    assert_eq!(observed_of(&patched).get(&src), Some(H1));
    let ann: BTreeMap<String, String> =
        serde_json::from_value(patched["metadata"]["annotations"].clone()).expect("map");
    assert_eq!(record_observed("101", &ann, &observed), None);
}

#[test]
fn observed_record_alone_means_applied() {
    let src = cm("app-config");
    let ann = json!({OBSERVED: format!(r#"{{"configmap/app-config":"{H1}"}}"#)});
    let obj = workload(DaemonSet, Some(ann), template());
    for strategy in [Strategy::EnvVars, Strategy::Annotations] {
        assert_eq!(
            plan_for(&obj, DaemonSet, &change(&src, H1, strategy, true)),
            Plan::AlreadyApplied
        );
    }
}

#[test]
fn observed_keeps_other_entries_and_replaces_garbage() {
    let src = cm("app-config");
    for (before, after) in [
        (
            r#"{"secret/tls":"ff"}"#.to_owned(),
            format!(r#"{{"configmap/app-config":"{H1}","secret/tls":"ff"}}"#),
        ),
        (
            "not json".to_owned(),
            format!(r#"{{"configmap/app-config":"{H1}"}}"#),
        ),
    ] {
        let mut obj = workload(Deployment, Some(json!({ OBSERVED: before })), template());
        reload(
            &mut obj,
            Deployment,
            &change(&src, H1, Strategy::EnvVars, true),
        );
        assert_eq!(obj["metadata"]["annotations"][OBSERVED], after);
    }
}

#[test]
fn container_choice() {
    let cases = [
        // Mounted by the sidecar: the sidecar.
        (SourceRef::secret("tls"), true, Some(1)),
        // Only the init container uses it: containers[0].
        (cm("init-cfg"), true, Some(0)),
        // Named reload of an object nobody references: containers[0].
        (cm("unused"), false, Some(0)),
        // Auto reload of an object nobody references: nothing.
        (cm("unused"), true, None),
    ];
    for (src, auto, want) in cases {
        let mut obj = workload(Deployment, None, template());
        let c = change(&src, H1, Strategy::EnvVars, auto);
        match want {
            None => assert_eq!(plan_for(&obj, Deployment, &c), Plan::NoContainer, "{src}"),
            Some(i) => {
                reload(&mut obj, Deployment, &c);
                let env = env_of(&obj, Deployment, i);
                let name = env_var_name(&src);
                let found = env
                    .as_array()
                    .expect("env list")
                    .iter()
                    .any(|e| e["name"] == name.as_str() && e["value"] == H1);
                assert!(found, "{src}: {env}");
            }
        }
    }
}

#[test]
fn no_pod_spec_means_no_container() {
    let obj = workload(Deployment, None, json!({"metadata": {}}));
    let src = cm("x");
    assert_eq!(
        plan_for(
            &obj,
            Deployment,
            &change(&src, H1, Strategy::EnvVars, false)
        ),
        Plan::NoContainer
    );
}

#[test]
fn env_var_with_value_from_is_replaced_whole() {
    let src = cm("app-config");
    let mut tpl = template();
    tpl["spec"]["containers"][0]["env"] = json!([
        {"name": "STAKATER_APP_CONFIG_CONFIGMAP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    ]);
    let mut obj = workload(Deployment, None, tpl);
    reload(
        &mut obj,
        Deployment,
        &change(&src, H1, Strategy::EnvVars, true),
    );
    assert_eq!(
        env_of(&obj, Deployment, 0),
        json!([{"name": "STAKATER_APP_CONFIG_CONFIGMAP", "value": H1}])
    );
}

/// Reloader's delete: the env-vars strategy removes the variable (a rollout) and does
/// nothing when there is none; the annotations strategy records Reloader's delete marker,
/// `sha1("__RELOADER_EMPTY_DELETE_MARKER__")`.
#[test]
fn deleted_source_removes_the_variable_like_reloader() {
    const EMPTY: &str = "da39a3ee5e6b4b0d3255bfef95601890afd80709";
    let src = cm("app-config");
    let deleted = |strategy| Change {
        deleted: true,
        ..change(&src, EMPTY, strategy, true)
    };
    let mut obj = workload(
        Deployment,
        Some(json!({"kreload.dev/auto": "true"})),
        template(),
    );
    // Never reloaded: no variable to remove, nothing rolls.
    assert_eq!(
        plan_for(&obj, Deployment, &deleted(Strategy::EnvVars)),
        Plan::AlreadyApplied
    );
    reload(
        &mut obj,
        Deployment,
        &change(&src, H1, Strategy::EnvVars, true),
    );
    reload(&mut obj, Deployment, &deleted(Strategy::EnvVars));
    assert_eq!(
        env_of(&obj, Deployment, 0),
        json!([{"name": "LOG", "value": "info"}])
    );
    assert_eq!(observed_of(&obj).get(&src), Some(""));
    // Deleted again (a retry or a second replica): already done.
    assert_eq!(
        plan_for(&obj, Deployment, &deleted(Strategy::EnvVars)),
        Plan::AlreadyApplied
    );

    let mut obj = workload(
        Deployment,
        Some(json!({"kreload.dev/auto": "true"})),
        template(),
    );
    reload(&mut obj, Deployment, &deleted(Strategy::Annotations));
    let record =
        obj["spec"]["template"]["metadata"]["annotations"]["kreload.dev/last-reloaded-from"]
            .as_str()
            .and_then(ReloadRecord::parse)
            .expect("record");
    assert_eq!(record.hash, "aae45badef99284e4dae01d6046154ea9d99532f");
    // Deleted again: the marker is already recorded, nothing rolls.
    assert_eq!(
        plan_for(&obj, Deployment, &deleted(Strategy::Annotations)),
        Plan::AlreadyApplied
    );
}
