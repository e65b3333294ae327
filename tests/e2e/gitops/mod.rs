//! GitOps for real: Flux's source-controller and helm-controller (built from their Go
//! modules) reconcile HelmReleases from a Helm repository served on loopback, with drift
//! detection on, while kreload reloads the applications they installed; and a workload
//! re-applied the way Argo CD applies it after a reload.

mod argocd;
mod drift;
mod install;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use k8s_openapi::api::core::v1::Event;
use kreload_testenv::flux::Flux;
use kreload_testenv::helmrepo::HelmRepo;
use kreload_testenv::tools;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

use crate::install::{apply, crds};
use crate::support::instance::Instance;
use crate::support::{Env, eventually};
use kreload::reload::model::{SourceKind, SourceRef, Strategy};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    let mut t = Vec::new();
    t.extend(drift::tests());
    t.extend(argocd::tests());
    t.extend(install::tests());
    t
}

/// The test application's chart (a Deployment opted in with `reloader.stakater.com/auto`
/// that reads a Secret, and the Secret).
pub fn app_chart() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/gitops/app")
}

/// Flux acting in `ns`, and a Helm repository holding the test application's chart.
pub struct Gitops {
    pub flux: Flux,
    pub repo: HelmRepo,
    pub ns: String,
}

impl Gitops {
    pub async fn start(env: &Env, ns: &str) -> Result<Self> {
        crds(env).await?;
        let flux = Flux::start(&tools::flux_dir()?, env.cp.kubeconfig(), ns).await?;
        let repo = HelmRepo::start().await?;
        repo.add(&app_chart(), None)?;
        let source = json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "HelmRepository",
            "metadata": {"name": "apps", "namespace": ns},
            "spec": {"interval": "1h", "url": repo.url()},
        });
        apply(env, &source.to_string(), false)?;
        Ok(Self {
            flux,
            repo,
            ns: ns.to_owned(),
        })
    }

    pub fn releases(&self, env: &Env) -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk("helm.toolkit.fluxcd.io", "v2", "HelmRelease");
        Api::namespaced_with(env.client.clone(), &self.ns, &ApiResource::from_gvk(&gvk))
    }

    /// Waits until release `name` is Ready for its current generation.
    pub async fn ready(&self, env: &Env, name: &str) -> Result<Value> {
        let api = self.releases(env);
        eventually(
            "the HelmRelease to be Ready",
            Duration::from_secs(120),
            || async {
                let hr = serde_json::to_value(api.get(name).await?)?;
                let current = hr["status"]["observedGeneration"] == hr["metadata"]["generation"];
                let ready = condition(&hr, "Ready").is_some_and(|c| c["status"] == "True");
                Ok((current && ready).then_some(hr))
            },
        )
        .await
        .with_context(|| self.flux.log_tail())
    }

    /// Asks for a reconciliation of `name` (`reconcile.fluxcd.io/requestedAt`, what
    /// `flux reconcile` writes) and waits until helm-controller has handled it.
    pub async fn reconcile(&self, env: &Env, name: &str, token: &str) -> Result<Value> {
        let api = self.releases(env);
        let patch =
            json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": token}}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        eventually(
            "helm-controller to handle the requested reconciliation",
            Duration::from_secs(120),
            || async {
                let hr = serde_json::to_value(api.get(name).await?)?;
                Ok((hr["status"]["lastHandledReconcileAt"] == token).then_some(hr))
            },
        )
        .await
        .with_context(|| self.flux.log_tail())
    }

    /// The reasons of the Events helm-controller recorded on release `name`.
    pub async fn event_reasons(&self, env: &Env, name: &str) -> Result<Vec<String>> {
        let events: Api<Event> = Api::namespaced(env.client.clone(), &self.ns);
        let lp = ListParams::default().fields(&format!(
            "involvedObject.kind=HelmRelease,involvedObject.name={name}"
        ));
        Ok(events
            .list(&lp)
            .await?
            .items
            .into_iter()
            .filter_map(|e| e.reason)
            .collect())
    }

    /// How many times helm-controller logged that it detected drift.
    pub fn drift_logged(&self) -> usize {
        self.flux
            .log_text("helm-controller")
            .matches("detected changes in cluster state")
            .count()
    }
}

pub fn condition<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// The hash of kreload's `last-reloaded-from` record on a Deployment's template: under
/// `reloader.stakater.com/`, the vocabulary the test workloads opt in with, and none under
/// `kreload.dev/`.
pub fn record_hash(obj: &Value) -> Option<String> {
    use crate::support::workloads::last_reloaded;
    let kind = kreload::reload::model::WorkloadKind::Deployment;
    match (
        last_reloaded(kind, obj, "reloader.stakater.com"),
        last_reloaded(kind, obj, "kreload.dev"),
    ) {
        (Some(record), None) => Some(record.hash),
        _ => None,
    }
}

/// The ReplicaSets in `ns`: with kube-controller-manager running, one per pod template the
/// Deployment there has had, so one more than its rollouts.
pub async fn replica_sets(env: &Env, ns: &str) -> Result<usize> {
    let api: Api<k8s_openapi::api::apps::v1::ReplicaSet> = Api::namespaced(env.client.clone(), ns);
    Ok(api.list(&ListParams::default()).await?.items.len())
}

/// kreload's value for Secret `secret` on a Deployment under `strategy`: its env var, or
/// the hash in its `last-reloaded-from` record.
pub fn kreload_value(strategy: Strategy, obj: &Value, secret: &str) -> Option<String> {
    let kind = kreload::reload::model::WorkloadKind::Deployment;
    match strategy {
        Strategy::EnvVars => crate::support::workloads::reload_env(
            kind,
            obj,
            &SourceRef::new(SourceKind::Secret, secret),
        ),
        Strategy::Annotations => record_hash(obj),
    }
}

/// A kreload instance of the test's own under `strategy` and the namespace `name-<n>` it
/// serves: its index then holds only that namespace's workloads.
pub async fn kreload_for(env: &Env, name: &str, strategy: Strategy) -> Result<(Instance, String)> {
    let mut flags = vec!["--coalesce-window=1s"];
    if strategy == Strategy::Annotations {
        flags.push("--reload-strategy=annotations");
    }
    let inst = Instance::start(&env.client, &env.kreload_kubeconfig, name, name, &flags).await?;
    let ns = crate::support::namespace(&env.client, name, &inst.labels()).await?;
    Ok((inst, ns))
}
