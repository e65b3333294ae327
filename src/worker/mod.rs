//! The restart worker: takes coalesced intents from the queue, confirms them against the
//! live objects, finds the workloads they concern in the index, and reloads each workload
//! once for all of its changes. Deployments it paused for their pause-period are resumed
//! by the [`pause::Resumer`] it runs alongside.

pub mod apply;
pub mod confirm;
pub mod pause;
pub mod queue;
pub mod timers;

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt as _;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder};
use tracing::Instrument as _;

use crate::admission::sources::SourceFilter;
use crate::index::{SharedIndex, WorkloadId};
use crate::metrics::{DropReason, Metrics, ReloadOutcome};
use crate::reload::keys::Key;
use crate::reload::model::WorkloadKind;
use crate::reload::rules::{Decision, RuleOptions, SourceView, WorkloadView, decide};
use apply::{Applied, Reload, Settings};
use confirm::Outcome;
use pause::Resumer;
use queue::{Intent, Queue};

/// How many confirmations, and how many workload patches, run at once.
const CONCURRENCY: usize = 8;

pub struct Worker {
    pub client: Client,
    pub queue: Arc<Queue>,
    pub index: SharedIndex,
    pub rules: Arc<RuleOptions>,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// How long to wait for an admitted write to show up in the live object.
    pub confirm_patience: Duration,
    /// Where kreload acts; the resumer acts nowhere else.
    pub scope: SourceFilter,
}

impl Worker {
    /// Runs until the queue is closed and drained.
    pub async fn run(self) {
        let resumer = Resumer::new(
            self.client.clone(),
            self.settings.vocabulary.clone(),
            self.recorder.clone(),
        );
        let scan = tokio::spawn(resumer.clone().scan(self.index.clone(), self.scope.clone()));
        while let Some(batch) = self.queue.next_batch().await {
            self.metrics.set_queue_depth(self.queue.len());
            self.process(batch, &resumer).await;
        }
        scan.abort();
        resumer.stop();
        tracing::info!("worker stopped");
    }

    async fn process(&self, batch: Vec<Intent>, resumer: &Arc<Resumer>) {
        // Confirm every intent first (concurrently: a write that never persists costs the
        // whole confirmation patience), then reload: a workload that uses several changed
        // sources is patched once for all of them.
        let confirmed: Vec<(Intent, Option<Outcome>)> = futures::stream::iter(batch)
            .map(|intent| async move {
                let outcome = self.confirm(&intent).await;
                (intent, outcome)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut plan: BTreeMap<(String, WorkloadId), Vec<Reload>> = BTreeMap::new();
        // Deployments whose reload may pause them: their resume timer is set after it.
        let mut pausable = BTreeSet::new();
        for (intent, outcome) in confirmed {
            let Some(Outcome::Persisted {
                hash,
                annotations,
                deleted,
            }) = outcome
            else {
                continue;
            };
            let candidates = self.index.read(|i| i.candidates(&intent.namespace));
            for (id, entry) in candidates {
                let workload = WorkloadView {
                    kind: id.kind,
                    annotations: &entry.annotations,
                    template_annotations: &entry.template_annotations,
                    refs: &entry.refs,
                };
                let source = SourceView {
                    source: &intent.source,
                    annotations: &annotations,
                };
                if let Decision::Reload { auto } = decide(&self.rules, &workload, &source) {
                    let vocabulary = &self.rules.vocabulary;
                    if id.kind == WorkloadKind::Deployment
                        && (vocabulary.contains(&entry.annotations, Key::PausePeriod)
                            || vocabulary.contains(&entry.annotations, Key::PausedAt))
                    {
                        pausable.insert((intent.namespace.clone(), id.clone()));
                    }
                    plan.entry((intent.namespace.clone(), id))
                        .or_default()
                        .push(Reload {
                            source: intent.source.clone(),
                            hash: hash.clone(),
                            auto,
                            deleted,
                        });
                }
            }
        }
        futures::stream::iter(plan)
            .for_each_concurrent(CONCURRENCY, |(key, changes)| {
                let pausable = &pausable;
                async move {
                    let (namespace, id) = &key;
                    if self.reload(namespace, id, &changes).await && pausable.contains(&key) {
                        resumer.check(namespace, &id.name);
                    }
                }
            })
            .await;
    }

    /// The live outcome for one intent; `None` when it cannot be used (counted and logged).
    async fn confirm(&self, intent: &Intent) -> Option<Outcome> {
        let span = tracing::info_span!(
            "intent",
            namespace = %intent.namespace,
            kind = intent.source.kind.as_str(),
            name = %intent.source.name
        );
        let outcome = confirm::confirm(&self.client, intent, self.confirm_patience)
            .instrument(span.clone())
            .await;
        span.in_scope(|| match outcome {
            Ok(Outcome::NotPersisted) => {
                tracing::info!("admitted write was not persisted; nothing to do");
                self.metrics.intent_dropped(DropReason::NotPersisted);
                None
            }
            Ok(persisted) => Some(persisted),
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "cannot confirm the write; change dropped");
                self.metrics.intent_dropped(DropReason::Unconfirmed);
                None
            }
        })
    }

