//! Flux installs kreload: the README's Flux example (`platform/kreload/`), applied as
//! written except for the repository URL (kreload's chart, packaged and served on loopback)
//! and Helm's wait (no kubelet runs pods here, so no Deployment ever becomes Available).
//! helm-controller creates kreload's objects, and an upgrade that changes a value is rolled
//! out. The release's `dependsOn: cert-manager` is met by a stand-in release of that name
//! carrying cert-manager's CRDs (from `hack/certmanager.sh`), which is what kreload's chart
//! needs of cert-manager to install.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use kreload_testenv::flux::Flux;
use kreload_testenv::helmrepo::HelmRepo;
use kreload_testenv::tools;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

use super::Gitops;
use crate::install::flux::platform_files;
use crate::install::{apply, crds, docs, kubectl};
use crate::support::{Env, eventually, named_namespace, trial};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    vec![trial(
        "gitops::flux_installs_kreload",
        flux_installs_kreload,
    )]
}

const NS: &str = "flux-system";
/// Flux names a release with a `targetNamespace` `<targetNamespace>-<name>`.
const RELEASE: &str = "kreload-kreload";

/// A chart named `cert-manager` holding only cert-manager's CRDs.
fn certmanager_standin(dir: &std::path::Path) -> Result<std::path::PathBuf> {
    let chart = dir.join("cert-manager");
    std::fs::create_dir_all(chart.join("crds"))?;
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: cert-manager\nversion: 0.0.1\n\
         description: \"a stand-in for cert-manager in kreload's tests, its CRDs only\"\n",
    )?;
    for entry in std::fs::read_dir(tools::certmanager_dir()?.join("crds"))? {
        let path = entry?.path();
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, chart.join("crds").join(name))?;
        }
    }
    Ok(chart)
}

/// The README's `platform/kreload/` folder rendered, with the repository URL replaced and
/// Helm's wait turned off.
fn readme_objects(env: &Env, url: &str) -> Result<Vec<Value>> {
    let readme = std::fs::read_to_string(tools::repo_root().join("README.md"))?;
    let tmp = tempfile::tempdir()?;
    for (file, body) in platform_files(&readme)? {
        std::fs::write(tmp.path().join(file), body)?;
    }
    let dir = tmp.path().to_str().context("path")?;
    let mut objects = docs(&kubectl(env, &["kustomize", dir], None)?)?;
    for o in &mut objects {
        match o["kind"].as_str() {
            Some("HelmRepository") => o["spec"]["url"] = url.into(),
            Some("HelmRelease") => {
                o["spec"]["install"]["disableWait"] = true.into();
                o["spec"]["upgrade"]["disableWait"] = true.into();
            }
            _ => {}
        }
    }
    Ok(objects)
}

/// kreload's container arguments in the Deployment helm-controller created.
fn args(env: &Env) -> Result<Vec<String>> {
    let out = kubectl(
        env,
        &[
            "-n",
            "kreload",
            "get",
            "deployment",
            RELEASE,
            "-o",
            "jsonpath={.spec.template.spec.containers[0].args}",
        ],
        None,
    )?;
    Ok(serde_json::from_str(&out)?)
}

async fn flux_installs_kreload(env: Arc<Env>) -> Result<()> {
    crds(&env).await?;
    named_namespace(&env.client, NS, &[]).await?;
    let flux = Flux::start(&tools::flux_dir()?, env.cp.kubeconfig(), NS).await?;
    let repo = HelmRepo::start().await?;
    repo.add(&tools::repo_root().join("charts/kreload"), None)?;
    let scratch = tempfile::tempdir()?;
    repo.add(&certmanager_standin(scratch.path())?, None)?;
    let gitops = Gitops {
        flux,
        repo,
        ns: NS.to_owned(),
    };
    let _cleanup = Cleanup(env.clone());
    let objects = readme_objects(&env, gitops.repo.url())?;
    let standin = json!({
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {"name": "cert-manager", "namespace": NS},
        "spec": {
            "interval": "1h",
            "chart": {"spec": {"chart": "cert-manager", "sourceRef": {"kind": "HelmRepository", "name": "kreload"}}},
        },
    });
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    apply(&env, &list.to_string(), false)?;
    apply(&env, &standin.to_string(), false)?;
    gitops.ready(&env, "cert-manager").await?;
    gitops.ready(&env, "kreload").await?;

    // What helm-controller created, found by the labels it puts on a release's objects.
    let kinds = "deployment,service,serviceaccount,clusterrole,clusterrolebinding,role,rolebinding,\
                 validatingwebhookconfiguration,mutatingwebhookconfiguration,\
                 issuers.cert-manager.io,certificates.cert-manager.io";
    let made = kubectl(
        &env,
        &[
            "get",
            kinds,
            "-A",
            "-l",
            "helm.toolkit.fluxcd.io/name=kreload",
            "-o",
            "jsonpath={range .items[*]}{.kind}/{.metadata.name}{\"\\n\"}{end}",
        ],
        None,
    )?;
    let made: Vec<&str> = made.lines().collect();
    eprintln!("gitops: Flux installed {} objects: {made:?}", made.len());
    for kind in [
        "Deployment/",
        "ClusterRole/",
        "ValidatingWebhookConfiguration/",
        "MutatingWebhookConfiguration/",
        "Issuer/",
        "Certificate/",
    ] {
        ensure!(
            made.iter().any(|m| m.starts_with(kind)),
            "no {kind} among {made:?}"
        );
    }
    let before = args(&env)?;
    ensure!(
        before.iter().any(|a| a == "--reload-strategy=annotations"),
        "the README's values are not rendered: {before:?}"
    );

    // An upgrade through Git: the strategy value changes.
    let patch = json!({"spec": {"values": {"reloader": {"reloadStrategy": "env-vars"}}}});
    gitops
        .releases(&env)
        .patch("kreload", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let upgraded = gitops.ready(&env, "kreload").await?;
    let after = eventually(
        "the upgraded Deployment",
        Duration::from_secs(60),
        || async {
            let a = args(&env)?;
            Ok(a.iter()
                .any(|x| x == "--reload-strategy=env-vars")
                .then_some(a))
        },
    )
    .await?;
    eprintln!(
        "gitops: upgrade to release revision {}: strategy arguments {:?} -> {:?}",
        upgraded["status"]["history"][0]["version"],
        before.iter().find(|a| a.starts_with("--reload-strategy")),
        after.iter().find(|a| a.starts_with("--reload-strategy")),
    );
    ensure!(
        upgraded["status"]["history"][0]["version"] == 2,
        "release history: {}",
        upgraded["status"]["history"]
    );

    // Uninstalled by helm-controller, so the webhook configurations leave the shared cluster.
    for name in ["kreload", "cert-manager"] {
        gitops
            .releases(&env)
            .delete(name, &DeleteParams::default())
            .await?;
    }
    let api = gitops.releases(&env);
    eventually(
        "helm-controller to uninstall",
        Duration::from_secs(120),
        || async { Ok(api.get_opt("kreload").await?.is_none().then_some(())) },
    )
    .await
    .with_context(|| gitops.flux.log_tail())?;
    Ok(())
}

/// Whatever happened, no webhook configuration of this release stays in the shared cluster
/// (they would send every test's writes to a Service nothing serves).
struct Cleanup(Arc<Env>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = kubectl(
            &self.0,
            &[
                "delete",
                "validatingwebhookconfigurations,mutatingwebhookconfigurations",
                "--ignore-not-found",
                "-l",
                "helm.toolkit.fluxcd.io/name=kreload",
            ],
            None,
        );
    }
}
