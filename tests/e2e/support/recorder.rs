//! A minimal TLS webhook endpoint for tests: it answers every AdmissionReview with
//! `allowed: true` and hands the review it received to the test.

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, RuleWithOperations, ValidatingWebhook, ValidatingWebhookConfiguration,
    WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kreload::certs::Ca;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::mpsc;

pub struct Recorder {
    pub addr: SocketAddr,
    pub ca_pem: String,
    pub reviews: mpsc::UnboundedReceiver<serde_json::Value>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    pub async fn start() -> Result<Recorder> {
        Self::start_answering(true).await
    }

    /// A recorder that answers every review with `allowed`.
    pub async fn start_answering(allowed: bool) -> Result<Recorder> {
        let ca = Ca::new("recorder-ca")?;
        let leaf = ca.issue_server(&[], &["127.0.0.1".parse()?])?;
        let certs = CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes())?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, reviews) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let tx = tx.clone();
                        async move {
                            let body = req.into_body().collect().await?.to_bytes();
                            let review: serde_json::Value =
                                serde_json::from_slice(&body).unwrap_or_default();
                            let uid = review["request"]["uid"].clone();
                            let _ = tx.send(review);
                            let answer = serde_json::json!({
                                "apiVersion": "admission.k8s.io/v1",
                                "kind": "AdmissionReview",
                                "response": {"uid": uid, "allowed": allowed,
                                    "status": {"code": 403, "message": "denied by the test"}}
                            });
                            Ok::<_, hyper::Error>(
                                hyper::Response::builder()
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(answer.to_string())))
                                    .unwrap_or_default(),
                            )
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
                });
            }
        });
        Ok(Recorder {
            addr,
            ca_pem: ca.cert_pem().to_owned(),
            reviews,
            task,
        })
    }
}

impl Recorder {
    /// Registers this endpoint as a validating webhook (failurePolicy Fail) for ConfigMap
    /// UPDATEs in `namespace`, optionally only for those matching the CEL `condition`.
    pub async fn register(
        &self,
        client: &kube::Client,
        name: &str,
        namespace: &str,
        condition: Option<&str>,
    ) -> Result<()> {
        let config = ValidatingWebhookConfiguration {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            webhooks: Some(vec![ValidatingWebhook {
                name: "recorder.e2e.kreload.dev".into(),
                admission_review_versions: vec!["v1".into()],
                side_effects: "None".into(),
                failure_policy: Some("Fail".into()),
                timeout_seconds: Some(5),
                client_config: WebhookClientConfig {
                    url: Some(format!("https://{}/review", self.addr)),
                    ca_bundle: Some(ByteString(self.ca_pem.clone().into_bytes())),
                    service: None,
                },
                rules: Some(vec![RuleWithOperations {
                    api_groups: Some(vec!["".into()]),
                    api_versions: Some(vec!["v1".into()]),
                    resources: Some(vec!["configmaps".into()]),
                    operations: Some(vec!["UPDATE".into()]),
                    scope: Some("Namespaced".into()),
                }]),
                namespace_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([(
                        "kubernetes.io/metadata.name".to_owned(),
                        namespace.to_owned(),
                    )])),
                    ..Default::default()
                }),
                match_conditions: condition.map(|expression| {
                    vec![MatchCondition {
                        name: "condition".into(),
                        expression: expression.into(),
                    }]
                }),
                ..Default::default()
            }]),
        };
        Api::<ValidatingWebhookConfiguration>::all(client.clone())
            .create(&PostParams::default(), &config)
            .await?;
        Ok(())
    }
}
