//! The install, proven on the real API server: the chart and the kustomize manifests
//! rendered and dry-run applied, real cert-manager issuing kreload's certificate, the API
//! server calling kreload through the shipped Service reference, the shipped RBAC, the
//! certificate rotated under load, the mutating registration of the sources trigger, the
//! README's Flux example, and the image.

mod certmanager;
mod dryrun;
pub mod flux;
mod image;
mod mutating;
mod rbac;
mod rotation;
mod served;

use std::path::Path;

use anyhow::{Context as _, Result};
use kreload_testenv::tools;
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::support::Env;

pub fn tests() -> Vec<libtest_mimic::Trial> {
    let mut t = Vec::new();
    t.extend(dryrun::tests());
    t.extend(flux::tests());
    t.extend(certmanager::tests());
    t.extend(rbac::tests());
    t.extend(rotation::tests());
    t.extend(mutating::tests());
    t.extend(image::tests());
    t
}

/// `kubectl <args>` against the shared control plane as admin, `stdin` as input.
pub fn kubectl(env: &Env, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let kubectl = env.cp.kubectl().context("kubectl is needed")?;
    Ok(tools::kubectl(kubectl, env.cp.kubeconfig(), args, stdin)?)
}

/// Server-side applies `yaml` (a dry run when `dry_run`).
pub fn apply(env: &Env, yaml: &str, dry_run: bool) -> Result<String> {
    let mut args = vec!["apply", "--server-side", "--force-conflicts", "-f", "-"];
    if dry_run {
        args.push("--dry-run=server");
    }
    kubectl(env, &args, Some(yaml))
}

/// Installs cert-manager's and Flux's CRDs once per run, as their modules publish them.
pub async fn crds(env: &Env) -> Result<()> {
    static DONE: OnceCell<()> = OnceCell::const_new();
    DONE.get_or_try_init(|| async {
        let cm = tools::certmanager_dir()?.join("crds");
        let flux = tools::flux_crds()?;
        for dir in [&cm, &flux] {
            let d = dir_str(dir)?;
            kubectl(env, &["apply", "--server-side", "-f", d], None)?;
            kubectl(
                env,
                &[
                    "wait",
                    "--for=condition=Established",
                    "--timeout=60s",
                    "-f",
                    d,
                ],
                None,
            )?;
        }
        Ok::<(), anyhow::Error>(())
    })
    .await?;
    Ok(())
}

fn dir_str(p: &Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("{} is not UTF-8", p.display()))
}

/// The documents of a rendering.
pub fn docs(yaml: &str) -> Result<Vec<Value>> {
    Ok(tools::yaml_docs(yaml)?)
}

/// The document of `kind` named `name`.
pub fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> Result<&'a Value> {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .with_context(|| format!("no {kind} {name} rendered"))
}

/// Renders the chart as release `release` in `namespace` with `--set` values.
pub fn chart(release: &str, namespace: &str, sets: &[&str]) -> Result<String> {
    let mut args = Vec::new();
    for s in sets {
        args.push("--set");
        args.push(*s);
    }
    Ok(tools::helm_template(release, namespace, &args)?)
}

/// `kubectl kustomize <dir>` of a directory in the repository.
pub fn kustomize(env: &Env, dir: &str) -> Result<String> {
    let path = tools::repo_root().join(dir);
    kubectl(env, &["kustomize", dir_str(&path)?], None)
}
