//! kreload runs in the tests with exactly the access the manifests grant it: the
//! ClusterRole and bindings of `manifests/base/rbac.yaml` are applied as they are (the chart
//! renders the same rules; tests/e2e/install checks that), and every instance gets a
//! kubeconfig that impersonates their ServiceAccount `kreload/kreload`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use kreload_testenv::controlplane::ControlPlane;
use kreload_testenv::kubeconfig::{self, Derive};
use kreload_testenv::tools;

/// The ServiceAccount the shipped RBAC binds, as the API server names it.
pub const SHIPPED_USER: &str = "system:serviceaccount:kreload:kreload";

pub fn shipped_rbac() -> PathBuf {
    tools::repo_root().join("manifests/base/rbac.yaml")
}

/// Applies the shipped RBAC in namespace `kreload` and writes a kubeconfig impersonating
/// its ServiceAccount; returns the kubeconfig's path.
pub fn grant_shipped(cp: &ControlPlane) -> Result<PathBuf> {
    let kubectl = cp
        .kubectl()
        .context("kubectl is needed for the e2e tests")?;
    let kc = cp.kubeconfig();
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kreload\n";
    tools::kubectl(
        kubectl,
        kc,
        &["apply", "--server-side", "-f", "-"],
        Some(ns),
    )?;
    let rbac = shipped_rbac();
    tools::kubectl(
        kubectl,
        kc,
        &[
            "apply",
            "--server-side",
            "-n",
            "kreload",
            "-f",
            path_str(&rbac)?,
        ],
        None,
    )?;
    impersonating(
        cp.kubeconfig(),
        &cp.dir().join("kreload.kubeconfig"),
        SHIPPED_USER,
    )
}

/// Writes `out`: the admin kubeconfig impersonating `user`.
pub fn impersonating(admin: &Path, out: &Path, user: &str) -> Result<PathBuf> {
    kubeconfig::derive(
        admin,
        out,
        &Derive {
            impersonate: Some(user),
            ..Default::default()
        },
    )?;
    Ok(out.to_owned())
}

pub fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("{} is not UTF-8", p.display()))
}
