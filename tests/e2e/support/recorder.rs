//! A minimal TLS webhook endpoint for tests: it answers every AdmissionReview with
//! `allowed: true` and hands the review it received to the test.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use kreload::certs::Ca;
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
        let certs =
            rustls_pemfile::certs(&mut leaf.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
        let key = rustls_pemfile::private_key(&mut leaf.key_pem.as_bytes())?.context("no key")?;
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
