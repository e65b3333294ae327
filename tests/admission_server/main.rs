//! The webhook server over real TLS on loopback: HTTP/1.1 and h2, TLS versions,
//! certificate rotation through kubelet's symlink swap, and graceful shutdown.

mod connections;
mod input;
mod stalls;
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use hyper::{Request, StatusCode};
use kreload::certs::Ca;
use kreload::server::CertResolver;
use rustls::ProtocolVersion;
use tokio::net::TcpStream;

use support::*;

#[tokio::test]
async fn http1_and_h2_are_served_over_tls() {
    let ca = Ca::new("ca").expect("ca");
    let (server, _files) = start_with(&issue(&ca), Gate::default(), Duration::from_secs(5)).await;

    let tls = connect(
        server.addr,
        &client(ca.cert_pem(), ALL_VERSIONS, b"http/1.1"),
    )
    .await
    .expect("h1 tls");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let answer = send_h1(tls, get_request(server.addr, "/hello"))
        .await
        .expect("h1");
    assert_eq!(answer, (StatusCode::OK, "hello".to_owned()));

    let tls = connect(server.addr, &client(ca.cert_pem(), ALL_VERSIONS, b"h2"))
        .await
        .expect("h2 tls");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let request = Request::post(format!("https://{}/validate/sources", server.addr))
        .header("content-type", "application/json")
        .body(Body::from(CONFIGMAP_UPDATE))
        .expect("request");
    let (status, body) = send_h2(tls, request).await.expect("h2");
    assert_eq!(status, StatusCode::OK);
    let review: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        review["response"]["uid"],
        "7f0c3a52-3b5e-4f4e-9d7a-1f2b3c4d5e6f"
    );
    assert_eq!(review["response"]["allowed"], true);
}

