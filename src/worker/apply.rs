//! Applying reloads to one workload: read it, plan the patch with the pure core for every
//! change that concerns it, and send one JSON Patch. The patch starts with a `test` of the
//! resourceVersion it was planned against, so a concurrent writer (another replica, a
//! GitOps sync) makes it fail cleanly; the worker then reads again and re-plans, and a
//! change that is already there is planned as already applied, never as a second rollout.
//! A Deployment with a pause-period is paused by the same patch.

use std::collections::BTreeMap;

use jiff::Timestamp;
use kube::Client;
use kube::api::DynamicObject;

use crate::kube::retry::{self, ATTEMPTS, JOB_CREATE_ATTEMPTS};
use crate::kube::workloads::{Jobs, Workloads};
use crate::reload::keys::Vocabulary;
use crate::reload::model::{Strategy, WorkloadKind};
use crate::reload::patch;
use crate::reload::pause::{self, OnReload, PauseView};
use crate::reload::plan::{self, PlanError, Planned, Reload, Writing};

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

impl From<Planned> for Applied {
    fn from(p: Planned) -> Self {
        match p {
            Planned::Reload => Applied::Reloaded,
            Planned::AlreadyApplied => Applied::AlreadyApplied,
            Planned::NoContainer => Applied::NoContainer,
        }
    }
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
    #[error("planning the patch for {kind} {namespace}/{name}")]
    Plan {
        kind: WorkloadKind,
        namespace: String,
        name: String,
        #[source]
        source: PlanError,
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
    #[error("cronjob {namespace}/{name} was reloaded but its job could not be started")]
    StartJob {
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

/// One workload to reload.
pub struct Target<'a> {
    pub namespace: &'a str,
    pub kind: WorkloadKind,
    pub name: &'a str,
}

impl Target<'_> {
    fn plan_error(&self, source: PlanError) -> Error {
        Error::Plan {
            kind: self.kind,
            namespace: self.namespace.to_owned(),
            name: self.name.to_owned(),
            source,
        }
    }
}

/// How reloads are applied: through which client, written how.
pub struct Applier<'a> {
    pub client: &'a Client,
    pub strategy: Strategy,
    pub vocabulary: &'a Vocabulary,
    /// Start a Job from a reloaded CronJob at once.
    pub cronjob_create_job: bool,
}

impl Applier<'_> {
    fn writing(&self, now: Timestamp) -> Writing<'_> {
        Writing {
            strategy: self.strategy,
            vocabulary: self.vocabulary,
            now,
        }
    }

    /// Reloads one workload for the given changes, with retries on conflicts and API
    /// errors.
    pub async fn reload(&self, t: &Target<'_>, changes: &[Reload]) -> Result<Applied, Error> {
        if t.kind == WorkloadKind::Job {
            return self.recreate_job(t, changes).await;
        }
        self.patch(t, changes).await
    }

    /// The read-plan-patch cycle of every kind but Job.
    async fn patch(&self, t: &Target<'_>, changes: &[Reload]) -> Result<Applied, Error> {
        let api = Workloads::new(self.client, t.namespace, t.kind);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let obj = match api.get(t.name).await {
                Ok(Some(obj)) => obj,
                Ok(None) => return Ok(Applied::Gone),
                Err(source) if attempt >= ATTEMPTS => {
                    return Err(Error::Read {
                        kind: t.kind,
                        namespace: t.namespace.to_owned(),
                        name: t.name.to_owned(),
                        source,
                    });
                }
                Err(error) => {
                    tracing::debug!(attempt, %error, "read failed; retrying");
                    tokio::time::sleep(retry::backoff(attempt)).await;
                    continue;
                }
            };
            let now = Timestamp::now();
            let writing = self.writing(now);
            let value = serde_json::to_value(&obj).map_err(|e| t.plan_error(PlanError::Read(e)))?;
            let (mut ops, planned) = plan::workload(&writing, t.namespace, t.kind, &value, changes)
                .map_err(|e| t.plan_error(e))?;
            if ops.is_empty() {
                return Ok(planned.into());
            }
            // A Deployment's pause-period pauses (or resumes) in the same guarded patch.
            ops.extend(pause_ops(self.vocabulary, t.kind, &obj, now));
            match api.patch(t.name, ops).await {
                Ok(()) if t.kind == WorkloadKind::CronJob && self.cronjob_create_job => {
                    return self.start_job(t).await;
                }
                Ok(()) => return Ok(Applied::Reloaded),
                Err(source) if attempt >= ATTEMPTS => {
                    return Err(Error::Patch {
                        kind: t.kind,
                        namespace: t.namespace.to_owned(),
                        name: t.name.to_owned(),
                        attempts: attempt,
                        source,
                    });
                }
                Err(error) => {
                    tracing::debug!(attempt, %error, "patch refused; reading again");
                    tokio::time::sleep(retry::backoff(attempt)).await;
                }
            }
        }
    }
}

