//! AdmissionReview in and out: parsing, the routes, metrics. The decisions live behind
//! [`Reviewer`], which sees no HTTP types.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::future::BoxFuture;
use kube::core::DynamicObject;
use kube::core::TypeMeta;
use kube::core::admission::{
    AdmissionRequest, AdmissionResponse, AdmissionReview, META_API_VERSION_V1, META_KIND, Operation,
};
use serde::Deserialize;
use tracing::{Instrument, debug, info_span, warn};

use crate::metrics::{AdmissionOutcome, Endpoint, Metrics};

/// Largest accepted request body.
///
/// A review carries the new and the old object. etcd refuses objects over 1.5 MiB, so a
/// Secret with 1 MiB of data (base64 in JSON: 1.33 MiB) plus metadata is about that size,
/// twice over: 3 MiB. The API server re-encodes ConfigMap strings as JSON, where a quote,
/// backslash or newline takes two bytes, so allow twice that plus the envelope: 8 MiB. The
/// cost is memory per in-flight request, which the API server's few connections bound.
pub const DEFAULT_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// The decision behind an admission endpoint. The response's uid is set to the request's
/// whatever the reviewer returns.
pub trait Reviewer: Send + Sync + 'static {
    fn review(&self, req: AdmissionRequest<DynamicObject>) -> BoxFuture<'_, AdmissionResponse>;
}

#[derive(Clone)]
struct Routes {
    sources: Arc<dyn Reviewer>,
    workloads: Arc<dyn Reviewer>,
    metrics: Arc<Metrics>,
}

/// `POST /validate/sources` (ConfigMap and Secret writes) and `POST /mutate/workloads`
/// (workload CREATE and UPDATE), with bodies over `body_limit` answered 413.
pub fn router(
    sources: Arc<dyn Reviewer>,
    workloads: Arc<dyn Reviewer>,
    metrics: Arc<Metrics>,
    body_limit: usize,
) -> Router {
    Router::new()
        .route("/validate/sources", post(validate_sources))
        .route("/mutate/workloads", post(mutate_workloads))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(Routes {
            sources,
            workloads,
            metrics,
        })
}

async fn validate_sources(
    State(routes): State<Routes>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(Endpoint::Sources, &*routes.sources, &routes.metrics, body).await
}

async fn mutate_workloads(
    State(routes): State<Routes>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(
        Endpoint::Workloads,
        &*routes.workloads,
        &routes.metrics,
        body,
    )
    .await
}

async fn handle(
    endpoint: Endpoint,
    reviewer: &dyn Reviewer,
    metrics: &Metrics,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let (operation, outcome, response) = match body {
        Ok(body) => answer(endpoint, reviewer, &body).await,
        Err(rejection) => {
            let status = rejection.status();
            let outcome = if status == StatusCode::PAYLOAD_TOO_LARGE {
                AdmissionOutcome::TooLarge
            } else {
                AdmissionOutcome::Malformed
            };
            warn!(endpoint = endpoint.as_str(), %status, "admission body rejected");
            (None, outcome, error(status, rejection.body_text()))
        }
    };
    metrics.admission(endpoint, operation.as_ref(), outcome, started.elapsed());
    response
}

async fn answer(
    endpoint: Endpoint,
    reviewer: &dyn Reviewer,
    body: &[u8],
) -> (Option<Operation>, AdmissionOutcome, Response) {
    let request = match parse(body) {
        Parsed::Request(request) => request,
        Parsed::Unreadable {
            uid,
            operation,
            why,
        } => {
            warn!(endpoint = endpoint.as_str(), %uid, why, "admission object unreadable");
            return (operation, AdmissionOutcome::Invalid, unreadable(uid, &why));
        }
        Parsed::Malformed(why) => {
            warn!(
                endpoint = endpoint.as_str(),
                why, "admission review malformed"
            );
            return (
                None,
                AdmissionOutcome::Malformed,
                error(StatusCode::BAD_REQUEST, why),
            );
        }
    };
    let span = info_span!(
        "admission",
        endpoint = endpoint.as_str(),
        uid = %request.uid,
        kind = %request.kind.kind,
        namespace = request.namespace.as_deref().unwrap_or(""),
        name = %request.name,
        operation = ?request.operation,
        dry_run = request.dry_run,
    );
    let uid = request.uid.clone();
    let operation = request.operation.clone();
    let mut response = reviewer.review(*request).instrument(span.clone()).await;
    response.uid = uid;
    let outcome = match (response.allowed, response.patch.is_some()) {
        (false, _) => AdmissionOutcome::Denied,
        (true, true) => AdmissionOutcome::Patched,
        (true, false) => AdmissionOutcome::Allowed,
    };
    span.in_scope(|| debug!(outcome = outcome.as_str(), "admission answered"));
    (Some(operation), outcome, review_json(response))
}

