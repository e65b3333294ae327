//! What one client may hold of the webhook listener: a cap on open connections, the HTTP/1
//! header timeout, and h2 keep-alive pings that close a connection whose peer went silent.

use std::time::Duration;

use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use kreload::certs::Ca;
use kreload::server::ConnectionLimits;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::*;

/// Long enough that a server that should answer at once clearly has not.
const NOT_SERVED: Duration = Duration::from_millis(500);
/// Bounds a wait for something the server must do soon.
const SOON: Duration = Duration::from_secs(5);

async fn server(limits: ConnectionLimits) -> (Ca, Server, Projected) {
    let ca = Ca::new("ca").expect("ca");
    let (server, files) =
        start_with_limits(&issue(&ca), Gate::default(), limits, Duration::from_secs(5)).await;
    (ca, server, files)
}

#[tokio::test]
async fn connections_over_the_cap_wait_until_one_closes() {
    let limits = ConnectionLimits {
        max_connections: 1,
        ..ConnectionLimits::default()
    };
    let (ca, server, _files) = server(limits).await;
    let connector = client(ca.cert_pem(), ALL_VERSIONS, b"http/1.1");

    // The first connection takes the only slot and keeps it open (HTTP/1.1 keep-alive).
    let first = connect(server.addr, &connector).await.expect("first tls");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(first))
        .await
        .expect("h1 handshake");
    let first_conn = tokio::spawn(conn);
    let response = sender
        .send_request(get_request(server.addr, "/hello"))
        .await
        .expect("first request");
    assert_eq!(response.status(), StatusCode::OK);

    // The second waits in the listen backlog: its TLS handshake gets no answer.
    let mut second = tokio::spawn({
        let (addr, connector) = (server.addr, connector.clone());
        async move { connect(addr, &connector).await }
    });
    assert!(
        tokio::time::timeout(NOT_SERVED, &mut second).await.is_err(),
        "a connection over the cap was served"
    );

    // Closing the first frees its slot, and the second is served.
    drop(sender);
    first_conn
        .await
        .expect("join")
        .expect("first closed cleanly");
    let tls = tokio::time::timeout(SOON, second)
        .await
        .expect("served once a slot is free")
        .expect("join")
        .expect("second tls");
    let (status, _) = send_h1(tls, get_request(server.addr, "/hello"))
        .await
        .expect("second request");
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_http1_client_that_never_finishes_its_headers_is_cut_off() {
    let limits = ConnectionLimits {
        header_read_timeout: Duration::from_millis(200),
        ..ConnectionLimits::default()
    };
    let (ca, server, _files) = server(limits).await;
    let connector = client(ca.cert_pem(), ALL_VERSIONS, b"http/1.1");
    let mut tls = connect(server.addr, &connector).await.expect("tls");
    tls.write_all(b"POST /validate/sources HTTP/1.1\r\nHost: kreload\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    // Ok, or an error for a close without TLS close_notify: either way, closed.
    let _ = tokio::time::timeout(SOON, tls.read_to_end(&mut answer))
        .await
        .expect("the server closed the connection");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
}

/// The h2 frame types in `bytes` (9-byte headers: 24-bit length, type, flags, stream id).
fn frame_types(mut bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while bytes.len() >= 9 {
        let len = usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
        types.push(bytes[3]);
        bytes = bytes.get(9 + len..).unwrap_or_default();
    }
    types
}

#[tokio::test]
async fn an_h2_peer_that_stops_answering_pings_is_disconnected() {
    const PING: u8 = 0x6;
    let limits = ConnectionLimits {
        keep_alive_interval: Duration::from_millis(200),
        keep_alive_timeout: Duration::from_millis(200),
        ..ConnectionLimits::default()
    };
    let (ca, server, _files) = server(limits).await;
    let connector = client(ca.cert_pem(), ALL_VERSIONS, b"h2");
    let mut tls = connect(server.addr, &connector).await.expect("tls");
    // The client preface and an empty SETTINGS frame; then silence, so no PING is acked.
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .expect("write");
    let mut frames = Vec::new();
    let _ = tokio::time::timeout(SOON, tls.read_to_end(&mut frames))
        .await
        .expect("the server closed the connection");
    assert!(frame_types(&frames).contains(&PING), "{frames:?}");
}

/// Waits until the server closes `stream` (EOF or an error for a close without TLS
/// close_notify), bounded by SOON.
async fn closed_by_server<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(SOON, stream.read_to_end(&mut buf))
        .await
        .expect("the server closed the connection");
}

/// Only the idle deadline can close these connections: every other timeout is long.
fn only_idle(idle: Duration) -> ConnectionLimits {
    ConnectionLimits {
        idle_timeout: idle,
        handshake_timeout: Duration::from_secs(600),
        header_read_timeout: Duration::from_secs(600),
        keep_alive_interval: Duration::from_secs(600),
        keep_alive_timeout: Duration::from_secs(600),
        ..ConnectionLimits::default()
    }
}

#[tokio::test]
async fn tls_connections_silent_after_the_handshake_are_closed() {
    let (ca, server, _files) = server(only_idle(Duration::from_millis(300))).await;
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let connector = client(ca.cert_pem(), ALL_VERSIONS, alpn);
        let mut tls = connect(server.addr, &connector).await.expect("tls");
        closed_by_server(&mut tls).await;
    }
    // And the server still serves.
    let connector = client(ca.cert_pem(), ALL_VERSIONS, b"http/1.1");
    let tls = connect(server.addr, &connector).await.expect("tls");
    let (status, _) = send_h1(tls, get_request(server.addr, "/hello"))
        .await
        .expect("h1");
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_connection_silent_before_the_handshake_is_closed_at_the_idle_deadline() {
    let (_ca, server, _files) = server(only_idle(Duration::from_millis(300))).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("tcp");
    closed_by_server(&mut tcp).await;
}
