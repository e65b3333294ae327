//! Reads of ConfigMaps and Secrets: one object at a time, keeping only its content hash and
//! annotations. No source data outlives the call.

use std::collections::BTreeMap;

use k8s_openapi::NamespaceResourceScope;
use kube::{Api, Client, Resource, ResourceExt as _};
use serde::de::DeserializeOwned;

use crate::reload::hash::{configmap_hash_of, secret_hash_of};
use crate::reload::model::{SourceKind, SourceRef};

/// What kreload keeps of a live source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    pub hash: String,
    pub annotations: BTreeMap<String, String>,
    /// For `--resource-label-selector` (the resync checks it; admission has the object).
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
#[error("reading {source_ref} in {namespace}")]
pub struct Error {
    pub source_ref: SourceRef,
    pub namespace: String,
    #[source]
    pub source: kube::Error,
}

/// One typed read: the object's content hash and annotations, if it exists.
async fn read_as<K>(
    (client, namespace): (&Client, &str),
    name: &str,
    hash: fn(&K) -> String,
) -> Result<Option<Live>, kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    Ok(api.get_opt(name).await?.map(|obj| Live {
        hash: hash(&obj),
        annotations: obj.annotations().clone(),
        labels: obj.labels().clone(),
    }))
}

/// The live state of `source`; `None` when it does not exist.
pub async fn read(
    client: &Client,
    namespace: &str,
    source: &SourceRef,
) -> Result<Option<Live>, Error> {
    let (at, name) = ((client, namespace), &source.name);
    let read = match source.kind {
        SourceKind::ConfigMap => read_as(at, name, configmap_hash_of).await,
        SourceKind::Secret => read_as(at, name, secret_hash_of).await,
    };
    read.map_err(|source_error| Error {
        source_ref: source.clone(),
        namespace: namespace.to_owned(),
        source: source_error,
    })
}
