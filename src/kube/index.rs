//! The watches that keep the workload index current: one per workload kind (and per
//! watched namespace), each keeping only the projection the decisions need.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::DynamicObject;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt as _};
use serde::Deserialize as _;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::watch::{Store, follow};
use crate::index::{Index, SharedIndex};
use crate::metrics::Metrics;
use crate::reload::model::WorkloadKind;
use crate::reload::rules::RuleOptions;
use crate::reload::workload::{Entry, WorkloadId, project};

/// A watched object type: where its pod template is.
pub trait Templated:
    Resource + DeserializeOwned + Clone + std::fmt::Debug + Send + Sync + 'static
{
    fn template(&self) -> Option<Cow<'_, PodTemplateSpec>>;
}

/// A built-in workload kind.
pub trait Workload: Templated + Resource<DynamicType = ()> {
    const KIND: WorkloadKind;
}

macro_rules! workload {
    // Most kinds keep their template at `spec.template`.
    ($ty:ty, $kind:expr) => {
        workload!($ty, $kind, |o| o.spec.as_ref().map(|s| &s.template));
    };
    ($ty:ty, $kind:expr, |$obj:ident| $template:expr) => {
        impl Templated for $ty {
            fn template(&self) -> Option<Cow<'_, PodTemplateSpec>> {
                let $obj = self;
                $template.map(Cow::Borrowed)
            }
        }
        impl Workload for $ty {
            const KIND: WorkloadKind = $kind;
        }
    };
}

workload!(Deployment, WorkloadKind::Deployment);
workload!(StatefulSet, WorkloadKind::StatefulSet);
workload!(DaemonSet, WorkloadKind::DaemonSet);
workload!(Job, WorkloadKind::Job);
workload!(CronJob, WorkloadKind::CronJob, |o| o
    .spec
    .as_ref()
    .and_then(|s| s.job_template.spec.as_ref())
    .map(|s| &s.template));

/// Argo Rollouts (a CRD, so untyped): the template is `spec.template`.
impl Templated for DynamicObject {
    fn template(&self) -> Option<Cow<'_, PodTemplateSpec>> {
        let template = self.data.pointer("/spec/template")?;
        PodTemplateSpec::deserialize(template).ok().map(Cow::Owned)
    }
}

fn entry_of<K: Templated>(opts: &RuleOptions, obj: &K) -> Option<Entry> {
    let template = obj.template()?;
    project(opts, obj.annotations(), &template)
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

impl<K: Templated> Store<K> for IndexStore {
    fn apply(&mut self, obj: K, initial: bool) {
        let (ns, name) = super::watch::key_of(&obj);
        let entry = entry_of(&self.opts, &obj);
        let kind = self.kind;
        self.index
            .write(|i| i.apply(&ns, WorkloadId { kind, name }, entry));
        self.counted(initial);
    }

    fn delete(&mut self, obj: K) {
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
    api: Api<K>,
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
        watcher::Config::default(),
        kind.plural(),
        &mut store,
        synced,
    )
    .await;
}
