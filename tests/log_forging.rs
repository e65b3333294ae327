//! Request fields with newlines and escape sequences cannot forge log lines.
//!
//! A test binary of its own: it captures the process's logs through tracing's global
//! state, which unit tests running beside it on other threads would disturb.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use kreload::admission::{DEFAULT_BODY_LIMIT, router};
use kreload::metrics::Metrics;
use serde_json::Value;
use tower::ServiceExt as _;

#[path = "support/logs.rs"]
mod logs;
use logs::{Allow, Captured};

const CONFIGMAP_UPDATE: &str = include_str!("fixtures/configmap_update.json");
const SECRET_UNREADABLE: &str = include_str!("fixtures/secret_unreadable.json");

#[tokio::test]
async fn request_fields_with_newlines_and_escapes_cannot_forge_log_lines() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let app = router(
        Arc::new(Allow),
        Arc::new(Allow),
        Arc::new(Metrics::new()),
        DEFAULT_BODY_LIMIT,
    );
    let forged = "x\n2026-01-01T00:00:00Z  INFO forged: all good\u{1b}[2J";
    for fixture in [CONFIGMAP_UPDATE, SECRET_UNREADABLE] {
        let mut review: Value = serde_json::from_str(fixture).expect("fixture");
        review["request"]["uid"] = forged.into();
        review["request"]["name"] = forged.into();
        let request = Request::post("/validate/sources")
            .header("content-type", "application/json")
            .body(Body::from(review.to_string()))
            .expect("request");
        let response = app.clone().oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
    }
    let text = captured.text();
    assert!(text.contains("forged"), "the fields were logged: {text}");
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(
        text.lines()
            .all(|line| !line.starts_with("2026-01-01T00:00:00Z")),
        "{text}"
    );
}
