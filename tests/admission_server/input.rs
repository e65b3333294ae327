//! Clients the webhook port must refuse cleanly: no certificate when one is required,
//! plaintext HTTP, TLS older than 1.2. After each, the server still serves.

use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use kreload::certs::{Ca, CertPair};
use kreload::server::{CertResolver, ConnectionLimits, server_config_with};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::support::*;

const SOON: Duration = Duration::from_secs(10);

/// A client that presents `identity` (certificate and key PEM).
fn client_with_cert(ca_pem: &str, identity: &CertPair) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(der(ca_pem)).expect("root");
    let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).expect("key");
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(ALL_VERSIONS)
            .expect("versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(vec![der(&identity.cert_pem)], key)
            .expect("client auth");
    let mut config = config;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// Answers /hello over HTTP/1.1 on `connector`, or says why not.
async fn hello(addr: std::net::SocketAddr, connector: &TlsConnector) -> Result<StatusCode, String> {
    let tls = connect(addr, connector).await.map_err(|e| e.to_string())?;
    send_h1(tls, get_request(addr, "/hello"))
        .await
        .map(|(status, _)| status)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn with_a_client_ca_only_clients_with_its_certificates_are_served() {
    let server_ca = Ca::new("serving").expect("ca");
    let (api_ca, other_ca) = (
        Ca::new("api-clients").expect("ca"),
        Ca::new("other").expect("ca"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = dir.path().join("client-ca.crt");
    std::fs::write(&ca_file, api_ca.cert_pem()).expect("write");
    let files = Projected::new(&issue(&server_ca));
    let (cert, key) = files.paths();
    let resolver = CertResolver::new(cert, key).expect("resolver");
    let tls = Arc::new(server_config_with(resolver, Some(&ca_file)).expect("config"));
    let server = start_tls(
        tls,
        app(Gate::default()),
        ConnectionLimits::default(),
        Duration::from_secs(5),
    )
    .await;

    let api_server = api_ca
        .issue_client("kube-apiserver", &[])
        .expect("client cert");
    let stranger = other_ca
        .issue_client("kube-apiserver", &[])
        .expect("client cert");
    let with = |id: &CertPair| client_with_cert(server_ca.cert_pem(), id);
    assert_eq!(
        hello(server.addr, &with(&api_server)).await,
        Ok(StatusCode::OK)
    );
    let anonymous = client(server_ca.cert_pem(), ALL_VERSIONS, b"http/1.1");
    assert!(
        hello(server.addr, &anonymous).await.is_err(),
        "served without a certificate"
    );
    assert!(
        hello(server.addr, &with(&stranger)).await.is_err(),
        "served another CA's client"
    );
    assert_eq!(
        hello(server.addr, &with(&api_server)).await,
        Ok(StatusCode::OK)
    );
}

#[tokio::test]
async fn a_missing_or_empty_client_ca_file_fails_at_start() {
    let ca = Ca::new("serving").expect("ca");
    let files = Projected::new(&issue(&ca));
    let (cert, key) = files.paths();
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.crt");
    std::fs::write(&empty, "").expect("write");
    for path in [dir.path().join("missing.crt"), empty] {
        let resolver = CertResolver::new(cert.clone(), key.clone()).expect("resolver");
        assert!(
            server_config_with(resolver, Some(&path)).is_err(),
            "{path:?}"
        );
    }
}

/// Reads what the server sends until it closes, bounded by SOON.
async fn until_closed(tcp: &mut TcpStream) -> Vec<u8> {
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(SOON, tcp.read_to_end(&mut answer))
        .await
        .expect("the server closed the connection");
    answer
}

#[tokio::test]
async fn plaintext_http_and_tls_1_0_are_refused_and_the_server_keeps_serving() {
    let ca = Ca::new("ca").expect("ca");
    let (server, _files) = start_with(&issue(&ca), Gate::default(), Duration::from_secs(5)).await;

    let mut plain = TcpStream::connect(server.addr).await.expect("tcp");
    plain
        .write_all(
            b"POST /validate/sources HTTP/1.1\r\nHost: kreload\r\nContent-Length: 2\r\n\r\n{}",
        )
        .await
        .expect("write");
    let answer = until_closed(&mut plain).await;
    assert!(!answer.starts_with(b"HTTP/"), "plaintext was served");

    // A TLS 1.0 ClientHello (one TLS_RSA_WITH_AES_128_CBC_SHA suite, no extensions): an
    // alert record (0x15) or a plain close, never a handshake.
    let mut hello_10 = vec![0x01, 0x00, 0x00, 0x29, 0x03, 0x01];
    hello_10.extend_from_slice(&[0x11; 32]);
    hello_10.extend_from_slice(&[0x00, 0x00, 0x02, 0x00, 0x2f, 0x01, 0x00]);
    let mut record = vec![0x16, 0x03, 0x01, 0x00, hello_10.len() as u8];
    record.extend_from_slice(&hello_10);
    for version in [0x01, 0x02] {
        record[10] = version; // the ClientHello's client_version: 3.1 (TLS 1.0) or 3.2 (1.1)
        let mut tcp = TcpStream::connect(server.addr).await.expect("tcp");
        tcp.write_all(&record).await.expect("write");
        let answer = until_closed(&mut tcp).await;
        assert!(answer.is_empty() || answer[0] == 0x15, "{answer:?}");
    }

    let connector = client(ca.cert_pem(), ALL_VERSIONS, b"http/1.1");
    assert_eq!(hello(server.addr, &connector).await, Ok(StatusCode::OK));
}
