//! Kubeconfigs derived from the admin one: impersonating a ServiceAccount (so kreload runs
//! with exactly the RBAC the manifests grant it), or reaching the API server at another
//! address (from a test's network namespace).

use std::path::Path;

use serde_yaml_ng::Value;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {0}")]
    Read(String, #[source] std::io::Error),
    #[error("parsing {0}")]
    Parse(String, #[source] serde_yaml_ng::Error),
    #[error("{0} has no {1}")]
    Shape(String, &'static str),
    #[error("writing the kubeconfig")]
    Write(#[from] kreload::certs::Error),
}

/// What to change.
#[derive(Debug, Default, Clone)]
pub struct Derive<'a> {
    /// Impersonate this user (`system:serviceaccount:<ns>:<name>`).
    pub impersonate: Option<&'a str>,
    /// Talk to this `https://…` URL, still checking the certificate for `tls_server_name`.
    pub server: Option<&'a str>,
    pub tls_server_name: Option<&'a str>,
}

/// Writes `out`, a copy of `admin` with `change` applied to its (only) cluster and user.
pub fn derive(admin: &Path, out: &Path, change: &Derive<'_>) -> Result<(), Error> {
    let shown = admin.display().to_string();
    let text = std::fs::read_to_string(admin).map_err(|e| Error::Read(shown.clone(), e))?;
    let mut doc: Value =
        serde_yaml_ng::from_str(&text).map_err(|e| Error::Parse(shown.clone(), e))?;
    let user = doc
        .get_mut("users")
        .and_then(|u| u.get_mut(0))
        .and_then(|u| u.get_mut("user"))
        .and_then(Value::as_mapping_mut)
        .ok_or_else(|| Error::Shape(shown.clone(), "users[0].user"))?;
    if let Some(who) = change.impersonate {
        user.insert("as".into(), who.into());
    }
    let cluster = doc
        .get_mut("clusters")
        .and_then(|c| c.get_mut(0))
        .and_then(|c| c.get_mut("cluster"))
        .and_then(Value::as_mapping_mut)
        .ok_or_else(|| Error::Shape(shown.clone(), "clusters[0].cluster"))?;
    if let Some(server) = change.server {
        cluster.insert("server".into(), server.into());
    }
    if let Some(name) = change.tls_server_name {
        cluster.insert("tls-server-name".into(), name.into());
    }
    let yaml = serde_yaml_ng::to_string(&doc).map_err(|e| Error::Parse(shown, e))?;
    kreload::certs::write_file(out, &yaml, true)?;
    Ok(())
}
