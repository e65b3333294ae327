//! With `--log-format=json`, a line logged inside a span still says which object it is
//! about: span fields never take the key `name`, which the JSON formatter gives to the
//! span's own name (it overwrote `name=app-config` with `"name":"admission"` before).
//!
//! A test binary of its own: it installs the process-wide subscriber.

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

#[tokio::test]
async fn json_lines_keep_the_objects_name() {
    let captured = Captured::default();
    let writer = captured.clone();
    // What `kreload serve --log-format=json` installs (src/logging.rs).
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .json()
        .flatten_event(true)
        .init();
    let app = router(
        Arc::new(Allow),
        Arc::new(Allow),
        Arc::new(Metrics::new()),
        DEFAULT_BODY_LIMIT,
    );
    let request = Request::post("/validate/sources")
        .header("content-type", "application/json")
        .body(Body::from(CONFIGMAP_UPDATE))
        .expect("request");
    let response = app.oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let text = captured.text();
    let line: Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "reviewed")
        .unwrap_or_else(|| panic!("no `reviewed` line in {text}"));
    let span = &line["span"];
    assert_eq!(span["name"], "admission", "{line}");
    assert_eq!(span["object.name"], "app-config", "{line}");
    assert_eq!(span["namespace"], "shop", "{line}");
}
