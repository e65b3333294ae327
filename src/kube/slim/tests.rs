use super::*;
use kube::core::ApiResource;
use kube::core::GroupVersionKind;

/// A Deployment as the API server returns it, with what the slim decoding skips.
fn deployment_json() -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": "web", "namespace": "shop", "resourceVersion": "42", "uid": "u-1",
            "labels": {"app": "web"},
            "annotations": {"reloader.stakater.com/auto": "true", "team": "payments"},
            "managedFields": [{"manager": "kubectl", "operation": "Apply",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"annotations": {"kreload.dev/search": "true"}},
                "spec": {"containers": [{"name": "app", "image": "app:1",
                    "envFrom": [{"configMapRef": {"name": "settings"}}]}]}
            }
        },
        "status": {"replicas": 3, "conditions": [{"type": "Available", "status": "True"}]}
    })
}

#[test]
fn a_slim_deployment_keeps_what_the_index_and_the_watcher_read() {
    let full: Deployment = serde_json::from_value(deployment_json()).expect("deployment");
    let slim: Slim<Deployment> = serde_json::from_value(deployment_json()).expect("slim");
    let meta = slim.meta();
    assert_eq!(meta.name.as_deref(), Some("web"));
    assert_eq!(meta.namespace.as_deref(), Some("shop"));
    assert_eq!(meta.resource_version.as_deref(), Some("42"));
    assert_eq!(meta.annotations, full.metadata.annotations);
    assert!(meta.managed_fields.is_none() && meta.labels.is_none());
    let template = full.spec.map(|s| s.template);
    assert_eq!(slim.template(), template.as_ref());
}

#[test]
fn a_cronjob_template_is_found_under_its_job_template() {
    let cron = serde_json::json!({
        "metadata": {"name": "nightly"},
        "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {
            "spec": {"containers": [{"name": "run", "image": "job:1"}]}}}}}
    });
    let slim: Slim<CronJob> = serde_json::from_value(cron).expect("cronjob");
    let containers = slim
        .template()
        .and_then(|t| t.spec.as_ref())
        .map(|s| &s.containers);
    assert_eq!(containers.map(|c| c[0].name.as_str()), Some("run"));
    let bare: Slim<CronJob> =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "x"}})).expect("bare");
    assert!(bare.template().is_none());
}

#[test]
fn a_rollout_whose_template_does_not_read_still_decodes() {
    let rollout = serde_json::json!({
        "metadata": {"name": "canary", "annotations": {"kreload.dev/auto": "true"}},
        "spec": {"template": {"spec": {"containers": "not a list"}}}
    });
    let slim: Slim<DynamicObject> = serde_json::from_value(rollout).expect("rollout");
    assert!(slim.template().is_none());
    assert_eq!(slim.meta().name.as_deref(), Some("canary"));
}

#[test]
fn a_slim_type_addresses_the_resource_of_its_kind() {
    assert_eq!(
        Slim::<Deployment>::url_path(&(), Some("shop")),
        Deployment::url_path(&(), Some("shop"))
    );
    assert_eq!(Slim::<CronJob>::plural(&()), "cronjobs");
    let gvk = GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Rollout");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "rollouts");
    assert_eq!(
        Slim::<DynamicObject>::url_path(&ar, None),
        DynamicObject::url_path(&ar, None)
    );
}
