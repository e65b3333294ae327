//! Reads of ConfigMaps and Secrets: one object at a time, keeping only its content hash and
//! annotations. No source data outlives the call.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};

use crate::reload::hash::{configmap_hash_of, secret_hash_of};
use crate::reload::model::{SourceKind, SourceRef};

/// What kreload keeps of a live source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    pub hash: String,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
#[error("reading {source_ref} in {namespace}")]
pub struct Error {
    pub source_ref: SourceRef,
    pub namespace: String,
    #[source]
    pub source: kube::Error,
}

/// The live state of `source`; `None` when it does not exist.
pub async fn read(
    client: &Client,
    namespace: &str,
    source: &SourceRef,
) -> Result<Option<Live>, Error> {
    let err = |e| Error {
        source_ref: source.clone(),
        namespace: namespace.to_owned(),
        source: e,
    };
    let live = match source.kind {
        SourceKind::ConfigMap => Api::<ConfigMap>::namespaced(client.clone(), namespace)
            .get_opt(&source.name)
            .await
            .map_err(err)?
            .map(|cm| Live {
                hash: configmap_hash_of(&cm),
                annotations: cm.metadata.annotations.unwrap_or_default(),
            }),
        SourceKind::Secret => Api::<Secret>::namespaced(client.clone(), namespace)
            .get_opt(&source.name)
            .await
            .map_err(err)?
            .map(|s| Live {
                hash: secret_hash_of(&s),
                annotations: s.metadata.annotations.unwrap_or_default(),
            }),
    };
    Ok(live)
}
