//! The workload index: what reload decisions need to know about each opted-in workload,
//! fed by watches of the workload kinds. It keeps a compact projection (relevant
//! annotations and referenced object names per container), never whole objects, and only
//! for workloads that opted in (or all of them under `--auto-reload-all`).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::DynamicObject;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource, ResourceExt as _};
use serde::Deserialize as _;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::reload::keys::Key;
use crate::reload::model::WorkloadKind;
use crate::reload::refs::{PodRefs, pod_refs};
use crate::reload::rules::{RuleOptions, opted_in};

/// Identifies a workload within a namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadId {
    pub kind: WorkloadKind,
    pub name: String,
}

/// The projection kept per workload.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Entry {
    /// Workload metadata annotations under kreload's (and Reloader's) prefixes only.
    pub annotations: BTreeMap<String, String>,
    /// Pod template annotations under the same prefixes only.
    pub template_annotations: BTreeMap<String, String>,
    pub refs: PodRefs,
}

/// Builds the entry for a workload, or `None` when it has not opted in.
pub fn project(
    opts: &RuleOptions,
    annotations: &BTreeMap<String, String>,
    template: &PodTemplateSpec,
) -> Option<Entry> {
    let empty = BTreeMap::new();
    let template_annotations = template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .unwrap_or(&empty);
    // A Deployment kreload paused stays indexed even if it no longer opts in, so the
    // pause is still resumed (also after a restart).
    let paused_by_kreload = opts.vocabulary.get(annotations, Key::PausedAt).is_some();
    if !opted_in(opts, annotations, template_annotations) && !paused_by_kreload {
        return None;
    }
    let refs = template.spec.as_ref().map(pod_refs).unwrap_or_default();
    Some(Entry {
        annotations: opts.vocabulary.relevant(annotations),
        template_annotations: opts.vocabulary.relevant(template_annotations),
        refs,
    })
}

/// Plain data, driven directly by unit tests.
#[derive(Debug, Default)]
pub struct Index {
    by_namespace: HashMap<String, HashMap<WorkloadId, Arc<Entry>>>,
}

impl Index {
    /// Inserts or replaces (`Some`) or removes (`None`) a workload.
    pub fn apply(&mut self, namespace: &str, id: WorkloadId, entry: Option<Entry>) {
        match entry {
            Some(entry) => {
                self.by_namespace
                    .entry(namespace.to_owned())
                    .or_default()
                    .insert(id, Arc::new(entry));
            }
            None => {
                if let Some(ns) = self.by_namespace.get_mut(namespace) {
                    ns.remove(&id);
                    if ns.is_empty() {
                        self.by_namespace.remove(namespace);
                    }
                }
            }
        }
    }

    /// Whether any opted-in workload lives in `namespace` (the admission fast path).
    pub fn has_candidates(&self, namespace: &str) -> bool {
        self.by_namespace.contains_key(namespace)
    }

