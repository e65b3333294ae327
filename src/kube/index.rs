//! The watches that keep the workload index current: one per workload kind (and per
//! watched namespace), each keeping only the projection the decisions need.

use std::collections::HashSet;
use std::sync::Arc;

use kube::runtime::watcher;
use kube::{Api, ResourceExt as _};
use tokio::sync::watch;

pub use super::slim::{Slim, Templated, Workload};
use super::watch::{Store, follow};
use crate::index::{Index, SharedIndex};
use crate::metrics::Metrics;
use crate::reload::model::WorkloadKind;
use crate::reload::rules::RuleOptions;
use crate::reload::workload::{Entry, WorkloadId, project};

/// Objects per list request when a watch (re-)lists. A page is held whole, as text and
/// decoded, until its objects are projected; at kube's default of 500 whole Deployments the
/// decoded page was 20 of the 23 MiB of peak heap with 1,000 workloads (docs/memory.md).
pub const PAGE_SIZE: u32 = 100;

fn entry_of<K: Templated>(opts: &RuleOptions, obj: &Slim<K>) -> Option<Entry> {
    project(opts, obj.annotations(), obj.template()?)
}

/// Feeds one watch's events into the index.
struct IndexStore {
    kind: WorkloadKind,
    /// The namespace the watch covers (`None`: every namespace).
    scope: Option<String>,
    opts: Arc<RuleOptions>,
    index: SharedIndex,
    metrics: Arc<Metrics>,
}

impl IndexStore {
    fn counted(&self, initial: bool) {
        if !initial {
            self.metrics
                .set_index_workloads(self.index.read(Index::len));
        }
    }
}

impl<K: Templated> Store<Slim<K>> for IndexStore {
    fn apply(&mut self, obj: Slim<K>, initial: bool) {
        let (ns, name) = super::watch::key_of(&obj);
        let entry = entry_of(&self.opts, &obj);
        let kind = self.kind;
        self.index
            .write(|i| i.apply(&ns, WorkloadId { kind, name }, entry));
        self.counted(initial);
    }

    fn delete(&mut self, obj: Slim<K>) {
        let (ns, name) = super::watch::key_of(&obj);
        let kind = self.kind;
        self.index
            .write(|i| i.apply(&ns, WorkloadId { kind, name }, None));
        self.counted(false);
    }

    fn relisted(&mut self, listed: HashSet<(String, String)>) {
        let (kind, scope) = (self.kind, self.scope.as_deref());
        self.index.write(|i| i.retain_kind(kind, scope, &listed));
        self.counted(false);
    }
}

/// Watches one workload kind (in all namespaces or in one) and keeps the index current.
/// Sends `true` on `synced` after the first complete list. Runs until the stream ends.
pub async fn watch_kind<K: Templated>(
    api: Api<Slim<K>>,
    kind: WorkloadKind,
    opts: Arc<RuleOptions>,
    index: SharedIndex,
    synced: watch::Sender<bool>,
    metrics: Arc<Metrics>,
) where
    K::DynamicType: Clone + Eq + std::hash::Hash,
{
    let mut store = IndexStore {
        kind,
        scope: api.namespace().map(str::to_owned),
        opts,
        index,
        metrics,
    };
    follow(
        api,
        watcher::Config::default().page_size(PAGE_SIZE),
        kind.plural(),
        &mut store,
        synced,
    )
    .await;
}
