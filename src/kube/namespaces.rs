//! `--namespace-selector`: keeps the [`NamespaceGate`] current from a watch of namespace
//! metadata (names and labels only; there are few namespaces).

use std::collections::HashSet;

use k8s_openapi::api::core::v1::Namespace;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt as _};
use tokio::sync::watch;

use super::watch::{Key, Store, follow};
use crate::scope::NamespaceGate;

struct GateStore(NamespaceGate);

impl Store<PartialObjectMeta<Namespace>> for GateStore {
    fn apply(&mut self, ns: PartialObjectMeta<Namespace>, initial: bool) {
        // Listed namespaces replace the whole set once the list is complete.
        if !initial {
            self.0.set(|m| {
                m.insert(ns.name_any());
            });
        }
    }

    fn delete(&mut self, ns: PartialObjectMeta<Namespace>) {
        self.0.set(|m| {
            m.remove(&ns.name_any());
        });
    }

    fn relisted(&mut self, listed: HashSet<Key>) {
        self.0
            .set(|m| *m = listed.into_iter().map(|(_, name)| name).collect());
    }
}

/// Keeps the gate's set of matching namespaces current; sends `true` once listed.
pub async fn watch(gate: NamespaceGate, client: Client, synced: watch::Sender<bool>) {
    let Some(selector) = gate.selector().map(str::to_owned) else {
        let _ = synced.send(true);
        return;
    };
    // PartialObjectMeta makes the list and watch metadata-only requests.
    let api: Api<PartialObjectMeta<Namespace>> = Api::all(client);
    let config = watcher::Config::default()
        .labels(&selector)
        .page_size(super::index::PAGE_SIZE);
    follow(api, config, "namespaces", &mut GateStore(gate), synced).await;
}
