//! With `--log-format=json`, a line logged inside a span still says which object it is
//! about: span fields never take the key `name`, which the JSON formatter gives to the
//! span's own name (it overwrote `name=app-config` with `"name":"admission"` before).
//!
//! A test binary of its own: it installs the process-wide subscriber.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::future::BoxFuture;
use kreload::admission::{DEFAULT_BODY_LIMIT, Reviewer, router};
use kreload::metrics::Metrics;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse};
use serde_json::Value;
use tower::ServiceExt as _;

const CONFIGMAP_UPDATE: &str = include_str!("fixtures/configmap_update.json");

/// Allows everything and logs one line inside the admission span, as the real reviewers do.
struct Allow;

impl Reviewer for Allow {
    fn review(&self, req: AdmissionRequest<DynamicObject>) -> BoxFuture<'_, AdmissionResponse> {
        let response = AdmissionResponse::from(&req);
        Box::pin(async move {
            tracing::info!("reviewed");
            response
        })
    }
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

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
    let text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
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