#[tokio::test]
async fn tls12_only_and_tls13_only_clients_connect() {
    let ca = Ca::new("ca").expect("ca");
    let (server, _files) = start_with(&issue(&ca), Gate::default(), Duration::from_secs(5)).await;
    for (version, expected) in [
        (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
    ] {
        let tls = connect(server.addr, &client(ca.cert_pem(), &[version], b"http/1.1"))
            .await
            .expect("tls");
        assert_eq!(tls.get_ref().1.protocol_version(), Some(expected));
        let (status, _) = send_h1(tls, get_request(server.addr, "/hello"))
            .await
            .expect("h1");
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test]
async fn a_rotated_certificate_is_served_without_a_restart() {
    let (ca_a, ca_b) = (Ca::new("ca-a").expect("ca"), Ca::new("ca-b").expect("ca"));
    let (a, b) = (issue(&ca_a), issue(&ca_b));
    let (server, files) = start_with(&a, Gate::default(), Duration::from_secs(5)).await;
    let (trusts_a, trusts_b) = (
        client(ca_a.cert_pem(), ALL_VERSIONS, b"http/1.1"),
        client(ca_b.cert_pem(), ALL_VERSIONS, b"http/1.1"),
    );
    let tls = connect(server.addr, &trusts_a).await.expect("cert a");
    assert_eq!(presented(&tls), der(&a.cert_pem));
    assert!(
        connect(server.addr, &trusts_b).await.is_err(),
        "cert a is not trusted by ca b"
    );

    files.swap("..2026_01_02_b", &b.cert_pem, &b.key_pem);
    let tls = connect(server.addr, &trusts_b).await.expect("cert b");
    assert_eq!(presented(&tls), der(&b.cert_pem));
    assert!(
        connect(server.addr, &trusts_a).await.is_err(),
        "cert b is not trusted by ca a"
    );

    // A broken update keeps the last good certificate in service.
    files.swap("..2026_01_03_c", "not a certificate", "not a key");
    let tls = connect(server.addr, &trusts_b).await.expect("still cert b");
    assert_eq!(presented(&tls), der(&b.cert_pem));
    let (status, _) = send_h1(tls, get_request(server.addr, "/hello"))
        .await
        .expect("h1");
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_default_interval_picks_up_a_rotation_within_seconds() {
    let ca = Ca::new("ca").expect("ca");
    let (a, b) = (issue(&ca), issue(&ca));
    let files = Projected::new(&a);
    let (cert, key) = files.paths();
    let server = start(
        CertResolver::new(cert, key).expect("resolver"),
        app(Gate::default()),
        Duration::from_secs(5),
    )
    .await;
    let connector = client(ca.cert_pem(), ALL_VERSIONS, b"http/1.1");
    assert_eq!(
        presented(&connect(server.addr, &connector).await.expect("tls")),
        der(&a.cert_pem)
    );

    files.swap("..2026_01_02_b", &b.cert_pem, &b.key_pem);
    // The resolver looks at most once a second; give it a bounded few.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let tls = connect(server.addr, &connector).await.expect("tls");
        if presented(&tls) == der(&b.cert_pem) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rotation not picked up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_silent_client_does_not_block_the_accept_loop() {
    let ca = Ca::new("ca").expect("ca");
    let (server, _files) = start_with(&issue(&ca), Gate::default(), Duration::from_secs(5)).await;
    let _silent = TcpStream::connect(server.addr).await.expect("tcp");
    // Well under the server's handshake timeout, so waiting out the silent client fails.
    let connector = client(ca.cert_pem(), ALL_VERSIONS, b"http/1.1");
    let tls = tokio::time::timeout(Duration::from_secs(2), connect(server.addr, &connector))
        .await
        .expect("not blocked by the silent client")
        .expect("tls");
    let (status, _) = send_h1(tls, get_request(server.addr, "/hello"))
        .await
        .expect("h1");
    assert_eq!(status, StatusCode::OK);
}

/// Connects until the server refuses; bounded, since the accept loop stops asynchronously.
async fn wait_until_refused(addr: SocketAddr) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            // A connection caught in the backlog when the listener closes is reset.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("unexpected connect error: {e}"),
            Ok(_) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "still accepting after shutdown"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_and_refuses_new_connections() {
    let ca = Ca::new("ca").expect("ca");
    let gate = Gate::default();
    let (server, _files) = start_with(&issue(&ca), gate.clone(), Duration::from_secs(30)).await;
    let connector = client(ca.cert_pem(), ALL_VERSIONS, b"http/1.1");
    let tls = connect(server.addr, &connector).await.expect("tls");
    let in_flight = tokio::spawn(send_h1(tls, get_request(server.addr, "/slow")));
    gate.started.notified().await;

    server.shutdown.cancel();
    wait_until_refused(server.addr).await;
    assert!(
        !server.task.is_finished(),
        "the server waits for the request in flight"
    );

    gate.release.notify_one();
    let answer = in_flight.await.expect("join").expect("response");
    assert_eq!(answer, (StatusCode::OK, "done".to_owned()));
    tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .expect("server returns once drained")
        .expect("join")
        .expect("serve");
}

#[tokio::test]
async fn the_drain_deadline_bounds_shutdown() {
    let ca = Ca::new("ca").expect("ca");
    let gate = Gate::default();
    let (server, _files) = start_with(&issue(&ca), gate.clone(), Duration::from_millis(200)).await;
    let tls = connect(server.addr, &client(ca.cert_pem(), ALL_VERSIONS, b"h2"))
        .await
        .expect("tls");
    let stuck = tokio::spawn(send_h2(tls, get_request(server.addr, "/slow")));
    gate.started.notified().await;

    server.shutdown.cancel();
    // The request is never released: only the deadline can end the server.
    tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .expect("server returns at the drain deadline")
        .expect("join")
        .expect("serve");
    let result = tokio::time::timeout(Duration::from_secs(5), stuck)
        .await
        .expect("client sees the close");
    assert!(
        result.expect("join").is_err(),
        "the stuck request was cut off"
    );
}
