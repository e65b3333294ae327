//! Applying reloads to one workload: read it, plan the patch with the pure core for every
//! change that concerns it, and send one JSON Patch. The patch starts with a `test` of the
//! resourceVersion it was planned against, so a concurrent writer (another replica, a
//! GitOps sync) makes it fail cleanly; the worker then reads again and re-plans, and a
//! change that is already there is planned as `AlreadyApplied`, never as a second rollout.
//! A Deployment with a pause-period is paused by the same patch (see [`super::pause`]).

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions,
    PropagationPolicy,
};
use kube::{Api, Client};

use crate::reload::keys::{FIELD_MANAGER, Key, Vocabulary};
use crate::reload::model::{RolloutStrategy, SourceRef, Strategy, WorkloadKind};
use crate::reload::patch::{self, Change, Plan, Target};

/// One change to apply to a workload.
#[derive(Debug, Clone)]
pub struct Reload {
    pub source: SourceRef,
    pub hash: String,
    pub auto: bool,
    /// The source was deleted (see [`Change::deleted`]).
    pub deleted: bool,
}

/// What happened to a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A patch was written (a rollout follows).
    Reloaded,
    /// Every change was already reflected; nothing written.
    AlreadyApplied,
    /// No container to carry the change (auto reload of an object the pod does not use).
    NoContainer,
    /// The workload no longer exists.
    Gone,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {kind} {namespace}/{name}")]
    Read {
        kind: WorkloadKind,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("{kind} {namespace}/{name} has no pod template")]
    NoTemplate {
        kind: WorkloadKind,
        namespace: String,
        name: String,
    },
    #[error("planning the patch for {kind} {namespace}/{name}")]
    Plan {
        kind: WorkloadKind,
        namespace: String,
        name: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("patching {kind} {namespace}/{name} (gave up after {attempts} attempts)")]
    Patch {
        kind: WorkloadKind,
        namespace: String,
        name: String,
        attempts: u32,
        #[source]
        source: kube::Error,
    },
    #[error(
        "job {namespace}/{name} was deleted for its reload but its copy could not be created; recreate it from your manifests"
    )]
    JobLost {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("recreating job {namespace}/{name}")]
    Recreate {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

const MAX_ATTEMPTS: u32 = 5;
/// About 20 s of tries with the capped backoff.
const JOB_CREATE_ATTEMPTS: u32 = 10;

pub fn api_resource(kind: WorkloadKind) -> ApiResource {
    match kind {
        WorkloadKind::Deployment => ApiResource::erase::<Deployment>(&()),
        WorkloadKind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
        WorkloadKind::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
        WorkloadKind::CronJob => ApiResource::erase::<CronJob>(&()),
        WorkloadKind::Job => ApiResource::erase::<Job>(&()),
        WorkloadKind::Rollout => ApiResource {
            group: "argoproj.io".into(),
            version: "v1alpha1".into(),
            api_version: "argoproj.io/v1alpha1".into(),
            kind: "Rollout".into(),
            plural: "rollouts".into(),
        },
    }
}

/// Settings shared by every reload.
pub struct Settings {
    pub strategy: Strategy,
    pub vocabulary: Vocabulary,
}

/// Reloads one workload for the given changes, with retries on conflicts and API errors.
pub async fn reload(
    client: &Client,
    settings: &Settings,
    namespace: &str,
    kind: WorkloadKind,
    name: &str,
    changes: &[Reload],
) -> Result<Applied, Error> {
    if kind == WorkloadKind::Job {
        return recreate_job(client, settings, namespace, name, changes).await;
    }
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &api_resource(kind));
    let mut attempt = 0;
    loop {
        attempt += 1;
        let obj = match api.get_opt(name).await {
            Ok(Some(obj)) => obj,
            Ok(None) => return Ok(Applied::Gone),
            Err(source) if attempt >= MAX_ATTEMPTS => {
                return Err(Error::Read {
                    kind,
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    source,
                });
            }
            Err(error) => {
                tracing::debug!(%kind, namespace, name, attempt, %error, "read failed; retrying");
                tokio::time::sleep(backoff(attempt)).await;
                continue;
            }
        };
        let (mut ops, outcome) = plan_all(settings, namespace, kind, name, &obj, changes)?;
        if ops.is_empty() {
            return Ok(outcome);
        }
        // A Deployment's pause-period pauses (or resumes) in the same guarded patch.
        ops.extend(super::pause::reload_ops(
            &settings.vocabulary,
            kind,
            &obj,
            jiff::Timestamp::now(),
        ));
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        match api
            .patch(name, &params, &Patch::Json::<()>(json_patch::Patch(ops)))
            .await
        {
            Ok(_) => return Ok(Applied::Reloaded),
            Err(source) if attempt >= MAX_ATTEMPTS => {
                return Err(Error::Patch {
                    kind,
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    attempts: attempt,
                    source,
                });
            }
            Err(error) => {
                tracing::debug!(%kind, namespace, name, attempt, %error, "patch refused; reading again");
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64 << attempt.min(5))
}

/// Plans every change against the object, each on top of the previous ones, and returns
/// the combined operations (one resourceVersion test first).
fn plan_all(
    settings: &Settings,
    namespace: &str,
    kind: WorkloadKind,
    name: &str,
    obj: &DynamicObject,
    changes: &[Reload],
) -> Result<(Vec<json_patch::PatchOperation>, Applied), Error> {
    let plan_err = |source: Box<dyn std::error::Error + Send + Sync>| Error::Plan {
        kind,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        source,
    };
    let mut value = serde_json::to_value(obj).map_err(|e| plan_err(Box::new(e)))?;
    let resource_version = obj.metadata.resource_version.clone().unwrap_or_default();
    let now = jiff::Timestamp::now();
    let now_rfc3339 = now.to_string();
    let mut ops: Vec<json_patch::PatchOperation> = Vec::new();
    let mut outcome = Applied::AlreadyApplied;
    for change in changes {
        let template: PodTemplateSpec = value
            .pointer(patch::template_path(kind))
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| plan_err(Box::new(e)))?
            .ok_or_else(|| Error::NoTemplate {
                kind,
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })?;
        let annotations = value
            .pointer("/metadata/annotations")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| plan_err(Box::new(e)))?
            .unwrap_or_default();
        let rollout_strategy = RolloutStrategy::from_annotation(
            settings.vocabulary.get(&annotations, Key::RolloutStrategy),
        );
        let target = Target {
            kind,
            namespace,
            resource_version: &resource_version,
            annotations: &annotations,
            template: &template,
            rollout_strategy,
        };
        let c = Change {
            source: &change.source,
            hash: &change.hash,
            deleted: change.deleted,
            strategy: settings.strategy,
            auto: change.auto,
            annotation_prefix: settings.vocabulary.primary(),
            now_unix: now.as_second(),
            now_rfc3339: &now_rfc3339,
        };
        match patch::plan(&target, &c) {
            Plan::AlreadyApplied => {}
            Plan::NoContainer => {
                if outcome == Applied::AlreadyApplied {
                    outcome = Applied::NoContainer;
                }
            }
            Plan::Patch(p) => {
                json_patch::patch(&mut value, &p).map_err(|e| plan_err(Box::new(e)))?;
                let skip_test = !ops.is_empty();
                ops.extend(p.0.into_iter().filter(|op| {
                    !(skip_test && matches!(op, json_patch::PatchOperation::Test(_)))
                }));
                outcome = Applied::Reloaded;
            }
        }
    }
    Ok((ops, outcome))
}

