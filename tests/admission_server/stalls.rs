//! Clients that hold what they opened: request bodies that stop half-way, on many HTTP/1
//! connections or many streams of one h2 connection, and bodies over the limit. Every test
//! asserts what a well-behaved client (the API server) still gets.

use std::time::Duration;

use axum::body::Body;
use axum::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::Arc;

use futures::future::BoxFuture;
use kreload::admission::{DEFAULT_BODY_LIMIT, Limits, Load, Reviewer};
use kreload::certs::Ca;
use kreload::server::ConnectionLimits;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::*;

/// Bounds a wait for something the server must do soon.
const SOON: Duration = Duration::from_secs(10);

/// A review POST whose body is sent by the returned channel, bit by bit.
fn streamed_review(
    addr: std::net::SocketAddr,
) -> (
    Request<Body>,
    tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let stream = tokio_stream_from(rx);
    let request = Request::post(format!("https://{addr}/validate/sources"))
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .expect("request");
    (request, tx)
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A complete review on a new connection gets its answer.
async fn review_is_answered(ca: &Ca, server: &Server, alpn: &[u8]) {
    let tls = connect(server.addr, &client(ca.cert_pem(), ALL_VERSIONS, alpn))
        .await
        .expect("tls");
    let request = Request::post(format!("https://{}/validate/sources", server.addr))
        .header("content-type", "application/json")
        .body(Body::from(CONFIGMAP_UPDATE))
        .expect("request");
    let send = async {
        if alpn == b"h2" {
            send_h2(tls, request).await
        } else {
            send_h1(tls, request).await
        }
    };
    let (status, body) = tokio::time::timeout(SOON, send)
        .await
        .expect("a complete review is answered while others stall")
        .expect("response");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(r#""allowed":true"#), "{body}");
}

#[tokio::test]
async fn stalled_http1_bodies_do_not_take_the_review_slots() {
    let ca = Ca::new("ca").expect("ca");
    let (server, _files) = start_with(&issue(&ca), Gate::default(), Duration::from_secs(5)).await;
    let connector = client(ca.cert_pem(), ALL_VERSIONS, b"http/1.1");
    // More stalled requests than there are review slots (32), each on its own connection.
    let mut stalled = Vec::new();
    for _ in 0..40 {
        let mut tls = connect(server.addr, &connector).await.expect("tls");
        tls.write_all(
            b"POST /validate/sources HTTP/1.1\r\nHost: kreload\r\n\
              Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
        )
        .await
        .expect("write");
        stalled.push(tls);
    }
    review_is_answered(&ca, &server, b"http/1.1").await;
    review_is_answered(&ca, &server, b"h2").await;
    drop(stalled);
}

#[tokio::test]
async fn one_h2_connection_with_many_stalled_streams_does_not_take_every_slot() {
    let ca = Ca::new("ca").expect("ca");
    let (server, _files) = start_with(&issue(&ca), Gate::default(), Duration::from_secs(5)).await;
    let tls = connect(server.addr, &client(ca.cert_pem(), ALL_VERSIONS, b"h2"))
        .await
        .expect("tls");
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let mut bodies = Vec::new();
    let mut streams = Vec::new();
    for _ in 0..40 {
        let (request, tx) = streamed_review(server.addr);
        tx.send(Ok(Bytes::from_static(b"{"))).await.expect("send");
        bodies.push(tx);
        let mut sender = sender.clone();
        streams.push(tokio::spawn(
            async move { sender.send_request(request).await },
        ));
    }
    review_is_answered(&ca, &server, b"h2").await;
    review_is_answered(&ca, &server, b"http/1.1").await;
    drop(bodies);
}

/// A body of `len` bytes that is not JSON, sent whole.
fn oversized(addr: std::net::SocketAddr, len: usize) -> Request<Body> {
    Request::post(format!("https://{addr}/validate/sources"))
        .header("content-type", "application/json")
        .body(Body::from(vec![b' '; len]))
        .expect("request")
}

#[tokio::test]
async fn an_over_limit_body_gets_its_413_over_http1() {
    let ca = Ca::new("ca").expect("ca");
    let (server, _files) = start_with(&issue(&ca), Gate::default(), Duration::from_secs(5)).await;
    let connector = client(ca.cert_pem(), ALL_VERSIONS, b"http/1.1");
    let tls = connect(server.addr, &connector).await.expect("tls");
    let request = oversized(server.addr, DEFAULT_BODY_LIMIT + 4 * 1024 * 1024);
    let (status, body) = send_h1(tls, request)
        .await
        .expect("the client reads the answer");
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(
        body.contains("too large") || body.contains("limit"),
        "{body}"
    );
}

#[tokio::test]
async fn an_over_limit_body_gets_its_413_over_h2() {
    let ca = Ca::new("ca").expect("ca");
    let (server, _files) = start_with(&issue(&ca), Gate::default(), Duration::from_secs(5)).await;
    let connector = client(ca.cert_pem(), ALL_VERSIONS, b"h2");
    let tls = connect(server.addr, &connector).await.expect("tls");
    let request = oversized(server.addr, DEFAULT_BODY_LIMIT + 4 * 1024 * 1024);
    let (status, body) = send_h2(tls, request)
        .await
        .expect("the client reads the answer");
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
}

#[tokio::test]
async fn an_over_limit_content_length_gets_a_413_over_http1() {
    let ca = Ca::new("ca").expect("ca");
    let (server, _files) = start_with(&issue(&ca), Gate::default(), Duration::from_secs(5)).await;
    let connector = client(ca.cert_pem(), ALL_VERSIONS, b"http/1.1");
    let mut tls = connect(server.addr, &connector).await.expect("tls");
    let head = format!(
        "POST /validate/sources HTTP/1.1\r\nHost: kreload\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        DEFAULT_BODY_LIMIT + 1
    );
    tls.write_all(head.as_bytes()).await.expect("write");
    // Send the body in pieces and read whatever comes back, until the server answers.
    let chunk = vec![b' '; 1024 * 1024];
    let mut sent = 0;
    while sent <= DEFAULT_BODY_LIMIT {
        let n = chunk.len().min(DEFAULT_BODY_LIMIT + 1 - sent);
        if tls.write_all(&chunk[..n]).await.is_err() {
            break;
        }
        sent += n;
    }
    let mut answer = vec![0; 512];
    let n = tokio::time::timeout(SOON, tls.read(&mut answer))
        .await
        .expect("answered")
        .expect("read the answer");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

/// Holds every review until released; `inside` counts the reviews that arrived.
struct Held {
    inside: tokio::sync::Semaphore,
    release: tokio::sync::Semaphore,
}

impl Default for Held {
    fn default() -> Self {
        Self {
            inside: tokio::sync::Semaphore::new(0),
            release: tokio::sync::Semaphore::new(0),
        }
    }
}

impl Reviewer for Held {
    fn review(&self, req: AdmissionRequest<DynamicObject>) -> BoxFuture<'_, AdmissionResponse> {
        Box::pin(async move {
            self.inside.add_permits(1);
            if let Ok(permit) = self.release.acquire().await {
                permit.forget();
            }
            AdmissionResponse::from(&req)
        })
    }
}

async fn held_server(limits: Limits) -> (Ca, Server, Projected, Arc<Held>, Arc<Load>) {
    let ca = Ca::new("ca").expect("ca");
    let held = Arc::new(Held::default());
    let load = Load::new(limits);
    let app = app_with(Gate::default(), held.clone(), load.clone());
    let (server, files) = start_app(
        &issue(&ca),
        app,
        ConnectionLimits::default(),
        Duration::from_secs(5),
    )
    .await;
    (ca, server, files, held, load)
}

/// Sends CONFIGMAP_UPDATE padded with spaces to `len` bytes, on a new h2 connection.
async fn post_review(ca_pem: &str, addr: std::net::SocketAddr, len: usize) -> (StatusCode, String) {
    let tls = connect(addr, &client(ca_pem, ALL_VERSIONS, b"h2"))
        .await
        .expect("tls");
    let mut body = CONFIGMAP_UPDATE.as_bytes().to_vec();
    body.resize(len.max(body.len()), b' ');
    let request = Request::post(format!("https://{addr}/validate/sources"))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request");
    send_h2(tls, request).await.expect("response")
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_at_the_body_deadline() {
    let limits = Limits {
        body_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let (ca, server, _files, _held, _load) = held_server(limits).await;
    let tls = connect(
        server.addr,
        &client(ca.cert_pem(), ALL_VERSIONS, b"http/1.1"),
    )
    .await
    .expect("tls");
    let (request, tx) = streamed_review(server.addr);
    tx.send(Ok(Bytes::from_static(b"{"))).await.expect("send");
    let (status, body) = tokio::time::timeout(SOON, send_h1(tls, request))
        .await
        .expect("answered at the deadline")
        .expect("response");
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{body}");
    drop(tx);
}

#[tokio::test]
async fn bodies_beyond_the_byte_bound_are_refused_and_room_comes_back() {
    // Room for one 40 KiB body at a time.
    let limits = Limits {
        body_bytes: 64 * 1024,
        body_timeout: Duration::from_millis(300),
        ..Limits::with_body_limit(64 * 1024)
    };
    let (ca, server, _files, held, load) = held_server(limits).await;
    let first = tokio::spawn({
        let (ca_pem, addr) = (ca.cert_pem().to_owned(), server.addr);
        async move { post_review(&ca_pem, addr, 40 * 1024).await }
    });
    // The first is inside the reviewer, holding its bytes.
    held.inside.acquire().await.expect("inside").forget();
    let (status, body) = post_review(ca.cert_pem(), server.addr, 40 * 1024).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("no room"), "{body}");
    held.release.add_permits(1);
    assert_eq!(first.await.expect("join").0, StatusCode::OK);
    // Room is back: the next one is reviewed.
    held.release.add_permits(1);
    let (status, _) = post_review(ca.cert_pem(), server.addr, 40 * 1024).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(load.stalled(), None);
}

#[tokio::test]
async fn taken_slots_are_reported_as_a_stall() {
    let limits = Limits {
        slots: 1,
        stall_after: Duration::from_millis(200),
        ..Limits::default()
    };
    let (ca, server, _files, held, load) = held_server(limits).await;
    let first = tokio::spawn({
        let (ca_pem, addr) = (ca.cert_pem().to_owned(), server.addr);
        async move { post_review(&ca_pem, addr, 0).await }
    });
    held.inside.acquire().await.expect("inside").forget();
    let deadline = tokio::time::Instant::now() + SOON;
    while load.stalled().is_none() {
        assert!(tokio::time::Instant::now() < deadline, "no stall reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    held.release.add_permits(1);
    assert_eq!(first.await.expect("join").0, StatusCode::OK);
    assert_eq!(load.stalled(), None, "the stall ends with the review");
}
