//! The restart worker: takes coalesced intents from the queue, confirms them against the
//! live objects, plans which workloads they reload ([`crate::reload::plan`]), and reloads
//! each workload once for all of its changes. Deployments that a reload may have paused are
//! handed to the [`Resumer`], which ends their pause window.

pub mod apply;
pub mod confirm;
pub mod limits;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use futures::StreamExt as _;
use kube::Client;
use kube::runtime::events::EventType;
use tracing::Instrument as _;

use crate::index::SharedIndex;
use crate::kube::events::{Events, Note};
use crate::kube::retry::error_chain;
use crate::loops::lease::Leadership;
use crate::loops::resumer::Resumer;
use crate::loops::resync::Reloads;
use crate::metrics::reloader::Skipped;
use crate::metrics::{DropReason, Metrics, ReloadOutcome};
use crate::notify::Notifier;
use crate::notify::sinks::Reloaded;
use crate::queue::{Intent, Queue};
use crate::reload::model::{SourceRef, Strategy};
use crate::reload::plan::{self, Confirmed, Reload};
use crate::reload::report;
use crate::reload::rules::RuleOptions;
use crate::reload::storm::Admit;
use crate::reload::workload::WorkloadId;
use apply::{Applied, Applier, Target};
use confirm::Outcome;
use limits::Limiter;

/// One workload's reload, due now.
#[derive(Clone, Copy)]
pub struct Due<'a> {
    pub namespace: &'a str,
    pub id: &'a WorkloadId,
    pub changes: &'a [Reload],
    /// When the earliest of `changes` was admitted (for the latency in the log line and
    /// Reloader's action latency); `None` for a reload the resync found.
    pub admitted: Option<Instant>,
}

pub struct Worker {
    pub client: Client,
    pub queue: Arc<Queue>,
    pub index: SharedIndex,
    pub rules: Arc<RuleOptions>,
    pub strategy: Strategy,
    pub metrics: Arc<Metrics>,
    pub events: Events,
    pub resumer: Arc<Resumer>,
    /// How long to wait for an admitted write to show up in the live object.
    pub confirm_patience: Duration,
    /// How many confirmations, and how many workload patches, run at once.
    pub concurrency: usize,
    /// Alerts, and Reloader's `--webhook-url` (which replaces reloading).
    pub notifier: Notifier,
    /// Start a Job from a reloaded CronJob at once.
    pub cronjob_create_job: bool,
    /// Storm control: the per-workload rollout limit and the global patch rate.
    pub limiter: Arc<Limiter>,
    /// Only the leader keeps pause timers (followers' pauses are found by its scan).
    pub leadership: Leadership,
}

impl Worker {
    /// Runs until the queue is closed and drained. Changes held by the storm limit are
    /// released by a task beside it; those still held at exit are found by the next
    /// resync (the workload's record still differs from the live content).
    pub async fn run(self: Arc<Self>) {
        let releaser = tokio::spawn(self.clone().release_held());
        while let Some(batch) = self.queue.next_batch().await {
            self.metrics.set_queue_depth(self.queue.len());
            self.process(batch).await;
        }
        releaser.abort();
        let held = self.limiter.held();
        if held > 0 {
            tracing::warn!(
                workloads = held,
                "stopping with reloads held by the storm limit; the next resync applies them"
            );
        }
        tracing::info!("worker stopped");
    }

    /// Reloads the held changes whose sources went quiet (or whose period has room).
    async fn release_held(self: Arc<Self>) {
        let this = &self;
        loop {
            let released = this.limiter.released().await;
            futures::stream::iter(released)
                .for_each_concurrent(self.concurrency, |(key, changes)| async move {
                    let (namespace, id) = &key;
                    tracing::info!(namespace, name = %id.name, "releasing held reload");
                    let due = Due {
                        namespace,
                        id,
                        changes: &changes,
                        admitted: None,
                    };
                    if this.reload(due).await {
                        this.limiter.record(&key);
                    }
                })
                .await;
        }
    }