enum Parsed {
    Request(Box<AdmissionRequest<DynamicObject>>),
    /// The review names a request we can answer, but its object cannot be read.
    Unreadable {
        uid: String,
        operation: Option<Operation>,
        why: String,
    },
    /// No request uid to answer to.
    Malformed(String),
}

/// Just enough of a review to answer it when the objects do not parse.
#[derive(Deserialize)]
struct Envelope {
    request: Option<EnvelopeRequest>,
}

#[derive(Deserialize)]
struct EnvelopeRequest {
    uid: String,
    #[serde(default)]
    operation: serde_json::Value,
}

fn parse(body: &[u8]) -> Parsed {
    // serde's messages can quote values from the body, which may be Secret data, so only
    // the error's category and position are reported.
    let located = |what: &str, e: &serde_json::Error| {
        format!("{what} at line {} column {}", e.line(), e.column())
    };
    match serde_json::from_slice::<AdmissionReview<DynamicObject>>(body) {
        Ok(review) => match review.request {
            Some(request) if !request.uid.is_empty() => Parsed::Request(Box::new(request)),
            Some(_) => Parsed::Malformed("the AdmissionReview request has no uid".to_owned()),
            None => Parsed::Malformed("the AdmissionReview has no request".to_owned()),
        },
        Err(e) if !e.is_data() => Parsed::Malformed(located("the body is not JSON", &e)),
        Err(e) => match serde_json::from_slice::<Envelope>(body) {
            Ok(Envelope {
                request: Some(request),
            }) if !request.uid.is_empty() => Parsed::Unreadable {
                uid: request.uid,
                operation: serde_json::from_value(request.operation).ok(),
                why: located("the AdmissionReview request does not parse", &e),
            },
            _ => Parsed::Malformed(located("the body is not an AdmissionReview", &e)),
        },
    }
}

/// The answer to a review whose object cannot be read. Allowed: kreload never blocks a
/// write because it cannot understand it (failure policy Ignore would allow it anyway if
/// the call failed); the warning tells the writer kreload did not act on it.
fn unreadable(uid: String, why: &str) -> Response {
    let mut response = AdmissionResponse::invalid(why);
    response.uid = uid;
    response.allowed = true;
    response.warnings = Some(vec![format!("kreload ignored this write: {why}")]);
    review_json(response)
}

