//! One way to follow a watch: list, then apply changes, and after every (re-)list tell the
//! store which objects the list held so it can drop the ones that went away meanwhile.
//! The workload index and the namespace gate both follow their watches this way.

use std::collections::HashSet;
use std::fmt::Debug;

use futures::{StreamExt as _, TryStreamExt as _};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource, ResourceExt as _};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

/// `(namespace, name)`; the namespace is empty for cluster-scoped objects.
pub type Key = (String, String);

pub fn key_of<K: Resource>(obj: &K) -> Key {
    (obj.namespace().unwrap_or_default(), obj.name_any())
}

/// What a followed watch feeds.
pub trait Store<K> {
    /// An object as listed (`initial`) or as changed later.
    fn apply(&mut self, obj: K, initial: bool);
    fn delete(&mut self, obj: K);
    /// A (re-)list is complete and held exactly `listed`.
    fn relisted(&mut self, listed: HashSet<Key>);
}

/// Follows `api` until the stream ends, retrying with the default backoff; sends `true` on
/// `synced` after each complete list. `what` names the watch in logs.
pub async fn follow<K, S>(
    api: Api<K>,
    config: watcher::Config,
    what: &str,
    store: &mut S,
    synced: watch::Sender<bool>,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Clone + Eq + std::hash::Hash,
    S: Store<K>,
{
    let stream = watcher::watcher(api, config).map_err(|error| {
        tracing::warn!(watch = what, %error, "watch failed; retrying");
        error
    });
    let mut stream = std::pin::pin!(kube::runtime::WatchStreamExt::default_backoff(stream));
    let mut listed = HashSet::new();
    while let Some(event) = stream.next().await {
        let Ok(event) = event else { continue };
        match event {
            Event::Init => listed.clear(),
            Event::InitApply(obj) => {
                listed.insert(key_of(&obj));
                store.apply(obj, true);
            }
            Event::Apply(obj) => store.apply(obj, false),
            Event::Delete(obj) => store.delete(obj),
            Event::InitDone => {
                store.relisted(std::mem::take(&mut listed));
                let _ = synced.send(true);
            }
        }
    }
}
