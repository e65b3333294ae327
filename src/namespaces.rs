//! `--namespace-selector`: the namespaces whose labels match, kept current by a watch of
//! namespace metadata (names and labels only; there are few namespaces).

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt as _};
use tokio::sync::watch;

/// Decides whether a namespace is selected. Without a selector every namespace is.
#[derive(Clone, Debug, Default)]
pub struct NamespaceGate {
    selector: Option<String>,
    matching: Arc<RwLock<HashSet<String>>>,
}

impl NamespaceGate {
    /// A gate for a Kubernetes label selector (`a=b,c`); `None` selects everything.
    pub fn new(selector: Option<String>) -> Self {
        Self {
            selector,
            matching: Arc::default(),
        }
    }

    pub fn selector(&self) -> Option<&str> {
        self.selector.as_deref()
    }

    pub fn allows(&self, namespace: &str) -> bool {
        self.selector.is_none()
            || self
                .matching
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .contains(namespace)
    }

    fn set(&self, f: impl FnOnce(&mut HashSet<String>)) {
        f(&mut self.matching.write().unwrap_or_else(|p| p.into_inner()));
    }

    /// Keeps the set of matching namespaces current; sends `true` once listed.
    pub async fn watch(self, client: Client, synced: watch::Sender<bool>) {
        let Some(selector) = self.selector.clone() else {
            let _ = synced.send(true);
            return;
        };
        // PartialObjectMeta makes the list and watch metadata-only requests.
        let api: Api<PartialObjectMeta<Namespace>> = Api::all(client);
        let config = watcher::Config::default().labels(&selector);
        let mut relisted = HashSet::new();
        let stream = kube::runtime::WatchStreamExt::default_backoff(watcher::watcher(api, config));
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Init) => relisted.clear(),
                Ok(Event::InitApply(ns)) => {
                    relisted.insert(ns.name_any());
                }
                Ok(Event::InitDone) => {
                    let names = std::mem::take(&mut relisted);
                    self.set(|m| *m = names);
                    let _ = synced.send(true);
                }
                Ok(Event::Apply(ns)) => self.set(|m| {
                    m.insert(ns.name_any());
                }),
                Ok(Event::Delete(ns)) => self.set(|m| {
                    m.remove(&ns.name_any());
                }),
                Err(error) => tracing::warn!(%error, "namespace watch failed; retrying"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_selector_every_namespace_is_allowed() {
        assert!(NamespaceGate::new(None).allows("anything"));
    }

    #[test]
    fn with_a_selector_only_listed_namespaces_are_allowed() {
        let gate = NamespaceGate::new(Some("team=a".into()));
        assert!(!gate.allows("a1"));
        gate.set(|m| {
            m.insert("a1".into());
        });
        assert!(gate.allows("a1"));
        assert!(!gate.allows("b1"));
    }
}
