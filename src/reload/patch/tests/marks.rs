//! Tests of the annotations strategy and Argo Rollout restarts.

use super::*;

#[test]
fn annotations_strategy_writes_reloader_record_once() {
    let src = cm("app-config");
    for kind in [Deployment, CronJob, Rollout] {
        let mut obj = workload(kind, Some(json!({"kreload.dev/auto": "true"})), template());
        reload(
            &mut obj,
            kind,
            &change(&src, H1, Strategy::Annotations, true),
        );
        let ann = obj
            .pointer(&format!("{}/metadata/annotations", template_path(kind)))
            .cloned()
            .expect("template annotations");
        let want = format!(
            r#"{{"type":"CONFIGMAP","name":"app-config","namespace":"prod","hash":"{H1}","containerRefs":["app"],"observedAt":{NOW}}}"#
        );
        assert_eq!(
            ann,
            json!({"kreload.dev/last-reloaded-from": want}),
            "{kind}"
        );
        assert_eq!(
            env_of(&obj, kind, 0),
            template()["spec"]["containers"][0]["env"]
        );

        // Same hash later: no second rollout, whatever the clock says.
        let mut later = change(&src, H1, Strategy::Annotations, true);
        later.now_unix = NOW + 3600;
        assert_eq!(plan_for(&obj, kind, &later), Plan::AlreadyApplied, "{kind}");
        // Even when the observed record is lost, the template record suffices.
        let mut stripped = obj.clone();
        stripped["metadata"]["annotations"]
            .as_object_mut()
            .expect("map")
            .remove(OBSERVED);
        assert_eq!(plan_for(&stripped, kind, &later), Plan::AlreadyApplied);
        // Another source, or new content, does roll.
        assert!(matches!(
            plan_for(
                &stripped,
                kind,
                &change(&src, H2, Strategy::Annotations, true)
            ),
            Plan::Patch(_)
        ));
    }
}

#[test]
fn annotation_key_escaped_and_template_metadata_cases() {
    let src = SourceRef::secret("tls");
    // Template without metadata at all.
    let mut tpl = template();
    tpl.as_object_mut().expect("object").remove("metadata");
    let mut obj = workload(Deployment, None, tpl);
    let mut c = change(&src, H1, Strategy::Annotations, true);
    c.annotation_prefix = "reloader.stakater.com";
    let p = reload(&mut obj, Deployment, &c);
    assert_eq!(
        serde_json::to_value(&p).expect("json")[1]["path"],
        "/spec/template/metadata"
    );
    let record = &obj["spec"]["template"]["metadata"]["annotations"]["reloader.stakater.com/last-reloaded-from"];
    let record = ReloadRecord::parse(record.as_str().expect("string")).expect("record");
    assert_eq!(record.container_refs, ["sidecar"]);
    assert_eq!(record.kind, "SECRET");

    // Existing template annotations: the key is added with `/` escaped.
    let mut tpl = template();
    tpl["metadata"]["annotations"] = json!({"prometheus.io/scrape": "true"});
    let obj = workload(Deployment, None, tpl);
    let p = patch_of(plan_for(
        &obj,
        Deployment,
        &change(&src, H1, Strategy::Annotations, true),
    ));
    assert_eq!(
        serde_json::to_value(&p).expect("json")[1]["path"],
        "/spec/template/metadata/annotations/kreload.dev~1last-reloaded-from"
    );
}

#[test]
fn rollout_restart_sets_restart_at_only() {
    let src = cm("app-config");
    let ann = json!({"kreload.dev/auto": "true", "kreload.dev/rollout-strategy": "restart"});
    let mut obj = workload(Rollout, Some(ann), template());
    let before = obj.clone();
    for strategy in [Strategy::EnvVars, Strategy::Annotations] {
        let mut o = before.clone();
        reload(&mut o, Rollout, &change(&src, H1, strategy, true));
        assert_eq!(o["spec"]["restartAt"], NOW_RFC3339);
        assert_eq!(
            o["spec"]["template"], before["spec"]["template"],
            "template untouched"
        );
        assert_eq!(
            plan_for(&o, Rollout, &change(&src, H1, strategy, true)),
            Plan::AlreadyApplied
        );
    }
    // Restart still needs a container, as in Reloader.
    let unused = cm("unused");
    assert_eq!(
        plan_for(&obj, Rollout, &change(&unused, H1, Strategy::EnvVars, true)),
        Plan::NoContainer
    );
    // The restart strategy is for Rollouts only.
    obj["kind"] = json!("Deployment");
    let mut d = obj.clone();
    reload(
        &mut d,
        Deployment,
        &change(&src, H1, Strategy::EnvVars, true),
    );
    assert!(d["spec"].get("restartAt").is_none());
}
