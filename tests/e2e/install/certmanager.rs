//! Real cert-manager issues kreload's certificate from the chart's Issuer/Certificate chain,
//! its CA injector fills `caBundle` in both webhook configurations, and the API server calls
//! kreload through the chart's `clientConfig.service`, unmodified: the workload webhook sees
//! a new Deployment, and a ConfigMap edit reloads it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use kreload::reload::model::{SourceKind, SourceRef, WorkloadKind};
use kreload_testenv::certmanager::CertManager;
use kreload_testenv::tools;
use serde_json::{Value, json};

use super::served::{Release, SecretVolume, Served, secret_files};
use super::{apply, chart, crds, docs, kubectl};
use crate::support::workloads::{self as w, Form, configmap, create, data, expected_hash, get};
use crate::support::{Env, eventually, named_namespace, trial};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    vec![trial(
        "install::cert_manager_and_the_service_reference",
        issued_and_called,
    )]
}

/// A chart release installed for real in namespace `name`, acting in namespace `apps`
/// (namespaced mode, so its webhooks are called only for that namespace's writes), with
/// cert-manager running and kreload served through the Service.
pub struct Installed {
    pub name: String,
    pub apps: String,
    pub served: Served,
    pub cert_manager: CertManager,
    _cleanup: Cleanup,
}

impl Installed {
    pub fn tls_secret(&self) -> String {
        format!("{}-serving-tls", self.name)
    }
    pub fn server_name(&self) -> String {
        format!("{0}.{0}.svc", self.name)
    }
}

/// Deletes the release's webhook configurations when the test ends, however it ends: they
/// are cluster-scoped and would outlive it (everything else is namespaced).
struct Cleanup {
    selector: String,
    kubectl: std::path::PathBuf,
    kubeconfig: std::path::PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let kinds = "validatingwebhookconfigurations,mutatingwebhookconfigurations";
        let args = [
            "delete",
            kinds,
            "--ignore-not-found",
            "-l",
            self.selector.as_str(),
        ];
        let _ = tools::kubectl(&self.kubectl, &self.kubeconfig, &args, None);
    }
}