/// The pause operations to add to the reload patch of `obj` (a workload of `kind` just
/// read), logged in the caller's span. Never fails: a period that cannot be used is a
/// warning and the reload goes ahead unpaused.
fn pause_ops(
    vocabulary: &Vocabulary,
    kind: WorkloadKind,
    obj: &DynamicObject,
    now: Timestamp,
) -> Vec<json_patch::PatchOperation> {
    let empty = BTreeMap::new();
    let view = PauseView {
        vocabulary,
        annotations: obj.metadata.annotations.as_ref().unwrap_or(&empty),
        paused: obj
            .data
            .pointer("/spec/paused")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
    };
    match pause::on_reload(kind, &view, now) {
        OnReload::NoPause => Vec::new(),
        OnReload::InvalidPeriod(error) => {
            tracing::warn!(%error, "pause-period unusable; reloading without a pause");
            Vec::new()
        }
        OnReload::Pause { ops, until } => {
            tracing::info!(%until, "pausing the rollout until the pause period ends");
            ops
        }
        OnReload::InWindow { until } => {
            tracing::info!(%until, "rollout already paused by kreload; the change joins it");
            Vec::new()
        }
        OnReload::Resume { ops, reason } => {
            tracing::info!(
                reason = reason.as_str(),
                "pause window over; resuming with this reload"
            );
            ops
        }
        OnReload::PausedByOthers => {
            tracing::info!("rollout paused by someone else; the change waits until they resume it");
            Vec::new()
        }
    }
}

impl Applier<'_> {
    /// The CronJob Job mode: after the template patch, a Job from the patched CronJob (as
    /// Reloader starts one), unless the CronJob is suspended. Only after a patch was
    /// written, so the same content never starts a second Job.
    async fn start_job(&self, t: &Target<'_>) -> Result<Applied, Error> {
        let start_err = |source| Error::StartJob {
            namespace: t.namespace.to_owned(),
            name: t.name.to_owned(),
            source,
        };
        let jobs = Jobs::new(self.client, t.namespace);
        let Some(cronjob) = jobs.cronjob(t.name).await.map_err(start_err)? else {
            return Ok(Applied::Reloaded);
        };
        let Some(job) = patch::job_from_cronjob(&cronjob) else {
            tracing::info!("cronjob suspended; no job started");
            return Ok(Applied::Reloaded);
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            match jobs.create(&job).await {
                Ok(()) => {
                    tracing::info!("started a job from the cronjob");
                    return Ok(Applied::Reloaded);
                }
                Err(error) if attempt < ATTEMPTS && retry::transient(&error) => {
                    tokio::time::sleep(retry::backoff(attempt)).await;
                }
                Err(source) => return Err(start_err(source)),
            }
        }
    }

    /// Jobs cannot change their template: as Reloader does, delete the Job and create a
    /// copy.
    async fn recreate_job(&self, t: &Target<'_>, changes: &[Reload]) -> Result<Applied, Error> {
        let api = Jobs::new(self.client, t.namespace);
        let recreate_err = |source| Error::Recreate {
            namespace: t.namespace.to_owned(),
            name: t.name.to_owned(),
            source,
        };
        let mut attempt = 0;
        let copy = loop {
            attempt += 1;
            let job = match api.get(t.name).await {
                Ok(Some(job)) => job,
                Ok(None) => return Ok(Applied::Gone),
                Err(error) if attempt < ATTEMPTS && retry::transient(&error) => {
                    tokio::time::sleep(retry::backoff(attempt)).await;
                    continue;
                }
                Err(source) => return Err(recreate_err(source)),
            };
            let writing = self.writing(Timestamp::now());
            let copy = match plan::job_copy(&writing, t.namespace, &job, changes) {
                Ok(Ok(copy)) => copy,
                Ok(Err(planned)) => return Ok(planned.into()),
                Err(e) => return Err(t.plan_error(e)),
            };
            // Delete exactly the Job that was planned against: another replica that already
            // recreated it makes this fail, and the next read finds the change applied.
            match api.delete_exactly(&job).await {
                Ok(()) => break copy,
                Err(kube::Error::Api(s)) if s.code == 409 && attempt < ATTEMPTS => {
                    tokio::time::sleep(retry::backoff(attempt)).await;
                }
                Err(source) => return Err(recreate_err(source)),
            }
        };
        // The name is free once the delete is done (the Job has no finalizers of its own). The
        // old Job is gone now, so try hard: only the copy in hand can bring it back.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match api.create(&copy).await {
                Ok(()) => return Ok(Applied::Reloaded),
                Err(error) if attempt < JOB_CREATE_ATTEMPTS && retry::transient(&error) => {
                    tokio::time::sleep(retry::backoff(attempt)).await;
                }
                Err(source) => {
                    return Err(Error::JobLost {
                        namespace: t.namespace.to_owned(),
                        name: t.name.to_owned(),
                        source,
                    });
                }
            }
        }
    }
}
