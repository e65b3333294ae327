//! What the webhook-server tests share: certificates laid out as kubelet projects them, a
//! server on loopback, and TLS clients speaking HTTP/1.1 or h2.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::routing::get;
use futures::future::BoxFuture;
use http_body_util::BodyExt;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use kreload::admission::{DEFAULT_BODY_LIMIT, Limits, Load, Reviewer, router_with_load};
use kreload::certs::{Ca, CertPair};
use kreload::metrics::Metrics;
use kreload::server::shutdown::Drain;
use kreload::server::{CertResolver, ConnectionLimits, serve_tls, server_config};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;

pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
pub const CONFIGMAP_UPDATE: &str = include_str!("../fixtures/configmap_update.json");
pub const ALL_VERSIONS: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

pub struct Allow;

impl Reviewer for Allow {
    fn review(&self, req: AdmissionRequest<DynamicObject>) -> BoxFuture<'_, AdmissionResponse> {
        Box::pin(async move { AdmissionResponse::from(&req) })
    }
}

/// Lets a test hold a request in flight: `started` fires when it arrives, it answers once
/// `release` fires.
#[derive(Clone, Default)]
pub struct Gate {
    pub started: Arc<Notify>,
    pub release: Arc<Notify>,
}

pub async fn slow(State(gate): State<Gate>) -> &'static str {
    gate.started.notify_one();
    gate.release.notified().await;
    "done"
}

pub fn app(gate: Gate) -> Router {
    app_with(
        gate,
        Arc::new(Allow),
        Load::new(Limits::with_body_limit(DEFAULT_BODY_LIMIT)),
    )
}

/// The admission routes with `reviewer` on both endpoints, within `load`, and the test
/// routes.
pub fn app_with(gate: Gate, reviewer: Arc<dyn Reviewer>, load: Arc<Load>) -> Router {
    router_with_load(reviewer.clone(), reviewer, Arc::new(Metrics::new()), load).merge(
        Router::new()
            .route("/hello", get(|| async { "hello" }))
            .route("/slow", get(slow))
            .with_state(gate),
    )
}

pub fn issue(ca: &Ca) -> CertPair {
    ca.issue_server(&["localhost".to_owned()], &[LOCALHOST])
        .expect("leaf")
}

pub fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).expect("pem")
}

/// Certificates laid out as kubelet projects a Secret: `tls.crt -> ..data/tls.crt`,
/// `..data -> ..<generation>`, swapped by renaming a new `..data` link over the old one.
pub struct Projected {
    dir: tempfile::TempDir,
}

impl Projected {
    pub fn new(pair: &CertPair) -> Self {
        let projected = Self {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        projected.swap("..2026_01_01_a", &pair.cert_pem, &pair.key_pem);
        for name in ["tls.crt", "tls.key"] {
            symlink(
                Path::new("..data").join(name),
                projected.dir.path().join(name),
            )
            .expect("link");
        }
        projected
    }

    pub fn swap(&self, generation: &str, cert: &str, key: &str) {
        let root = self.dir.path();
        fs::create_dir(root.join(generation)).expect("generation");
        fs::write(root.join(generation).join("tls.crt"), cert).expect("cert");
        fs::write(root.join(generation).join("tls.key"), key).expect("key");
        symlink(generation, root.join("..data_tmp")).expect("tmp link");
        fs::rename(root.join("..data_tmp"), root.join("..data")).expect("swap");
    }

    pub fn paths(&self) -> (PathBuf, PathBuf) {
        (
            self.dir.path().join("tls.crt"),
            self.dir.path().join("tls.key"),
        )
    }
}

pub struct Server {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<Result<(), kreload::server::ServerError>>,
}

pub async fn start(resolver: Arc<CertResolver>, app: Router, grace: Duration) -> Server {
    start_limited(resolver, app, ConnectionLimits::default(), grace).await
}

pub async fn start_limited(
    resolver: Arc<CertResolver>,
    app: Router,
    limits: ConnectionLimits,
    grace: Duration,
) -> Server {
    let tls = Arc::new(server_config(resolver).expect("config"));
    start_tls(tls, app, limits, grace).await
}

/// Serves `app` with an explicit TLS configuration.
pub async fn start_tls(
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    limits: ConnectionLimits,
    grace: Duration,
) -> Server {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    let drain = Drain::new(shutdown.clone(), grace);
    let task = tokio::spawn(serve_tls(listener, tls, app, limits, drain));
    Server {
        addr,
        shutdown,
        task,
    }
}

pub async fn start_with(pair: &CertPair, gate: Gate, grace: Duration) -> (Server, Projected) {
    start_with_limits(pair, gate, ConnectionLimits::default(), grace).await
}

pub async fn start_with_limits(
    pair: &CertPair,
    gate: Gate,
    limits: ConnectionLimits,
    grace: Duration,
) -> (Server, Projected) {
    start_app(pair, app(gate), limits, grace).await
}

pub async fn start_app(
    pair: &CertPair,
    app: Router,
    limits: ConnectionLimits,
    grace: Duration,
) -> (Server, Projected) {
    let projected = Projected::new(pair);
    let (cert, key) = projected.paths();
    let resolver = CertResolver::with_check_interval(cert, key, Duration::ZERO).expect("resolver");
    (start_limited(resolver, app, limits, grace).await, projected)
}

pub fn client(
    ca_pem: &str,
    versions: &[&'static SupportedProtocolVersion],
    alpn: &[u8],
) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(der(ca_pem)).expect("root");
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    TlsConnector::from(Arc::new(config))
}

pub async fn connect(
    addr: SocketAddr,
    connector: &TlsConnector,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    connector
        .connect(ServerName::IpAddress(LOCALHOST.into()), tcp)
        .await
}

pub fn presented(tls: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    tls.get_ref()
        .1
        .peer_certificates()
        .expect("peer certificates")[0]
        .clone()
        .into_owned()
}

pub async fn send_h1(
    tls: TlsStream<TcpStream>,
    request: Request<Body>,
) -> hyper::Result<(StatusCode, String)> {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

pub async fn send_h2(
    tls: TlsStream<TcpStream>,
    request: Request<Body>,
) -> hyper::Result<(StatusCode, String)> {
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

pub fn get_request(addr: SocketAddr, path: &str) -> Request<Body> {
    Request::get(format!("https://{addr}{path}"))
        .body(Body::empty())
        .expect("request")
}
