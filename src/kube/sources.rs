//! Reads of ConfigMaps and Secrets: one object at a time, keeping only its content hash and
//! annotations. No source data outlives the call. A SecretProviderClass's content is read
//! from the statuses naming it ([`crate::kube::csi`]).

use std::collections::BTreeMap;

use k8s_openapi::NamespaceResourceScope;
use kube::{Api, Client, Resource, ResourceExt as _};
use serde::de::DeserializeOwned;

use crate::kube::csi;
use crate::reload::csi::confirmable;
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

/// The live state of `source`; `None` when it does not exist. For a SecretProviderClass:
/// the hash every status naming it reports, with the class's annotations (empty when the
/// class is gone, as Reloader reads them); `None` while no pod mounts it or pods disagree.
pub async fn read(
    client: &Client,
    namespace: &str,
    source: &SourceRef,
) -> Result<Option<Live>, Error> {
    read_confirming(client, namespace, source, None).await
}

/// [`read`], for confirming the admitted content hash `admitted`: a SecretProviderClass
/// then reads as that hash when any pod's status carries it.
pub async fn read_confirming(
    client: &Client,
    namespace: &str,
    source: &SourceRef,
    admitted: Option<&str>,
) -> Result<Option<Live>, Error> {
    let (at, name) = ((client, namespace), &source.name);
    let read = match source.kind {
        SourceKind::ConfigMap => read_as(at, name, configmap_hash_of).await,
        SourceKind::Secret => read_as(at, name, secret_hash_of).await,
        SourceKind::SecretProviderClass => read_class(at, name, admitted).await,
    };
    read.map_err(|source_error| Error {
        source_ref: source.clone(),
        namespace: namespace.to_owned(),
        source: source_error,
    })
}

async fn read_class(
    (client, namespace): (&Client, &str),
    name: &str,
    admitted: Option<&str>,
) -> Result<Option<Live>, kube::Error> {
    let statuses = csi::statuses(client, namespace, name).await?;
    let hashes = statuses.iter().map(|s| s.hash.as_str());
    let Some(hash) = confirmable(admitted, hashes) else {
        return Ok(None);
    };
    let labels = statuses
        .iter()
        .find(|s| s.hash == hash)
        .map(|s| s.labels.clone())
        .unwrap_or_default();
    let annotations = csi::class_annotations(client, namespace, name).await?;
    Ok(Some(Live {
        hash: hash.to_owned(),
        annotations: annotations.unwrap_or_default(),
        labels,
    }))
}

/// The annotations of `source` itself (for `explain` and the warnings); `None` when it does
/// not exist. A SecretProviderClass exists as itself, whether or not a pod mounts it.
pub async fn annotations(
    client: &Client,
    namespace: &str,
    source: &SourceRef,
) -> Result<Option<BTreeMap<String, String>>, Error> {
    if source.kind != SourceKind::SecretProviderClass {
        return Ok(read(client, namespace, source)
            .await?
            .map(|l| l.annotations));
    }
    csi::class_annotations(client, namespace, &source.name)
        .await
        .map_err(|source_error| Error {
            source_ref: source.clone(),
            namespace: namespace.to_owned(),
            source: source_error,
        })
}
