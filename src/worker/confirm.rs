//! Was the admitted write persisted? The webhook sees writes that are later rejected or
//! never stored (another webhook denies, a conflict, an etcd failure), so before acting the
//! worker reads the live object and acts only when its content is what was admitted.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};

use super::queue::Intent;
use crate::reload::hash::{configmap_hash_of, secret_hash_of};
use crate::reload::model::SourceKind;

/// What the live object says about an intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The live content is the admitted one. `annotations` are the live object's (for
    /// `ignore` and `match`), `hash` the content hash to write (for a delete, the hash of
    /// empty content).
    Persisted {
        hash: String,
        annotations: BTreeMap<String, String>,
        /// The admitted write was a delete, and the object is gone.
        deleted: bool,
    },
    /// The live content never became the admitted one (rejected after admission) or has
    /// moved on to content this worker has not been told about.
    NotPersisted,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {kind}/{name} in {namespace}")]
    Read {
        kind: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// The live state of a source: `None` when it does not exist.
async fn live(
    client: &Client,
    namespace: &str,
    kind: SourceKind,
    name: &str,
) -> Result<Option<(String, BTreeMap<String, String>)>, Error> {
    let read_err = |source| Error::Read {
        kind: kind.as_str(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        source,
    };
    // One object at a time, keeping only its hash and annotations.
    match kind {
        SourceKind::ConfigMap => {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
            Ok(api.get_opt(name).await.map_err(read_err)?.map(|cm| {
                let hash = configmap_hash_of(&cm);
                (hash, cm.metadata.annotations.unwrap_or_default())
            }))
        }
        SourceKind::Secret => {
            let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
            Ok(api.get_opt(name).await.map_err(read_err)?.map(|s| {
                let hash = secret_hash_of(&s);
                (hash, s.metadata.annotations.unwrap_or_default())
            }))
        }
    }
}

/// Reads the live object, retrying with backoff while the admitted write may still be in
/// flight, for at most about `patience`.
pub async fn confirm(
    client: &Client,
    intent: &Intent,
    patience: Duration,
) -> Result<Outcome, Error> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut delay = Duration::from_millis(50);
    loop {
        let state = live(
            client,
            &intent.namespace,
            intent.source.kind,
            &intent.source.name,
        )
        .await?;
        match (&intent.hash, state) {
            (Some(admitted), Some((hash, annotations))) if *admitted == hash => {
                return Ok(Outcome::Persisted {
                    hash,
                    annotations,
                    deleted: false,
                });
            }
            (None, None) => {
                let hash = match intent.source.kind {
                    SourceKind::ConfigMap => configmap_hash_of(&ConfigMap::default()),
                    SourceKind::Secret => secret_hash_of(&Secret::default()),
                };
                return Ok(Outcome::Persisted {
                    hash,
                    annotations: BTreeMap::new(),
                    deleted: true,
                });
            }
            _ => {}
        }
        if tokio::time::Instant::now() + delay > deadline {
            return Ok(Outcome::NotPersisted);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}