fn review_json(response: AdmissionResponse) -> Response {
    let types = TypeMeta {
        api_version: META_API_VERSION_V1.to_owned(),
        kind: META_KIND.to_owned(),
    };
    let review = AdmissionReview::<DynamicObject> {
        types,
        request: None,
        response: Some(response),
    };
    Json(review).into_response()
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    const CONFIGMAP_UPDATE: &str = include_str!("../../tests/fixtures/configmap_update.json");
    const SECRET_UNREADABLE: &str = include_str!("../../tests/fixtures/secret_unreadable.json");

    /// Records what it was asked and answers with `answer`.
    struct Recorder {
        seen: Mutex<Vec<AdmissionRequest<DynamicObject>>>,
        answer: fn(&AdmissionRequest<DynamicObject>) -> AdmissionResponse,
    }

    impl Reviewer for Recorder {
        fn review(&self, req: AdmissionRequest<DynamicObject>) -> BoxFuture<'_, AdmissionResponse> {
            let response = (self.answer)(&req);
            self.seen.lock().expect("lock").push(req);
            Box::pin(async move { response })
        }
    }

    fn recorder(
        answer: fn(&AdmissionRequest<DynamicObject>) -> AdmissionResponse,
    ) -> Arc<Recorder> {
        Arc::new(Recorder {
            seen: Mutex::default(),
            answer,
        })
    }

    fn allow(req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        let mut response = AdmissionResponse::from(req);
        response.warnings = Some(vec!["seen".to_owned()]);
        response
    }

    struct Fixture {
        sources: Arc<Recorder>,
        workloads: Arc<Recorder>,
        metrics: Arc<Metrics>,
        router: Router,
    }

    fn fixture(limit: usize) -> Fixture {
        let (sources, workloads) = (recorder(allow), recorder(allow));
        let metrics = Arc::new(Metrics::new());
        let router = router(sources.clone(), workloads.clone(), metrics.clone(), limit);
        Fixture {
            sources,
            workloads,
            metrics,
            router,
        }
    }

    async fn call(router: &Router, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .expect("request");
        let response = router.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn configmap_update_reaches_the_reviewer_and_the_uid_is_echoed() {
        let f = fixture(DEFAULT_BODY_LIMIT);
        let (status, body) = call(&f.router, "POST", "/validate/sources", CONFIGMAP_UPDATE).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(body["kind"], "AdmissionReview");
        assert_eq!(
            body["response"]["uid"],
            "7f0c3a52-3b5e-4f4e-9d7a-1f2b3c4d5e6f"
        );
        assert_eq!(body["response"]["allowed"], true);
        assert_eq!(body["response"]["warnings"], serde_json::json!(["seen"]));

        let seen = f.sources.seen.lock().expect("lock");
        assert_eq!(seen.len(), 1);
        let req = &seen[0];
        assert_eq!(
            (req.operation.clone(), req.name.as_str()),
            (Operation::Update, "app-config")
        );
        let data =
            |o: &Option<DynamicObject>| o.as_ref().map(|o| o.data["data"]["log.level"].clone());
        assert_eq!(data(&req.object), Some(Value::from("debug")));
        assert_eq!(data(&req.old_object), Some(Value::from("info")));
        assert!(f.workloads.seen.lock().expect("lock").is_empty());

        let text = f.metrics.encode().expect("encode");
        let line = r#"kreload_admission_requests_total{endpoint="sources",operation="UPDATE",outcome="allowed"} 1"#;
        assert!(text.contains(line), "{text}");
    }

    #[tokio::test]
    async fn the_mutate_route_goes_to_the_workload_reviewer_which_cannot_drop_the_uid() {
        let (sources, workloads) = (
            recorder(allow),
            recorder(|_| AdmissionResponse::invalid("no")),
        );
        let metrics = Arc::new(Metrics::new());
        let router = router(
            sources.clone(),
            workloads.clone(),
            metrics.clone(),
            DEFAULT_BODY_LIMIT,
        );
        let (status, body) = call(&router, "POST", "/mutate/workloads", CONFIGMAP_UPDATE).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body["response"]["uid"],
            "7f0c3a52-3b5e-4f4e-9d7a-1f2b3c4d5e6f"
        );
        assert_eq!(body["response"]["allowed"], false);
        assert_eq!(body["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(workloads.seen.lock().expect("lock").len(), 1);
        assert!(sources.seen.lock().expect("lock").is_empty());
        let text = metrics.encode().expect("encode");
        assert!(
            text.contains(r#"endpoint="workloads",operation="UPDATE",outcome="denied"} 1"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_body_that_is_not_json_is_a_400_with_a_json_error() {
        let f = fixture(DEFAULT_BODY_LIMIT);
        let (status, body) = call(&f.router, "POST", "/validate/sources", "{not json").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("not JSON")),
            "{body}"
        );
        assert!(f.sources.seen.lock().expect("lock").is_empty());
        let text = f.metrics.encode().expect("encode");
        assert!(
            text.contains(r#"operation="UNKNOWN",outcome="malformed"} 1"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_review_without_a_request_is_a_400() {
        let f = fixture(DEFAULT_BODY_LIMIT);
        for body in [
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
            r#"[1, 2]"#,
        ] {
            let (status, answer) = call(&f.router, "POST", "/validate/sources", body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert!(answer["error"].is_string(), "{answer}");
        }
    }

    #[tokio::test]
    async fn an_unreadable_object_is_answered_allowed_with_a_warning_and_no_data() {
        let f = fixture(DEFAULT_BODY_LIMIT);
        let (status, body) = call(&f.router, "POST", "/validate/sources", SECRET_UNREADABLE).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body["response"]["uid"],
            "0d9e8f7a-6b5c-4d3e-8f2a-1b0c9d8e7f6a"
        );
        assert_eq!(body["response"]["allowed"], true);
        assert!(body["response"]["warnings"][0].is_string(), "{body}");
        // serde would quote the offending value, which here is the Secret's data.
        assert!(!body.to_string().contains("aHVudGVyMg=="), "{body}");
        assert!(f.sources.seen.lock().expect("lock").is_empty());
        let text = f.metrics.encode().expect("encode");
        assert!(
            text.contains(r#"operation="CREATE",outcome="invalid"} 1"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_a_413() {
        let f = fixture(1024);
        assert!(CONFIGMAP_UPDATE.len() > 1024);
        let (status, body) = call(&f.router, "POST", "/validate/sources", CONFIGMAP_UPDATE).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(body["error"].is_string(), "{body}");
        assert!(f.sources.seen.lock().expect("lock").is_empty());
        let text = f.metrics.encode().expect("encode");
        assert!(text.contains(r#"outcome="too_large"} 1"#), "{text}");
    }

    #[tokio::test]
    async fn wrong_method_is_a_405_and_unknown_path_a_404() {
        let f = fixture(DEFAULT_BODY_LIMIT);
        let (status, _) = call(&f.router, "GET", "/validate/sources", "").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        let (status, _) = call(&f.router, "POST", "/validate/pods", CONFIGMAP_UPDATE).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
