//! The resync: on start (or on winning the lease) and every `--resync-period`, the leader
//! compares each opted-in workload's recorded hashes with the live content of what it uses
//! ([`crate::reload::resync`]) and reloads what differs, through the worker's own path (the
//! storm limit, the patch rate, the guarded idempotent patch). So a change made while
//! kreload was down, dropped by a full queue, or lost in a failover is applied, and a
//! workload that is current rolls nothing. Sources are read one at a time and only their
//! hashes are kept, for one namespace at a time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Client;
use tokio::sync::watch;
use tracing::Instrument as _;

use crate::index::SharedIndex;
use crate::kube::retry::error_chain;
use crate::kube::sources::{self, Live};
use crate::kube::workloads::Workloads;
use crate::metrics::Metrics;
use crate::reload::hash::{configmap_hash_of, secret_hash_of};
use crate::reload::model::{SourceKind, SourceRef};
use crate::reload::patch::record_observed;
use crate::reload::plan::{self, Confirmed, Reload};
use crate::reload::resync::{self, Recorded};
use crate::reload::rules::RuleOptions;
use crate::reload::workload::{Entry, WorkloadId};
use crate::scope::Scope;

/// How the resync reloads: the worker's path, storm limit and patch rate included.
pub trait Reloads: Send + Sync {
    /// Reloads one workload for `changes`; whether it rolled.
    fn reload<'a>(
        &'a self,
        namespace: &'a str,
        id: &'a WorkloadId,
        changes: &'a [Reload],
    ) -> BoxFuture<'a, bool>;
    /// Waits for a slot under the global patch rate.
    fn throttle(&self) -> BoxFuture<'_, ()>;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the live source")]
    Source(#[source] sources::Error),
    #[error("reading the workload")]
    Read(#[source] kube::Error),
    #[error("recording the observed baseline")]
    Record(#[source] kube::Error),
    #[error("reading the workload as JSON")]
    Json(#[source] serde_json::Error),
}

/// The resync's settings (`--resync-period`, `--resync-on-start`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResyncConfig {
    /// Zero: only on start and on winning the lease.
    pub period: Duration,
    pub on_start: bool,
}

pub struct Resync {
    pub client: Client,
    pub index: SharedIndex,
    /// True once the index has listed every watched kind.
    pub synced: watch::Receiver<bool>,
    pub rules: Arc<RuleOptions>,
    pub scope: Scope,
    pub reloads: Arc<dyn Reloads>,
    pub metrics: Arc<Metrics>,
    pub config: ResyncConfig,
    /// Set after the first lead: a later win always resyncs at once (a failover).
    pub led_before: AtomicBool,
}

type Cache = HashMap<SourceRef, Option<Live>>;

/// The hash a deleted source's reload writes: that of empty content, as Reloader does.
fn empty_hash(kind: SourceKind) -> String {
    match kind {
        SourceKind::ConfigMap => configmap_hash_of(&ConfigMap::default()),
        // Not reached: a class whose statuses are gone is not a deleted source (below).
        SourceKind::Secret | SourceKind::SecretProviderClass => secret_hash_of(&Secret::default()),
    }
}

impl Resync {
    /// One term as leader: a pass at once (on start if `on_start`, always after a
    /// failover), then one every period. Runs until dropped (the lease lost).
    pub async fn lead(self: Arc<Self>) {
        let failover = self.led_before.swap(true, Ordering::SeqCst);
        let mut synced = self.synced.clone();
        if synced.wait_for(|s| *s).await.is_err() {
            return;
        }
        if failover || self.config.on_start {
            self.pass().await;
        }
        if self.config.period.is_zero() {
            return std::future::pending().await;
        }
        loop {
            tokio::time::sleep(self.config.period).await;
            self.pass().await;
        }
    }

    /// Looks at every indexed workload in scope once.
    pub async fn pass(&self) {
        let started = std::time::Instant::now();
        let mut by_namespace: BTreeMap<String, Vec<(WorkloadId, Arc<Entry>)>> = BTreeMap::new();
        self.index.read(|i| {
            for (ns, id, entry) in i.entries() {
                if self.scope.namespace_allowed(ns)
                    && !self.rules.ignored_workload_kinds.contains(&id.kind)
                {
                    by_namespace
                        .entry(ns.to_owned())
                        .or_default()
                        .push((id.clone(), entry.clone()));
                }
            }
        });
        let workloads: usize = by_namespace.values().map(Vec::len).sum();
        for (namespace, entries) in by_namespace {
            // Hashes only, for one namespace at a time.
            let mut cache = Cache::new();
            for (id, entry) in entries {
                let span = tracing::info_span!("resync", workload.kind = %id.kind, namespace = %namespace, workload.name = %id.name);
                let result = self
                    .workload(&namespace, &id, &entry, &mut cache)
                    .instrument(span.clone())
                    .await;
                if let Err(error) = result {
                    self.metrics.reliability.resync_error();
                    span.in_scope(|| tracing::warn!(error = %error_chain(&error), "resync of the workload failed; the next pass retries"));
                }
            }
        }
        self.metrics.reliability.resync_pass();
        tracing::info!(workloads, took = ?started.elapsed(), "resync pass done");
    }

    /// The live state of `src`, read once per namespace and pass.
    async fn live(
        &self,
        ns: &str,
        src: &SourceRef,
        cache: &mut Cache,
    ) -> Result<Option<Live>, Error> {
        if let Some(live) = cache.get(src) {
            return Ok(live.clone());
        }
        let live = sources::read(&self.client, ns, src)
            .await
            .map_err(Error::Source)?;
        cache.insert(src.clone(), live.clone());
        Ok(live)
    }

    /// The live content of what `entry` uses, as confirmed changes: sources in scope that
    /// exist, and (with `--reload-on-delete`) those that no longer do.
    async fn confirmed(
        &self,
        ns: &str,
        entry: &Entry,
        cache: &mut Cache,
    ) -> Result<Vec<Confirmed>, Error> {
        let mut out = Vec::new();
        for src in resync::sources(&self.rules, entry) {
            if self.scope.ignored_kinds.contains(&src.kind) {
                continue;
            }
            let (hash, annotations, deleted) = match self.live(ns, &src, cache).await? {
                Some(live) if self.scope.resource_labels.matches(&live.labels) => {
                    (live.hash, live.annotations, false)
                }
                // Reloader never reloads on a status delete: pods going away (or none yet)
                // say nothing about the class's content.
                None if self.scope.reload_on_delete
                    && src.kind != SourceKind::SecretProviderClass =>
                {
                    (empty_hash(src.kind), BTreeMap::new(), true)
                }
                _ => continue,
            };
            out.push(Confirmed {
                namespace: ns.to_owned(),
                source: src,
                hash,
                annotations,
                deleted,
            });
        }
        Ok(out)
    }

    async fn workload(
        &self,
        ns: &str,
        id: &WorkloadId,
        entry: &Entry,
        cache: &mut Cache,
    ) -> Result<(), Error> {
        let confirmed = self.confirmed(ns, entry, cache).await?;
        let key = (ns.to_owned(), id.clone());
        let entry = Arc::new(entry.clone());
        let mut batch = plan::batch(&self.rules, &confirmed, |_| {
            vec![(id.clone(), entry.clone())]
        });
        let Some(changes) = batch.reloads.remove(&key) else {
            return Ok(());
        };
        let api = Workloads::new(&self.client, ns, id.kind);
        let Some(obj) = api.get(&id.name).await.map_err(Error::Read)? else {
            return Ok(());
        };
        let value = serde_json::to_value(&obj).map_err(Error::Json)?;
        let sources: Vec<SourceRef> = changes.iter().map(|c| c.source.clone()).collect();
        let recorded = Recorded::read(&self.rules.vocabulary, id.kind, &value, &sources);
        // A deleted source is recorded with an empty hash.
        let live = changes
            .iter()
            .map(|c| {
                (
                    c.source.clone(),
                    if c.deleted {
                        String::new()
                    } else {
                        c.hash.clone()
                    },
                )
            })
            .collect();
        let verdict = resync::compare(&recorded, &live);
        if let Some(baseline) = verdict.baseline {
            let rv = obj.metadata.resource_version.as_deref().unwrap_or_default();
            let annotations = obj.metadata.annotations.clone().unwrap_or_default();
            if let Some(patch) = record_observed(rv, &annotations, &baseline) {
                self.reloads.throttle().await;
                api.patch(&id.name, patch.0).await.map_err(Error::Record)?;
                self.metrics.reliability.resync_baseline();
                tracing::info!("recorded the observed baseline; nothing rolled");
            }
        }
        if verdict.stale.is_empty() {
            return Ok(());
        }
        let stale: Vec<Reload> = changes
            .into_iter()
            .filter(|c| verdict.stale.iter().any(|(s, _)| *s == c.source))
            .collect();
        let names: Vec<String> = stale.iter().map(|c| c.source.to_string()).collect();
        tracing::info!(sources = ?names, "behind its sources' live content; reloading");
        self.metrics.reliability.resync_stale();
        self.reloads.reload(ns, id, &stale).await;
        Ok(())
    }
}
