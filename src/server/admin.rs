//! The plain-HTTP admin port: liveness, readiness and metrics.
//!
//! Readiness has its own port so kubelet can probe it without the webhook certificate,
//! and so it can say "not ready" before the TLS listener exists.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tracing::warn;

use crate::metrics::{Metrics, OPENMETRICS_CONTENT_TYPE};

/// Whether this replica should receive admission requests; cheap to clone and share.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    inner: Arc<Flags>,
}

/// A condition checked on every readiness probe: `Some(why)` while it keeps the replica
/// from being ready.
pub type Probe = Arc<dyn Fn() -> Option<String> + Send + Sync>;

#[derive(Default)]
struct Flags {
    tls_bound: AtomicBool,
    index_synced: AtomicBool,
    stopping: AtomicBool,
    probes: Mutex<Vec<Probe>>,
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flags")
            .field("tls_bound", &self.tls_bound)
            .field("index_synced", &self.index_synced)
            .field("stopping", &self.stopping)
            .finish_non_exhaustive()
    }
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// The webhook listener is bound and serving.
    pub fn set_tls_bound(&self) {
        self.inner.tls_bound.store(true, Ordering::Release);
    }

    /// The workload index has its first full list.
    pub fn set_index_synced(&self) {
        self.inner.index_synced.store(true, Ordering::Release);
    }

    /// Shutting down: not ready from now on, whatever else is set later.
    pub fn set_not_ready(&self) {
        self.inner.stopping.store(true, Ordering::Release);
    }

    /// Adds a condition to readiness (a stalled admission path, say).
    pub fn add_probe(&self, probe: Probe) {
        self.inner
            .probes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(probe);
    }

    pub fn is_ready(&self) -> bool {
        self.missing().is_empty()
    }

    /// The conditions that keep this replica from being ready.
    fn missing(&self) -> Vec<String> {
        let flags = &self.inner;
        if flags.stopping.load(Ordering::Acquire) {
            return vec!["shutting down".to_owned()];
        }
        let mut missing = Vec::new();
        if !flags.tls_bound.load(Ordering::Acquire) {
            missing.push("webhook listener not bound".to_owned());
        }
        if !flags.index_synced.load(Ordering::Acquire) {
            missing.push("workload index not synced".to_owned());
        }
        let probes = flags.probes.lock().unwrap_or_else(PoisonError::into_inner);
        missing.extend(probes.iter().filter_map(|probe| probe()));
        missing
    }
}

#[derive(Clone)]
struct Admin {
    readiness: Readiness,
    metrics: Arc<Metrics>,
}

/// `GET /livez`, `GET /readyz` and `GET /metrics`.
pub fn admin_router(readiness: Readiness, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(Admin { readiness, metrics })
}

async fn livez() -> &'static str {
    "ok"
}

async fn readyz(State(admin): State<Admin>) -> Response {
    let missing = admin.readiness.missing();
    if missing.is_empty() {
        "ok".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}", missing.join(", ")),
        )
            .into_response()
    }
}

async fn metrics_text(State(admin): State<Admin>) -> Response {
    match admin.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], text).into_response(),
        Err(error) => {
            warn!(%error, "encoding metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;

    use super::*;
    use crate::metrics::{AdmissionOutcome, Endpoint};

    async fn get(router: &Router, uri: &str) -> (StatusCode, Option<String>, String) {
        let request = Request::get(uri).body(Body::empty()).expect("request");
        let (status, headers, bytes) = crate::testing::oneshot(router, request).await;
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (
            status,
            content_type,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    #[tokio::test]
    async fn readyz_is_503_until_both_conditions_hold_and_again_when_stopping() {
        let readiness = Readiness::new();
        let router = admin_router(readiness.clone(), Arc::new(Metrics::new()));

        let (status, _, body) = get(&router, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body.contains("listener not bound") && body.contains("index not synced"),
            "{body}"
        );

        readiness.set_tls_bound();
        let (status, _, body) = get(&router, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            !body.contains("listener") && body.contains("index not synced"),
            "{body}"
        );
        assert!(!readiness.is_ready());

        readiness.set_index_synced();
        assert_eq!(get(&router, "/readyz").await.0, StatusCode::OK);
        assert!(readiness.is_ready());

        readiness.set_not_ready();
        let (status, _, body) = get(&router, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("shutting down"), "{body}");
        assert_eq!(get(&router, "/livez").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_probe_that_reports_a_problem_makes_readyz_503_until_it_clears() {
        let readiness = Readiness::new();
        readiness.set_tls_bound();
        readiness.set_index_synced();
        let stalled = Arc::new(AtomicBool::new(true));
        let flag = stalled.clone();
        readiness.add_probe(Arc::new(move || {
            flag.load(Ordering::Acquire)
                .then(|| "admissions stalled for 6s".to_owned())
        }));
        let router = admin_router(readiness.clone(), Arc::new(Metrics::new()));
        let (status, _, body) = get(&router, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("admissions stalled"), "{body}");
        stalled.store(false, Ordering::Release);
        assert_eq!(get(&router, "/readyz").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn metrics_are_served_as_openmetrics_text() {
        let metrics = Arc::new(Metrics::new());
        let router = admin_router(Readiness::new(), metrics.clone());
        metrics.admission(
            Endpoint::Workloads,
            None,
            AdmissionOutcome::Malformed,
            std::time::Duration::from_millis(1),
        );
        let (status, content_type, body) = get(&router, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type.as_deref(), Some(OPENMETRICS_CONTENT_TYPE));
        assert!(
            body.contains(r#"kreload_admission_requests_total{endpoint="workloads",operation="UNKNOWN",outcome="malformed"} 1"#),
            "{body}"
        );
        assert!(body.ends_with("# EOF\n"));
    }
}