/// Installs release `name` (namespace `name`), acting in `apps`, with `sets`.
pub async fn install(env: &Arc<Env>, name: &str, apps: &str, sets: &[&str]) -> Result<Installed> {
    crds(env).await?;
    named_namespace(&env.client, name, &[]).await?;
    named_namespace(&env.client, apps, &[]).await?;
    let mut all = vec![
        "reloader.watchGlobally=false".to_owned(),
        format!("reloader.namespaces={{{apps}}}"),
    ];
    all.extend(sets.iter().map(|s| (*s).to_owned()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let rendered = docs(&chart(name, name, &refs)?)?;
    // No kubelet runs pods here: kreload runs as a process instead of the Deployment.
    let objects: Vec<&Value> = rendered
        .iter()
        .filter(|d| d["kind"] != "Deployment")
        .collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    let cleanup = Cleanup {
        selector: format!("app.kubernetes.io/instance={name}"),
        kubectl: env.cp.kubectl().context("kubectl")?.to_owned(),
        kubeconfig: env.cp.kubeconfig().to_owned(),
    };
    apply(env, &list.to_string(), false)?;
    let cert_manager = CertManager::start(&tools::certmanager_dir()?, env.cp.kubeconfig(), name)?;
    let secret = format!("{name}-serving-tls");
    let files = eventually("the serving Secret", Duration::from_secs(60), || async {
        let files = secret_files(env, name, &secret).await.ok();
        Ok(files.filter(|f| {
            ["tls.crt", "tls.key", "ca.crt"]
                .iter()
                .all(|k| f.contains_key(*k))
        }))
    })
    .await
    .with_context(|| cert_manager.log_tail())?;
    let ca = files.get("ca.crt").cloned().unwrap_or_default();
    let ca_b64 = base64_of(&ca);
    eventually(
        "caBundle in both webhook configurations",
        Duration::from_secs(60),
        || async {
            let out = kubectl(
                env,
                &[
                    "get",
                    "validatingwebhookconfigurations,mutatingwebhookconfigurations",
                    "-o",
                    "json",
                    "-l",
                    &format!("app.kubernetes.io/instance={name}"),
                ],
                None,
            )?;
            let list: Value = serde_json::from_str(&out)?;
            let bundles: Vec<&Value> = list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|c| c["webhooks"].as_array().into_iter().flatten())
                .map(|h| &h["clientConfig"]["caBundle"])
                .collect();
            Ok((bundles.len() == 2 && bundles.iter().all(|b| **b == ca_b64)).then_some(()))
        },
    )
    .await
    .with_context(|| cert_manager.log_tail())?;
    let certs = SecretVolume::new()?;
    certs.write(&files)?;
    let release = Release {
        namespace: name,
        fullname: name,
        docs: &rendered,
    };
    let served = Served::start(env, &release, certs).await?;
    // The API server learns the EndpointSlice through a watch: write a canary until kreload
    // answers for it, so no test write can go out before the route exists (and fail open).
    configmap(&env.client, apps, "canary", &[("n", "0")]).await?;
    let mut n = 0;
    eventually(
        "the API server to call kreload through the Service",
        Duration::from_secs(30),
        || {
            n += 1;
            let client = env.client.clone();
            let served = &served;
            async move {
                w::update_configmap(&client, apps, "canary", &[("n", &n.to_string())]).await?;
                let answered = served
                    .metric(
                        "kreload_admission_requests_total",
                        &["endpoint=\"sources\""],
                    )
                    .await?;
                Ok((answered > 0.0).then_some(()))
            }
        },
    )
    .await
    .with_context(|| served.log_tail())?;
    Ok(Installed {
        name: name.to_owned(),
        apps: apps.to_owned(),
        served,
        cert_manager,
        _cleanup: cleanup,
    })
}

async fn issued_and_called(env: Arc<Env>) -> Result<()> {
    let inst = install(&env, "kreload-cm", "cm-apps", &[]).await?;
    let client = env.client.clone();
    let ns = inst.apps.as_str();
    // The Service the webhooks name is the chart's, untouched.
    let hooks = kubectl(
        &env,
        &[
            "get",
            "validatingwebhookconfiguration",
            "kreload-cm-sources",
            "-o",
            "json",
        ],
        None,
    )?;
    let hooks: Value = serde_json::from_str(&hooks)?;
    ensure!(
        hooks["webhooks"][0]["clientConfig"]["service"]
            == json!({"name": "kreload-cm", "namespace": "kreload-cm", "path": "/validate/sources", "port": 443}),
        "clientConfig: {}",
        hooks["webhooks"][0]["clientConfig"]
    );
    configmap(&client, ns, "app-config", &[("k", "1")]).await?;
    let d = WorkloadKind::Deployment;
    let spec = w::pod_spec(Form::EnvFrom, SourceKind::ConfigMap, "app-config");
    create(
        &client,
        ns,
        &w::workload(
            d,
            "web",
            json!({"reloader.stakater.com/auto": "true"}),
            json!({}),
            spec,
        ),
    )
    .await?;
    // The workload webhook ran: the API server reached kreload through the Service.
    let created = get(&client, ns, d, "web").await?;
    ensure!(
        created["metadata"]["annotations"]["kreload.dev/observed"].is_string(),
        "the API server did not call the workload webhook through the Service\n{}",
        inst.served.log_tail()
    );
    eventually(
        "kreload to index the Deployment",
        Duration::from_secs(30),
        || async {
            Ok((inst.served.metric("kreload_index_workloads", &[]).await? >= 1.0).then_some(()))
        },
    )
    .await?;
    w::update_configmap(&client, ns, "app-config", &[("k", "2")]).await?;
    let source = SourceRef {
        kind: SourceKind::ConfigMap,
        name: "app-config".into(),
    };
    let want = expected_hash(SourceKind::ConfigMap, &data(&[("k", "2")]));
    eventually("the reload", Duration::from_secs(60), || async {
        Ok(
            (w::reload_env(d, &get(&client, ns, d, "web").await?, &source) == Some(want.clone()))
                .then_some(()),
        )
    })
    .await
    .with_context(|| inst.served.log_tail())?;
    let answered = inst
        .served
        .metric(
            "kreload_admission_requests_total",
            &["endpoint=\"sources\""],
        )
        .await?;
    ensure!(answered >= 1.0, "kreload answered no sources review");
    Ok(())
}

fn base64_of(bytes: &[u8]) -> Value {
    use base64::Engine as _;
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}
