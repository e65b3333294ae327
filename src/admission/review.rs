//! AdmissionReview in and out: parsing, the routes, metrics. The decisions live behind
//! [`Reviewer`], which sees no HTTP types.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::CONTENT_LENGTH;
use axum::http::{Request, StatusCode};
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

use super::load::{BodyError, Limits, Load};
use crate::logging::Escaped;
use crate::metrics::{AdmissionOutcome, Endpoint, Metrics};

/// Largest accepted request body.
///
/// The API server writes the review with Go's encoding/json (apimachinery's JSON serializer
/// uses `json.NewEncoder`, which escapes HTML), so `<`, `>`, `&`, control characters and
/// invalid UTF-8 each become a six-byte `\uXXXX`: one byte of a string can take six of JSON.
/// A review carries the object and, on UPDATE, the old one too. A reload matters only for a
/// write etcd stores, and etcd stores at most 1.5 MiB per object (its default
/// `--max-request-bytes`; the stored protobuf holds each string byte once), so each object is
/// at most 6 × 1.5 = 9 MiB of JSON and both 18 MiB; uid, kind, userInfo and options are
/// small: 20 MiB. ConfigMaps and Secrets stay under it even where etcd takes more, as
/// validation caps their data at 1 MiB (6 MiB escaped; a Secret's base64 is never escaped)
/// and annotations at 256 KiB (1.5 MiB escaped). Only such writes cost that much memory, and
/// only while in flight.
pub const DEFAULT_BODY_LIMIT: usize = 20 * 1024 * 1024;

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
    load: Arc<Load>,
}

/// `POST /validate/sources` (ConfigMap and Secret writes) and `POST /mutate/workloads`
/// (workload CREATE and UPDATE), with bodies over `body_limit` answered 413 and the other
/// bounds at their defaults ([`Limits`]).
pub fn router(
    sources: Arc<dyn Reviewer>,
    workloads: Arc<dyn Reviewer>,
    metrics: Arc<Metrics>,
    body_limit: usize,
) -> Router {
    let load = Load::new(Limits::with_body_limit(body_limit));
    router_with_load(sources, workloads, metrics, load)
}

/// [`router`] within the bounds of `load`, which the caller keeps for readiness and
/// metrics.
pub fn router_with_load(
    sources: Arc<dyn Reviewer>,
    workloads: Arc<dyn Reviewer>,
    metrics: Arc<Metrics>,
    load: Arc<Load>,
) -> Router {
    Router::new()
        .route("/validate/sources", post(validate_sources))
        .route("/mutate/workloads", post(mutate_workloads))
        .with_state(Routes {
            sources,
            workloads,
            metrics,
            load,
        })
}

async fn validate_sources(State(routes): State<Routes>, request: Request<Body>) -> Response {
    handle(Endpoint::Sources, &*routes.sources, &routes, request).await
}

async fn mutate_workloads(State(routes): State<Routes>, request: Request<Body>) -> Response {
    handle(Endpoint::Workloads, &*routes.workloads, &routes, request).await
}

/// Reads the body within the bounds, then takes a review slot, then answers.
async fn handle(
    endpoint: Endpoint,
    reviewer: &dyn Reviewer,
    routes: &Routes,
    request: Request<Body>,
) -> Response {
    let started = Instant::now();
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let (operation, outcome, response) = match routes.load.read(request.into_body(), declared).await
    {
        Ok(body) => match routes.load.slot(routes.load.limits().body_timeout).await {
            Some(_slot) => answer(endpoint, reviewer, &body.bytes).await,
            None => rejected(endpoint, BodyError::NoRoom),
        },
        Err(why) => rejected(endpoint, why),
    };
    routes
        .metrics
        .admission(endpoint, operation.as_ref(), outcome, started.elapsed());
    response
}

/// The answer to a body that was not read.
fn rejected(endpoint: Endpoint, why: BodyError) -> (Option<Operation>, AdmissionOutcome, Response) {
    let (status, outcome) = match why {
        BodyError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, AdmissionOutcome::TooLarge),
        BodyError::TimedOut(_) => (StatusCode::REQUEST_TIMEOUT, AdmissionOutcome::TimedOut),
        BodyError::NoRoom => (
            StatusCode::SERVICE_UNAVAILABLE,
            AdmissionOutcome::Overloaded,
        ),
        BodyError::Read(_) => (StatusCode::BAD_REQUEST, AdmissionOutcome::Malformed),
    };
    warn!(endpoint = endpoint.as_str(), %status, error = %why, "admission body rejected");
    (None, outcome, error(status, why.to_string()))
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
            warn!(endpoint = endpoint.as_str(), uid = %Escaped(&uid), why, "admission object unreadable");
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
        uid = %Escaped(&request.uid),
        kind = %Escaped(&request.kind.kind),
        namespace = %Escaped(request.namespace.as_deref().unwrap_or("")),
        object.name = %Escaped(&request.name),
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

/// What [`parse`] made of a body.
pub enum Parsed {
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

/// Reads an AdmissionReview body; never fails on bad input, it says what was wrong.
pub fn parse(body: &[u8]) -> Parsed {
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
mod tests;