    /// Reloads one workload unless the storm limit holds it; returns whether it rolled.
    pub async fn reload_limited(&self, due: Due<'_>) -> bool {
        let Due {
            namespace,
            id,
            changes,
            ..
        } = due;
        let key = (namespace.to_owned(), id.clone());
        match self.limiter.admit(&key, changes) {
            Admit::Go => {
                let rolled = self.reload(due).await;
                if rolled {
                    self.limiter.record(&key);
                }
                rolled
            }
            Admit::Held { tripped } => {
                self.metrics.reliability.reload_held();
                if tripped {
                    self.storm_tripped(namespace, id, changes).await;
                }
                false
            }
        }
    }

    async fn storm_tripped(&self, namespace: &str, id: &WorkloadId, changes: &[Reload]) {
        let sources: Vec<String> = changes.iter().map(|c| c.source.to_string()).collect();
        tracing::warn!(workload.kind = %id.kind, namespace, name = %id.name, sources = ?sources, "storm limit tripped; holding reloads");
        self.metrics.reliability.storm_tripped();
        let limits = self.limiter.limits();
        let note = Note {
            type_: EventType::Warning,
            reason: report::RELOADS_HELD,
            action: "Reload",
            note: report::held(&sources, limits.max, limits.period),
        };
        self.events
            .publish(id.kind, namespace, &id.name, note)
            .await;
    }

    async fn process(&self, batch: Vec<Intent>) {
        // Confirm every intent first (concurrently: a write that never persists costs the
        // whole confirmation patience), then reload: a workload that uses several changed
        // sources is patched once for all of them.
        let admitted: HashMap<(String, SourceRef), Instant> = batch
            .iter()
            .filter_map(|i| Some(((i.namespace.clone(), i.source.clone()), i.admitted?)))
            .collect();
        let confirmed: Vec<Confirmed> = futures::stream::iter(batch)
            .map(|intent| self.confirm(intent))
            .buffer_unordered(self.concurrency)
            .filter_map(std::future::ready)
            .collect()
            .await;
        if self.notifier.replaces_reloads() {
            // Reloader's --webhook-url: one post per change, nothing reloaded.
            confirmed.iter().for_each(|_| self.notifier.changed());
            return;
        }
        let batch = plan::batch(&self.rules, &confirmed, |ns| {
            self.index.read(|i| i.candidates(ns))
        });
        let pausable = &batch.pausable;
        let admitted = &admitted;
        futures::stream::iter(batch.reloads)
            .for_each_concurrent(self.concurrency, |(key, changes)| async move {
                let (namespace, id) = &key;
                let first = changes
                    .iter()
                    .filter_map(|c| admitted.get(&(namespace.clone(), c.source.clone())))
                    .min()
                    .copied();
                let due = Due {
                    namespace,
                    id,
                    changes: &changes,
                    admitted: first,
                };
                if self.reload_limited(due).await
                    && pausable.contains(&key)
                    && self.leadership.is_leader()
                {
                    self.resumer.check(namespace, &id.name);
                }
            })
            .await;
    }