    /// Returns whether a patch was written.
    async fn reload(&self, namespace: &str, id: &WorkloadId, changes: &[Reload]) -> bool {
        let span =
            tracing::info_span!("reload", workload.kind = %id.kind, namespace, name = %id.name);
        let started = std::time::Instant::now();
        let result = apply::reload(
            &self.client,
            &self.settings,
            namespace,
            id.kind,
            &id.name,
            changes,
        )
        .instrument(span.clone())
        .await;
        let sources: Vec<String> = changes.iter().map(|c| c.source.to_string()).collect();
        // No span guard across an await: reloads run concurrently on one task.
        let outcome = span.in_scope(|| match &result {
            Ok(Applied::Reloaded) => {
                tracing::info!(sources = ?sources, "reloaded");
                ReloadOutcome::Reloaded
            }
            Ok(Applied::AlreadyApplied) => {
                tracing::debug!(sources = ?sources, "already reflects the content");
                ReloadOutcome::AlreadyApplied
            }
            Ok(Applied::NoContainer) => {
                tracing::info!(sources = ?sources, "no container uses the change");
                ReloadOutcome::NoContainer
            }
            Ok(Applied::Gone) => ReloadOutcome::Gone,
            Err(error) => {
                tracing::warn!(error = %error_chain(error), sources = ?sources, "reload failed");
                ReloadOutcome::Failed
            }
        });
        self.metrics
            .reload(id.kind.api_kind(), self.settings.strategy.as_str(), outcome);
        self.metrics.observe_reload_patch(started.elapsed());
        let reloaded = matches!(result, Ok(Applied::Reloaded));
        let event = match &result {
            Ok(Applied::Reloaded) => {
                let verb = if id.kind == WorkloadKind::Job {
                    "recreated"
                } else {
                    "restarted"
                };
                let note = format!("{verb} because {} changed", sources.join(", "));
                Some((EventType::Normal, "Reloaded", note))
            }
            Err(error) => {
                let note = format!(
                    "reload for {} failed: {}",
                    sources.join(", "),
                    error_chain(error)
                );
                Some((EventType::Warning, "ReloadFailed", note))
            }
            Ok(_) => None,
        };
        if let Some((type_, reason, note)) = event {
            self.event(namespace, id, type_, reason, note)
                .instrument(span)
                .await;
        }
        reloaded
    }

    async fn event(
        &self,
        namespace: &str,
        id: &WorkloadId,
        type_: EventType,
        reason: &str,
        mut note: String,
    ) {
        let resource = apply::api_resource(id.kind);
        let reference = ObjectReference {
            api_version: Some(resource.api_version),
            kind: Some(resource.kind),
            namespace: Some(namespace.to_owned()),
            name: Some(id.name.clone()),
            ..Default::default()
        };
        // The API server limits an event's note to 1 kB.
        if note.len() > 1000 {
            let mut end = 1000;
            while !note.is_char_boundary(end) {
                end -= 1;
            }
            note.truncate(end);
        }
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Reload".into(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &reference).await {
            tracing::warn!(%error, "cannot record the event");
        }
    }
}

/// An error with its sources, on one line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
