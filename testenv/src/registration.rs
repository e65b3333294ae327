//! Running kreload outside a cluster (the demo and the end-to-end tests): register the
//! shipped webhook configurations with a `url` and `caBundle` instead of a Service, and
//! wait until a canary write proves the API server really calls kreload.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};

use kreload::reload::keys::{FIELD_MANAGER, OBSERVED};

/// The configurations shipped in `webhook/`.
pub const VALIDATING_YAML: &str = include_str!("../../webhook/validating.yaml");
pub const MUTATING_YAML: &str = include_str!("../../webhook/mutating.yaml");
/// The CSI Secrets Store trigger (`--enable-csi-integration`).
pub const CSI_YAML: &str = include_str!("../../webhook/csi/validating.yaml");

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("parsing the shipped webhook configuration")]
    Parse(#[source] serde_yaml_ng::Error),
    #[error("applying webhook configuration {name}")]
    Apply {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("canary {what}")]
    Canary {
        what: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("kreload's webhooks were not called within {0:?}")]
    NotLive(Duration),
}

/// How to register one kreload instance.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Suffix for the configuration names, so several instances can coexist.
    pub name_suffix: String,
    /// `https://127.0.0.1:9443`
    pub base_url: String,
    pub ca_pem: String,
    /// Extra labels a namespace must carry for this instance to be called.
    pub namespace_labels: BTreeMap<String, String>,
    /// Operations on ConfigMaps/Secrets to send (the shipped file has UPDATE only).
    pub source_operations: Vec<String>,
}

fn client_config(base_url: &str, ca_pem: &str, old: &WebhookClientConfig) -> WebhookClientConfig {
    let path = old
        .service
        .as_ref()
        .and_then(|s| s.path.clone())
        .unwrap_or_default();
    WebhookClientConfig {
        url: Some(format!("{base_url}{path}")),
        ca_bundle: Some(ByteString(ca_pem.as_bytes().to_vec())),
        service: None,
    }
}

fn selector(
    old: Option<LabelSelector>,
    labels: &BTreeMap<String, String>,
) -> Option<LabelSelector> {
    let mut sel = old.unwrap_or_default();
    if !labels.is_empty() {
        sel.match_labels
            .get_or_insert_with(BTreeMap::new)
            .extend(labels.clone());
    }
    Some(sel)
}

/// The shipped configurations, rewritten for a kreload reachable at `reg.base_url`.
pub fn configurations(
    reg: &Registration,
) -> Result<(ValidatingWebhookConfiguration, MutatingWebhookConfiguration), Error> {
    let mut v: ValidatingWebhookConfiguration =
        serde_yaml_ng::from_str(VALIDATING_YAML).map_err(Error::Parse)?;
    let mut m: MutatingWebhookConfiguration =
        serde_yaml_ng::from_str(MUTATING_YAML).map_err(Error::Parse)?;
    for meta in [&mut v.metadata, &mut m.metadata] {
        meta.name = meta.name.take().map(|n| format!("{n}{}", reg.name_suffix));
        // cert-manager does not run here; the caBundle is set directly.
        meta.annotations = None;
    }
    for hook in v.webhooks.iter_mut().flatten() {
        hook.client_config = client_config(&reg.base_url, &reg.ca_pem, &hook.client_config);
        hook.namespace_selector = selector(hook.namespace_selector.take(), &reg.namespace_labels);
        for rule in hook.rules.iter_mut().flatten() {
            rule.operations = Some(reg.source_operations.clone());
        }
    }
    for hook in m.webhooks.iter_mut().flatten() {
        hook.client_config = client_config(&reg.base_url, &reg.ca_pem, &hook.client_config);
        hook.namespace_selector = selector(hook.namespace_selector.take(), &reg.namespace_labels);
    }
    Ok((v, m))
}

/// The shipped CSI Secrets Store trigger, rewritten for a kreload reachable at
/// `reg.base_url` (its operations stay the shipped ones: status updates only).
pub fn csi_configuration(reg: &Registration) -> Result<ValidatingWebhookConfiguration, Error> {
    let mut v: ValidatingWebhookConfiguration =
        serde_yaml_ng::from_str(CSI_YAML).map_err(Error::Parse)?;
    v.metadata.name = v
        .metadata
        .name
        .take()
        .map(|n| format!("{n}{}", reg.name_suffix));
    v.metadata.annotations = None;
    for hook in v.webhooks.iter_mut().flatten() {
        hook.client_config = client_config(&reg.base_url, &reg.ca_pem, &hook.client_config);
        hook.namespace_selector = selector(hook.namespace_selector.take(), &reg.namespace_labels);
    }
    Ok(v)
}