    /// The opted-in workloads of a namespace.
    pub fn candidates(&self, namespace: &str) -> Vec<(WorkloadId, Arc<Entry>)> {
        self.by_namespace
            .get(namespace)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// Drops every workload of `kind` not in `keep` after a re-list by a watch whose scope
    /// is `namespace` (`None`: cluster-wide). Other namespaces belong to other watches.
    pub fn retain_kind(
        &mut self,
        kind: WorkloadKind,
        namespace: Option<&str>,
        keep: &HashSet<(String, String)>,
    ) {
        for (ns, map) in self.by_namespace.iter_mut() {
            if namespace.is_some_and(|scope| scope != ns) {
                continue;
            }
            map.retain(|id, _| id.kind != kind || keep.contains(&(ns.clone(), id.name.clone())));
        }
        self.by_namespace.retain(|_, m| !m.is_empty());
    }

    pub fn len(&self) -> usize {
        self.by_namespace.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every workload with its namespace (for scans such as the pause resumer's).
    pub fn entries(&self) -> impl Iterator<Item = (&str, &WorkloadId, &Entry)> {
        self.by_namespace.iter().flat_map(|(ns, map)| {
            map.iter()
                .map(move |(id, entry)| (ns.as_str(), id, entry.as_ref()))
        })
    }
}

/// The index shared between the watchers, the admission handler and the worker.
#[derive(Clone, Default)]
pub struct SharedIndex(Arc<RwLock<Index>>);

impl SharedIndex {
    pub fn read<T>(&self, f: impl FnOnce(&Index) -> T) -> T {
        let guard = self.0.read().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    }

    pub fn write<T>(&self, f: impl FnOnce(&mut Index) -> T) -> T {
        let mut guard = self.0.write().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

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

workload!(Deployment, WorkloadKind::Deployment, |o| o
    .spec
    .as_ref()
    .map(|s| &s.template));
workload!(StatefulSet, WorkloadKind::StatefulSet, |o| o
    .spec
    .as_ref()
    .map(|s| &s.template));
workload!(DaemonSet, WorkloadKind::DaemonSet, |o| o
    .spec
    .as_ref()
    .map(|s| &s.template));
workload!(Job, WorkloadKind::Job, |o| o
    .spec
    .as_ref()
    .map(|s| &s.template));
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

/// Watches one workload kind (in all namespaces or in one) and keeps the index current.
/// Sends `true` on `synced` after the first complete list. Runs until the stream ends.
pub async fn watch_kind<K: Templated>(
    api: Api<K>,
    kind: WorkloadKind,
    opts: Arc<RuleOptions>,
    index: SharedIndex,
    synced: watch::Sender<bool>,
    metrics: Arc<crate::metrics::Metrics>,
) where
    K::DynamicType: Clone + Eq + std::hash::Hash,
{
    let mut relisted: HashSet<(String, String)> = HashSet::new();
    let scope = api.namespace().map(str::to_owned);
    let stream = watcher::watcher(api, watcher::Config::default()).map_err(|error| {
        tracing::warn!(%kind, %error, "workload watch failed; retrying");
        error
    });
    let mut stream = std::pin::pin!(kube::runtime::WatchStreamExt::default_backoff(stream));
    while let Some(event) = stream.next().await {
        let Ok(event) = event else { continue };
        let initial = matches!(event, Event::Init | Event::InitApply(_));
        match event {
            Event::Init => relisted.clear(),
            Event::InitApply(obj) | Event::Apply(obj) => {
                let ns = obj.namespace().unwrap_or_default();
                let name = obj.name_any();
                relisted.insert((ns.clone(), name.clone()));
                let entry = entry_of(&opts, &obj);
                index.write(|i| i.apply(&ns, WorkloadId { kind, name }, entry));
            }
            Event::Delete(obj) => {
                let ns = obj.namespace().unwrap_or_default();
                let id = WorkloadId {
                    kind,
                    name: obj.name_any(),
                };
                index.write(|i| i.apply(&ns, id, None));
            }
            Event::InitDone => {
                let keep = std::mem::take(&mut relisted);
                index.write(|i| i.retain_kind(kind, scope.as_deref(), &keep));
                let _ = synced.send(true);
            }
        }
        if !initial {
            metrics.set_index_workloads(index.read(Index::len));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reload::keys::Vocabulary;
    use crate::reload::model::{SourceKind, SourceRef};

    fn opts() -> RuleOptions {
        RuleOptions {
            vocabulary: Vocabulary::new(true),
            auto_reload_all: false,
            ignored_workload_kinds: Default::default(),
        }
    }

    fn template(annotations: &[(&str, &str)]) -> PodTemplateSpec {
        serde_json::from_value(serde_json::json!({
            "metadata": {"annotations": annotations.iter().cloned().collect::<BTreeMap<_,_>>()},
            "spec": {"containers": [{
                "name": "app",
                "envFrom": [{"configMapRef": {"name": "settings"}}]
            }]}
        }))
        .expect("template")
    }

    #[test]
    fn projection_keeps_only_relevant_annotations_and_references() {
        let meta = BTreeMap::from([
            ("reloader.stakater.com/auto".to_owned(), "true".to_owned()),
            ("team".to_owned(), "payments".to_owned()),
        ]);
        let entry = project(
            &opts(),
            &meta,
            &template(&[("prometheus.io/scrape", "true")]),
        )
        .expect("opted in");
        assert_eq!(entry.annotations.len(), 1);
        assert!(entry.template_annotations.is_empty());
        assert!(entry.refs.references(&SourceRef {
            kind: SourceKind::ConfigMap,
            name: "settings".into()
        }));
    }

    #[test]
    fn a_deployment_kreload_paused_is_kept_after_opting_out() {
        let meta = BTreeMap::from([(
            "deployment.kreload.dev/paused-at".to_owned(),
            "2026-11-22T00:00:00Z".to_owned(),
        )]);
        let entry = project(&opts(), &meta, &template(&[])).expect("kept");
        assert!(
            entry
                .annotations
                .contains_key("deployment.kreload.dev/paused-at")
        );
    }

    #[test]
    fn workloads_that_did_not_opt_in_are_not_kept() {
        assert!(project(&opts(), &BTreeMap::new(), &template(&[])).is_none());
        let mut all = opts();
        all.auto_reload_all = true;
        assert!(project(&all, &BTreeMap::new(), &template(&[])).is_some());
    }

    #[test]
    fn a_namespaced_relist_keeps_other_namespaces() {
        // --namespaces=a,b runs one watch per namespace; a re-list of a must not drop b.
        let mut index = Index::default();
        let id = |n: &str| WorkloadId {
            kind: WorkloadKind::Deployment,
            name: n.into(),
        };
        index.apply("a", id("web"), Some(Entry::default()));
        index.apply("b", id("api"), Some(Entry::default()));
        let keep = HashSet::from([("a".to_owned(), "web".to_owned())]);
        index.retain_kind(WorkloadKind::Deployment, Some("a"), &keep);
        assert!(index.has_candidates("a"));
        assert!(index.has_candidates("b"));
        index.retain_kind(WorkloadKind::Deployment, Some("b"), &HashSet::new());
        assert!(index.has_candidates("a"));
        assert!(!index.has_candidates("b"));
    }

    #[test]
    fn apply_remove_and_relist() {
        let mut index = Index::default();
        let id = |n: &str| WorkloadId {
            kind: WorkloadKind::Deployment,
            name: n.into(),
        };
        index.apply("a", id("web"), Some(Entry::default()));
        index.apply("a", id("api"), Some(Entry::default()));
        index.apply(
            "b",
            WorkloadId {
                kind: WorkloadKind::CronJob,
                name: "nightly".into(),
            },
            Some(Entry::default()),
        );
        assert!(index.has_candidates("a"));
        assert_eq!(index.candidates("a").len(), 2);
        index.apply("a", id("api"), None);
        assert_eq!(index.candidates("a").len(), 1);
        // A re-list that no longer contains a/web drops it but keeps other kinds.
        index.retain_kind(WorkloadKind::Deployment, None, &HashSet::new());
        assert!(!index.has_candidates("a"));
        assert!(index.has_candidates("b"));
        assert_eq!(index.len(), 1);
        let all: Vec<_> = index
            .entries()
            .map(|(ns, id, _)| (ns, id.name.as_str()))
            .collect();
        assert_eq!(all, [("b", "nightly")]);
    }
}
