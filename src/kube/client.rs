//! The API client: in-cluster, or from a kubeconfig file.

use std::path::Path;

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading kubeconfig {path}")]
    Read {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("using kubeconfig {path}")]
    Config {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("no Kubernetes configuration (in-cluster or KUBECONFIG)")]
    Infer(#[source] kube::Error),
    #[error("building the client")]
    Build(#[source] kube::Error),
}

/// A client for the kubeconfig at `path` (its current context).
pub async fn from_kubeconfig(path: &Path) -> Result<Client, Error> {
    let shown = path.display().to_string();
    let kc = Kubeconfig::read_from(path).map_err(|source| Error::Read {
        path: shown.clone(),
        source,
    })?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|source| Error::Config {
            path: shown,
            source,
        })?;
    Client::try_from(config).map_err(Error::Build)
}

/// A client for `kubeconfig` when given, else the in-cluster (or default) configuration.
pub async fn connect(kubeconfig: Option<&Path>) -> Result<Client, Error> {
    match kubeconfig {
        Some(path) => from_kubeconfig(path).await,
        None => Client::try_default().await.map_err(Error::Infer),
    }
}
