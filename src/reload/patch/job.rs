//! Jobs cannot change their pod template, so Reloader deletes and recreates them; this builds
//! the object to create.

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// Labels the Job controller adds to the template (old and current spellings). They carry the
/// deleted Job's uid, which the API server rejects in a new Job's template.
const CONTROLLER_LABELS: [&str; 4] = [
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "job-name",
    "batch.kubernetes.io/job-name",
];

/// A copy of `job` that can be created after the original is deleted: as Reloader does,
/// without status, uid, resourceVersion, creationTimestamp, `spec.selector` and the
/// controller's template labels (so the server generates fresh ones); ownerReferences are
/// kept, as Reloader keeps them. Beyond Reloader, server-owned metadata (managedFields,
/// generation, deletion fields, selfLink) is dropped, the same controller labels are dropped
/// from the Job's own labels (the server copies template labels there, and they would name
/// the old uid), and `manualSelector` is cleared because a manual selector without a
/// selector is invalid.
pub fn recreate_job(job: &Job) -> Job {
    let mut new = job.clone();
    new.status = None;
    let meta = &mut new.metadata;
    meta.uid = None;
    meta.resource_version = None;
    meta.creation_timestamp = None;
    meta.managed_fields = None;
    meta.generation = None;
    meta.deletion_timestamp = None;
    meta.deletion_grace_period_seconds = None;
    meta.self_link = None;
    strip(&mut meta.labels);
    if let Some(spec) = new.spec.as_mut() {
        spec.selector = None;
        spec.manual_selector = None;
        if let Some(tm) = spec.template.metadata.as_mut() {
            strip(&mut tm.labels);
        }
    }
    new
}

/// The Job to start from `cronjob` right after its reload (the opt-in CronJob Job mode), as
/// Reloader and `kubectl create job --from=cronjob/…` build it: named `<cronjob>-` plus a
/// suffix the server generates, annotated `cronjob.kubernetes.io/instantiate: manual`, with
/// the jobTemplate's labels, annotations and spec, owned by the CronJob. `None` for a
/// suspended CronJob (unlike Reloader, which starts one anyway) or one without a name or uid.
pub fn job_from_cronjob(cronjob: &CronJob) -> Option<Job> {
    let spec = cronjob.spec.as_ref()?;
    if spec.suspend == Some(true) {
        return None;
    }
    let name = cronjob.metadata.name.clone()?;
    let uid = cronjob.metadata.uid.clone()?;
    let template_meta = spec.job_template.metadata.clone().unwrap_or_default();
    let mut annotations = std::collections::BTreeMap::from([(
        "cronjob.kubernetes.io/instantiate".to_owned(),
        "manual".to_owned(),
    )]);
    annotations.extend(template_meta.annotations.unwrap_or_default());
    Some(Job {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: cronjob.metadata.namespace.clone(),
            annotations: Some(annotations),
            labels: template_meta.labels,
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "CronJob".into(),
                name,
                uid,
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        spec: spec.job_template.spec.clone(),
        status: None,
    })
}

fn strip(labels: &mut Option<std::collections::BTreeMap<String, String>>) {
    if let Some(l) = labels.as_mut() {
        for k in CONTROLLER_LABELS {
            l.remove(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strips_what_the_server_owns() {
        let live: Job = serde_json::from_value(json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": "migrate",
                "namespace": "prod",
                "uid": "0f4e",
                "resourceVersion": "42",
                "generation": 1,
                "creationTimestamp": "2024-01-01T00:00:00Z",
                "managedFields": [{"manager": "kubectl", "operation": "Update"}],
                "labels": {"app": "db", "controller-uid": "0f4e", "batch.kubernetes.io/job-name": "migrate"},
                "annotations": {"kreload.dev/auto": "true"},
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "c", "uid": "9"}]
            },
            "spec": {
                "backoffLimit": 2,
                "manualSelector": false,
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "0f4e"}},
                "template": {
                    "metadata": {"labels": {
                        "app": "db",
                        "controller-uid": "0f4e",
                        "batch.kubernetes.io/controller-uid": "0f4e",
                        "job-name": "migrate",
                        "batch.kubernetes.io/job-name": "migrate"
                    }},
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "db:1"}]}
                }
            },
            "status": {"succeeded": 1}
        }))
        .expect("valid Job");

        let new = recreate_job(&live);
        let got = serde_json::to_value(&new).expect("serializes");
        assert_eq!(
            got,
            json!({
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {
                    "name": "migrate",
                    "namespace": "prod",
                    "labels": {"app": "db"},
                    "annotations": {"kreload.dev/auto": "true"},
                    "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "c", "uid": "9"}]
                },
                "spec": {
                    "backoffLimit": 2,
                    "template": {
                        "metadata": {"labels": {"app": "db"}},
                        "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "db:1"}]}
                    }
                }
            })
        );
    }

    #[test]
    fn a_job_from_a_cronjob_like_reloaders_and_never_when_suspended() {
        let mut cronjob: CronJob = serde_json::from_value(json!({
            "metadata": {"name": "report", "namespace": "prod", "uid": "c1"},
            "spec": {
                "schedule": "0 0 * * *",
                "jobTemplate": {
                    "metadata": {"labels": {"app": "report"}, "annotations": {"team": "a"}},
                    "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                        {"name": "r", "image": "r:1", "env": [{"name": "STAKATER_CFG_CONFIGMAP", "value": "h2"}]}
                    ]}}}
                }
            }
        }))
        .expect("valid CronJob");
        let job = serde_json::to_value(job_from_cronjob(&cronjob).expect("a job")).expect("json");
        assert_eq!(
            job,
            json!({
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {
                    "generateName": "report-",
                    "namespace": "prod",
                    "labels": {"app": "report"},
                    "annotations": {"cronjob.kubernetes.io/instantiate": "manual", "team": "a"},
                    "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "report",
                        "uid": "c1", "controller": true, "blockOwnerDeletion": true}]
                },
                "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                    {"name": "r", "image": "r:1", "env": [{"name": "STAKATER_CFG_CONFIGMAP", "value": "h2"}]}
                ]}}}
            })
        );
        if let Some(spec) = cronjob.spec.as_mut() {
            spec.suspend = Some(true);
        }
        assert_eq!(job_from_cronjob(&cronjob), None);
    }

    #[test]
    fn tolerates_a_bare_job() {
        let new = recreate_job(&Job::default());
        assert_eq!(new, Job::default());
    }
}