    /// The confirmed change for one intent; `None` when it cannot be used (counted and
    /// logged).
    async fn confirm(&self, intent: Intent) -> Option<Confirmed> {
        let span = tracing::info_span!(
            "intent",
            namespace = %intent.namespace,
            source.kind = intent.source.kind.as_str(),
            source.name = %intent.source.name
        );
        let outcome = confirm::confirm(&self.client, &intent, self.confirm_patience)
            .instrument(span.clone())
            .await;
        span.in_scope(|| match outcome {
            Ok(Outcome::NotPersisted) => {
                tracing::info!("admitted write was not persisted; nothing to do");
                self.metrics.intent_dropped(DropReason::NotPersisted);
                None
            }
            Ok(Outcome::Persisted {
                hash,
                annotations,
                deleted,
            }) => Some(Confirmed {
                namespace: intent.namespace,
                source: intent.source,
                hash,
                annotations,
                deleted,
            }),
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "cannot confirm the write; change dropped");
                self.metrics.intent_dropped(DropReason::Unconfirmed);
                None
            }
        })
    }

    /// Returns whether a patch was written (no storm check: see [`Self::reload_limited`]).
    async fn reload(&self, due: Due<'_>) -> bool {
        let Due {
            namespace,
            id,
            changes,
            admitted,
        } = due;
        let span = tracing::info_span!("reload", workload.kind = %id.kind, namespace, workload.name = %id.name);
        let started = std::time::Instant::now();
        let target = Target {
            namespace,
            kind: id.kind,
            name: &id.name,
        };
        let applier = Applier {
            client: &self.client,
            strategy: self.strategy,
            vocabulary: &self.rules.vocabulary,
            cronjob_create_job: self.cronjob_create_job,
        };
        self.limiter.throttle().await;
        let result = applier
            .reload(&target, changes)
            .instrument(span.clone())
            .await;
        let latency = admitted.map(|t| t.elapsed());
        let sources: Vec<String> = changes.iter().map(|c| c.source.to_string()).collect();
        // No span guard across an await: reloads run concurrently on one task.
        let outcome = span.in_scope(|| self.record(namespace, id, changes, &result, latency));
        self.metrics
            .reload(id.kind.api_kind(), self.strategy.as_str(), outcome);
        self.metrics.observe_reload_patch(started.elapsed());
        let note = match &result {
            Ok(Applied::Reloaded) => Some(Note {
                type_: EventType::Normal,
                reason: report::RELOADED,
                action: "Reload",
                note: report::reloaded(id.kind, &sources),
            }),
            Err(error) => Some(Note {
                type_: EventType::Warning,
                reason: report::RELOAD_FAILED,
                action: "Reload",
                note: report::failed(&sources, &error_chain(error)),
            }),
            Ok(_) => None,
        };
        if let Some(note) = note {
            self.events
                .publish(id.kind, namespace, &id.name, note)
                .instrument(span)
                .await;
        }
        matches!(result, Ok(Applied::Reloaded))
    }

    /// Logs the outcome (one line per reload: sources with short hashes, strategy, latency
    /// from admission to patch), counts it under Reloader's names, and sends the alerts.
    fn record(
        &self,
        namespace: &str,
        id: &WorkloadId,
        changes: &[Reload],
        result: &Result<Applied, apply::Error>,
        latency: Option<Duration>,
    ) -> ReloadOutcome {
        let sources: Vec<String> = changes.iter().map(|c| c.source.to_string()).collect();
        let kind = id.kind.api_kind();
        match result {
            Ok(Applied::Reloaded) => {
                let changed: Vec<String> = changes.iter().map(report::short).collect();
                // Self-contained, so that it reads alone in any log pipeline.
                tracing::info!(
                    namespace,
                    workload = %format_args!("{kind}/{}", id.name),
                    sources = %changed.join(","),
                    strategy = self.strategy.as_str(),
                    latency_ms = latency.map(|l| u64::try_from(l.as_millis()).unwrap_or(u64::MAX)),
                    "reloaded"
                );
                self.metrics
                    .reloader
                    .executed(namespace, kind, true, latency);
                for c in changes {
                    self.notifier.reloaded(&Reloaded {
                        source_name: &c.source.name,
                        source_type: c.source.kind.env_suffix(),
                        namespace,
                        workload: &id.name,
                        workload_kind: kind,
                    });
                }
                ReloadOutcome::Reloaded
            }
            Ok(Applied::AlreadyApplied) => {
                tracing::debug!(sources = ?sources, "already reflects the content");
                self.metrics.reloader.skipped(Skipped::StrategyNotUpdated);
                ReloadOutcome::AlreadyApplied
            }
            Ok(Applied::NoContainer) => {
                tracing::info!(sources = ?sources, "no container uses the change");
                self.metrics.reloader.skipped(Skipped::StrategyNotUpdated);
                ReloadOutcome::NoContainer
            }
            Ok(Applied::Gone) => ReloadOutcome::Gone,
            Err(error) => {
                tracing::warn!(error = %error_chain(error), sources = ?sources, "reload failed");
                self.metrics.reloader.executed(namespace, kind, false, None);
                ReloadOutcome::Failed
            }
        }
    }
}

impl Reloads for Worker {
    fn reload<'a>(
        &'a self,
        namespace: &'a str,
        id: &'a WorkloadId,
        changes: &'a [Reload],
    ) -> futures::future::BoxFuture<'a, bool> {
        Box::pin(self.reload_limited(Due {
            namespace,
            id,
            changes,
            admitted: None,
        }))
    }

    fn throttle(&self) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(self.limiter.throttle())
    }
}
