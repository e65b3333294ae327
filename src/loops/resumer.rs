//! The shell around [`crate::reload::pause`] that resumes Deployments whose pause window is
//! over (the pause itself is part of the reload patch, see [`crate::worker::apply`]).
//!
//! Nothing about a pause is kept only in memory. The timers here are a convenience: each
//! one, when it fires, reads the live Deployment and decides again from what it carries
//! (`spec.paused`, paused-at, pause-period). A restarted kreload (or another replica) finds
//! the pauses again by scanning the workload index every [`SCAN_EVERY`] for Deployments
//! with paused-at, so a window that ended while kreload was down is resumed as soon as the
//! Deployment is seen.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, Client};
use tracing::Instrument as _;

use super::timers::Timers;
use crate::index::SharedIndex;
use crate::kube::events::{Events, Note};
use crate::kube::retry::{self, ATTEMPTS, error_chain};
use crate::reload::keys::{FIELD_MANAGER, Vocabulary};
use crate::reload::model::WorkloadKind;
use crate::reload::pause::{self, OnTimer, PauseView};
use crate::reload::report;
use crate::scope::Scope;

/// How often the index is scanned for Deployments kreload paused (cheap: in memory).
pub const SCAN_EVERY: Duration = Duration::from_secs(5);

/// Resumes Deployments kreload paused, when their window ends.
pub struct Resumer {
    client: Client,
    vocabulary: Vocabulary,
    events: Events,
    timers: Arc<Timers<(String, String)>>,
}

impl Resumer {
    pub fn new(client: Client, vocabulary: Vocabulary, events: Events) -> Arc<Self> {
        Arc::new(Resumer {
            client,
            vocabulary,
            events,
            timers: Arc::default(),
        })
    }

    /// Looks at a Deployment now (after a reload that may have paused it) and keeps a timer
    /// for its window.
    pub fn check(self: &Arc<Self>, namespace: &str, name: &str) {
        let now = Timestamp::now();
        self.schedule(namespace, name, now, now);
    }

    fn schedule(self: &Arc<Self>, namespace: &str, name: &str, until: Timestamp, now: Timestamp) {
        let key = (namespace.to_owned(), name.to_owned());
        let span = tracing::info_span!(
            "resume",
            workload.kind = "deployments",
            namespace,
            workload.name = name
        );
        let fire = self.clone().fire(key.clone()).instrument(span);
        if self.timers.schedule(key, until, now, fire) {
            tracing::debug!(namespace, name, %until, "pause timer set");
        }
    }

    /// Every [`SCAN_EVERY`], sets a timer for each indexed Deployment in `scope` that
    /// carries paused-at (the same deadline twice is one timer). Runs until aborted.
    pub async fn scan(self: Arc<Self>, index: SharedIndex, scope: Scope) {
        let mut tick = tokio::time::interval(SCAN_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = Timestamp::now();
            let due: Vec<(String, String, Timestamp)> = index.read(|i| {
                i.entries()
                    .filter(|(ns, id, _)| {
                        id.kind == WorkloadKind::Deployment && scope.namespace_allowed(ns)
                    })
                    .filter_map(|(ns, id, entry)| {
                        pause::check_at(&self.vocabulary, &entry.annotations, now)
                            .map(|until| (ns.to_owned(), id.name.clone(), until))
                    })
                    .collect()
            });
            for (namespace, name, until) in due {
                self.schedule(&namespace, &name, until, now);
            }
        }
    }

    /// Drops every pending timer (at shutdown; the next start finds the pauses again).
    pub fn stop(&self) {
        self.timers.cancel_all();
    }

    async fn fire(self: Arc<Self>, (namespace, name): (String, String)) {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &namespace);
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        for attempt in 1..=ATTEMPTS {
            let deployment = match api.get_opt(&name).await {
                Ok(Some(d)) => d,
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the deployment; the next scan retries");
                    return;
                }
            };
            let empty = BTreeMap::new();
            let view = PauseView {
                vocabulary: &self.vocabulary,
                annotations: deployment.metadata.annotations.as_ref().unwrap_or(&empty),
                paused: deployment
                    .spec
                    .as_ref()
                    .and_then(|s| s.paused)
                    .unwrap_or(false),
            };
            let rv = deployment
                .metadata
                .resource_version
                .as_deref()
                .unwrap_or("");
            let now = Timestamp::now();
            let (ops, reason) = match pause::on_timer(&view, now) {
                OnTimer::NotOurs => return,
                OnTimer::Wait { until } => {
                    self.schedule(&namespace, &name, until, now);
                    return;
                }
                OnTimer::Resume { ops, reason } => (ops, Some(reason)),
                OnTimer::Forget { ops } => (ops, None),
            };
            let patch = Patch::Json::<()>(pause::guarded(rv, ops));
            match api.patch(&name, &params, &patch).await {
                Ok(_) => {
                    match reason {
                        Some(reason) => {
                            tracing::info!(reason = reason.as_str(), "resumed the rollout");
                            self.event(&namespace, &name, reason.as_str()).await;
                        }
                        None => tracing::debug!("removed paused-at left after a manual resume"),
                    }
                    return;
                }
                Err(error) if attempt == ATTEMPTS => {
                    tracing::warn!(error = %error_chain(&error), attempt, "cannot resume the rollout; the next scan retries");
                }
                Err(error) => {
                    tracing::debug!(%error, attempt, "resume patch refused; reading again");
                    tokio::time::sleep(retry::backoff(attempt)).await;
                }
            }
        }
    }

    async fn event(&self, namespace: &str, name: &str, reason: &str) {
        let note = Note {
            type_: EventType::Normal,
            reason: report::RESUMED,
            action: "Resume",
            note: report::resumed(reason),
        };
        self.events
            .publish(WorkloadKind::Deployment, namespace, name, note)
            .await;
    }
}