/// Creates or updates the CSI Secrets Store trigger (server-side apply).
pub async fn register_csi(client: &kube::Client, reg: &Registration) -> Result<(), Error> {
    let v = csi_configuration(reg)?;
    let name = v.metadata.name.clone().unwrap_or_default();
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(with_type(&v, "ValidatingWebhookConfiguration")),
        )
        .await
        .map_err(|source| Error::Apply { name, source })?;
    Ok(())
}

/// Creates or updates both configurations (server-side apply).
pub async fn register(client: &kube::Client, reg: &Registration) -> Result<(), Error> {
    let (v, m) = configurations(reg)?;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let name = v.metadata.name.clone().unwrap_or_default();
    let mut v = v;
    v.metadata.managed_fields = None;
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .patch(
            &name,
            &params,
            &Patch::Apply(with_type(&v, "ValidatingWebhookConfiguration")),
        )
        .await
        .map_err(|source| Error::Apply { name, source })?;
    let name = m.metadata.name.clone().unwrap_or_default();
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .patch(
            &name,
            &params,
            &Patch::Apply(with_type(&m, "MutatingWebhookConfiguration")),
        )
        .await
        .map_err(|source| Error::Apply { name, source })?;
    Ok(())
}

fn with_type<T: serde::Serialize>(obj: &T, kind: &str) -> serde_json::Value {
    let mut v = serde_json::to_value(obj).unwrap_or_default();
    v["apiVersion"] = "admissionregistration.k8s.io/v1".into();
    v["kind"] = kind.into();
    v
}

/// Fetches `path` from kreload's plain-HTTP admin port; the body, when it answered 200.
pub async fn admin_get(admin: SocketAddr, path: &str) -> Option<String> {
    let stream = tokio::net::TcpStream::connect(admin).await.ok()?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .ok()?;
    let connection = tokio::spawn(connection);
    let request = http::Request::get(path)
        .header(http::header::HOST, admin.to_string())
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .ok()?;
    let response = sender.send_request(request).await.ok()?;
    let ok = response.status() == http::StatusCode::OK;
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .ok()?
        .to_bytes();
    connection.abort();
    ok.then(|| String::from_utf8_lossy(&body).into_owned())
}

/// Reads kreload's `kreload_admission_requests_total` for one endpoint from its admin port.
pub async fn admission_count(admin: SocketAddr, endpoint: &str) -> Option<f64> {
    let text = admin_get(admin, "/metrics").await?;
    let needle = format!("endpoint=\"{endpoint}\"");
    Some(
        text.lines()
            .filter(|l| l.starts_with("kreload_admission_requests_total{") && l.contains(&needle))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum(),
    )
}

/// Proves both webhooks are live: a dry-run Deployment comes back with kreload's
/// `observed` annotation (the mutating webhook ran), and a ConfigMap data change is counted
/// by kreload's sources endpoint. `namespace` must be selected by the registration.
pub async fn wait_live(
    client: &kube::Client,
    namespace: &str,
    admin: SocketAddr,
    timeout: Duration,
) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let canary = ConfigMap {
        metadata: ObjectMeta {
            name: Some("kreload-canary".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    match cms.create(&PostParams::default(), &canary).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(source) => {
            return Err(Error::Canary {
                what: "configmap",
                source,
            });
        }
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let probe: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "kreload-canary", "annotations": {"kreload.dev/auto": "true"}},
        "spec": {
            "selector": {"matchLabels": {"app": "kreload-canary"}},
            "template": {
                "metadata": {"labels": {"app": "kreload-canary"}},
                "spec": {"containers": [{"name": "c", "image": "canary",
                    "envFrom": [{"configMapRef": {"name": "kreload-canary"}}]}]}
            }
        }
    }))
    .unwrap_or_default();
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let mut round = 0u64;
    loop {
        round += 1;
        let mutated = match deployments.create(&dry, &probe).await {
            Ok(d) => d
                .metadata
                .annotations
                .is_some_and(|a| a.contains_key(OBSERVED)),
            Err(kube::Error::Api(e)) if e.code == 409 => false,
            Err(source) => {
                return Err(Error::Canary {
                    what: "deployment",
                    source,
                });
            }
        };
        let before = admission_count(admin, "sources").await.unwrap_or(0.0);
        let patch = serde_json::json!({"data": {"round": round.to_string()}});
        cms.patch(
            "kreload-canary",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|source| Error::Canary {
            what: "configmap update",
            source,
        })?;
        let after = admission_count(admin, "sources").await.unwrap_or(0.0);
        if mutated && after > before {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::NotLive(timeout));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
