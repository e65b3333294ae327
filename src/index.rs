//! The workload index: the projection of every opted-in workload (or every workload under
//! `--auto-reload-all`), by namespace. Plain data, fed by the watches in
//! [`crate::kube::index`] and driven directly by unit tests.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::reload::model::WorkloadKind;
use crate::reload::workload::{Entry, WorkloadId};

/// Plain data, driven directly by unit tests.
#[derive(Debug, Default)]
pub struct Index {
    by_namespace: HashMap<String, HashMap<WorkloadId, Arc<Entry>>>,
    /// Namespaces where the workload webhook admitted an opted-in workload, and when: the
    /// watch delivers it a little later, and a source written in between must not be
    /// skipped for want of candidates. At most one entry per namespace, each kept for
    /// [`ADMITTED_GRACE`].
    admitted: HashMap<String, Instant>,
}

/// How long an admitted workload counts for its namespace before the watch has delivered
/// it. The watch takes milliseconds; a watch that is down this long is caught by the resync.
pub const ADMITTED_GRACE: Duration = Duration::from_secs(30);

impl Index {
    /// Inserts or replaces (`Some`) or removes (`None`) a workload.
    pub fn apply(&mut self, namespace: &str, id: WorkloadId, entry: Option<Entry>) {
        match entry {
            Some(entry) => {
                let entry = Arc::new(entry);
                // The namespace's name is allocated once, when its first workload arrives.
                if let Some(ns) = self.by_namespace.get_mut(namespace) {
                    ns.insert(id, entry);
                } else {
                    let ns = HashMap::from([(id, entry)]);
                    self.by_namespace.insert(namespace.to_owned(), ns);
                }
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

    /// [`Self::has_candidates`], or an opted-in workload was admitted in `namespace` less
    /// than [`ADMITTED_GRACE`] before `now`.
    pub fn may_have_candidates(&self, namespace: &str, now: Instant) -> bool {
        self.has_candidates(namespace)
            || self
                .admitted
                .get(namespace)
                .is_some_and(|at| now.saturating_duration_since(*at) < ADMITTED_GRACE)
    }

    /// The workload webhook admitted an opted-in workload in `namespace` at `now`. Entries
    /// past the grace are dropped here, so the map holds only recent namespaces.
    pub fn admitted(&mut self, namespace: &str, now: Instant) {
        self.admitted
            .retain(|_, at| now.saturating_duration_since(*at) < ADMITTED_GRACE);
        match self.admitted.get_mut(namespace) {
            Some(at) => *at = now,
            None => {
                self.admitted.insert(namespace.to_owned(), now);
            }
        }
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

    /// Every workload with its namespace (for scans such as the pause resumer's and the
    /// resync's, which keep the shared entry instead of copying it).
    pub fn entries(&self) -> impl Iterator<Item = (&str, &WorkloadId, &Arc<Entry>)> {
        self.by_namespace
            .iter()
            .flat_map(|(ns, map)| map.iter().map(move |(id, entry)| (ns.as_str(), id, entry)))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> WorkloadId {
        WorkloadId {
            kind: WorkloadKind::Deployment,
            name: name.into(),
        }
    }

    #[test]
    fn a_namespaced_relist_keeps_other_namespaces() {
        // --namespaces=a,b runs one watch per namespace; a re-list of a must not drop b.
        let mut index = Index::default();
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
    fn an_admitted_workload_counts_until_the_watch_delivers_it_or_the_grace_ends() {
        let mut index = Index::default();
        let t0 = Instant::now();
        assert!(!index.may_have_candidates("a", t0));
        index.admitted("a", t0);
        assert!(index.may_have_candidates("a", t0 + Duration::from_secs(1)));
        assert!(!index.has_candidates("a"), "not indexed by an admission");
        assert!(!index.may_have_candidates("b", t0));
        assert!(!index.may_have_candidates("a", t0 + ADMITTED_GRACE));
        // Indexed: counts whatever the time.
        index.apply("a", id("web"), Some(Entry::default()));
        assert!(index.may_have_candidates("a", t0 + ADMITTED_GRACE * 10));
        // Expired entries go when the next admission is recorded.
        index.admitted("b", t0);
        index.admitted("c", t0 + ADMITTED_GRACE);
        assert_eq!(index.admitted.len(), 1);
        assert!(index.may_have_candidates("c", t0 + ADMITTED_GRACE));
    }

    #[test]
    fn apply_remove_and_relist() {
        let mut index = Index::default();
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