/// Jobs cannot change their template: as Reloader does, delete the Job and create a copy.
async fn recreate_job(
    client: &Client,
    settings: &Settings,
    namespace: &str,
    name: &str,
    changes: &[Reload],
) -> Result<Applied, Error> {
    let api: Api<Job> = Api::namespaced(client.clone(), namespace);
    let recreate_err = |source| Error::Recreate {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        source,
    };
    let mut attempt = 0;
    let copy = loop {
        attempt += 1;
        let job = match api.get_opt(name).await {
            Ok(Some(job)) => job,
            Ok(None) => return Ok(Applied::Gone),
            Err(error) if attempt < MAX_ATTEMPTS && retryable(&error) => {
                tokio::time::sleep(backoff(attempt)).await;
                continue;
            }
            Err(source) => return Err(recreate_err(source)),
        };
        let copy = match job_copy(settings, namespace, name, &job, changes)? {
            Ok(copy) => copy,
            Err(outcome) => return Ok(outcome),
        };
        // Delete exactly the Job that was planned against: another replica that already
        // recreated it makes this fail, and the next read finds the change applied.
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: Some(Preconditions {
                uid: job.metadata.uid.clone(),
                resource_version: job.metadata.resource_version.clone(),
            }),
            ..DeleteParams::default()
        };
        match api.delete(name, &dp).await {
            Ok(_) => break copy,
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < MAX_ATTEMPTS => {
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(source) => return Err(recreate_err(source)),
        }
    };
    // The name is free once the delete is done (the Job has no finalizers of its own). The
    // old Job is gone now, so try hard: only the copy in hand can bring it back.
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..Default::default()
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        match api.create(&params, &copy).await {
            Ok(_) => return Ok(Applied::Reloaded),
            Err(error) if attempt < JOB_CREATE_ATTEMPTS && retryable(&error) => {
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(source) => {
                return Err(Error::JobLost {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    source,
                });
            }
        }
    }
}

/// Conflicts (the old Job's name not yet free), throttling, server errors and transport
/// failures may pass; anything else (a policy denial, invalid object) will not.
fn retryable(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 409 || status.code == 429 || status.code >= 500,
        _ => true,
    }
}

/// The Job to create in place of `job`, or the outcome when nothing needs recreating.
fn job_copy(
    settings: &Settings,
    namespace: &str,
    name: &str,
    job: &Job,
    changes: &[Reload],
) -> Result<Result<Job, Applied>, Error> {
    let plan_err = |source: Box<dyn std::error::Error + Send + Sync>| Error::Plan {
        kind: WorkloadKind::Job,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        source,
    };
    let mut value = serde_json::to_value(job).map_err(|e| plan_err(e.into()))?;
    let obj: DynamicObject =
        serde_json::from_value(value.clone()).map_err(|e| plan_err(e.into()))?;
    let (ops, outcome) = plan_all(settings, namespace, WorkloadKind::Job, name, &obj, changes)?;
    if ops.is_empty() {
        return Ok(Err(outcome));
    }
    // The copy is created, not patched: the resourceVersion test has no place in it.
    let ops: Vec<_> = ops
        .into_iter()
        .filter(|op| !matches!(op, json_patch::PatchOperation::Test(_)))
        .collect();
    json_patch::patch(&mut value, &json_patch::Patch(ops)).map_err(|e| plan_err(e.into()))?;
    let patched: Job = serde_json::from_value(value).map_err(|e| plan_err(e.into()))?;
    Ok(Ok(patch::recreate_job(&patched)))
}
