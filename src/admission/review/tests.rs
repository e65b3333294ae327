use std::sync::Mutex;

use axum::body::Body;
use axum::http::Request;
use serde_json::Value;

use super::*;

const CONFIGMAP_UPDATE: &str = include_str!("../../../tests/fixtures/configmap_update.json");
const SECRET_UNREADABLE: &str = include_str!("../../../tests/fixtures/secret_unreadable.json");

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

fn recorder(answer: fn(&AdmissionRequest<DynamicObject>) -> AdmissionResponse) -> Arc<Recorder> {
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
    let (status, _, bytes) = crate::testing::oneshot(router, request).await;
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
    let data = |o: &Option<DynamicObject>| o.as_ref().map(|o| o.data["data"]["log.level"].clone());
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

/// A ConfigMap UPDATE as the API server sends it for the largest objects etcd stores
/// (1.5 MiB each) made of characters Go escapes: 1 MiB of `<` and 512 KiB of a control
/// character, each written as a six-byte `\uXXXX`.
fn escaped_review(new: &str, old: &str) -> String {
    let object = |value: &str| {
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "big", "namespace": "ns"},
            "data": {"lt": "@LT@", "ctl": "@CTL@", "v": value},
        })
    };
    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u-big",
            "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "resource": {"group": "", "version": "v1", "resource": "configmaps"},
            "name": "big",
            "namespace": "ns",
            "operation": "UPDATE",
            "userInfo": {"username": "admin"},
            "object": object(new),
            "oldObject": object(old),
        },
    });
    // serde_json leaves `<` as is; both runs go in already escaped, as Go writes them.
    review
        .to_string()
        .replace("@LT@", &"\\u003c".repeat(1 << 20))
        .replace("@CTL@", &"\\u0001".repeat(1 << 19))
}

#[tokio::test]
async fn the_largest_escaped_configmap_update_is_read_not_refused() {
    let f = fixture(DEFAULT_BODY_LIMIT);
    let body = escaped_review("2", "1");
    assert!(body.len() > 18 << 20, "{} bytes", body.len());
    let (status, answer) = call(&f.router, "POST", "/validate/sources", &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["response"]["uid"], "u-big");
    let seen = f.sources.seen.lock().expect("lock");
    assert_eq!(seen.len(), 1);
    let data = |o: &Option<DynamicObject>| o.as_ref().map(|o| o.data["data"].clone());
    let (new, old) = (data(&seen[0].object), data(&seen[0].old_object));
    assert_eq!(new.as_ref().map(|d| d["v"].clone()), Some(Value::from("2")));
    assert_eq!(old.as_ref().map(|d| d["v"].clone()), Some(Value::from("1")));
    let lt = new.as_ref().and_then(|d| d["lt"].as_str().map(str::len));
    assert_eq!(lt, Some(1 << 20));
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

/// Blocks every review until released, counting how many are inside.
struct Gate {
    inside: std::sync::atomic::AtomicUsize,
    // Permits, not a notification: a release before the review waits is not lost.
    release: tokio::sync::Semaphore,
}

impl Reviewer for Gate {
    fn review(&self, req: AdmissionRequest<DynamicObject>) -> BoxFuture<'_, AdmissionResponse> {
        Box::pin(async move {
            self.inside
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if let Ok(permit) = self.release.acquire().await {
                permit.forget();
            }
            AdmissionResponse::from(&req)
        })
    }
}

#[tokio::test]
async fn reviews_beyond_the_in_flight_limit_wait_for_a_slot() {
    let gate = Arc::new(Gate {
        inside: Default::default(),
        release: tokio::sync::Semaphore::new(0),
    });
    let load = Load::new(Limits {
        slots: 2,
        ..Limits::default()
    });
    let router = router_with_load(gate.clone(), gate.clone(), Arc::new(Metrics::new()), load);
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let router = router.clone();
            tokio::spawn(async move {
                call(&router, "POST", "/validate/sources", CONFIGMAP_UPDATE).await
            })
        })
        .collect();
    let inside = || gate.inside.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..100 {
        if inside() == 2 {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(inside(), 2, "two reviews run");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(inside(), 2, "the third waits for a slot");
    gate.release.add_permits(1);
    for _ in 0..100 {
        if inside() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(inside(), 3, "the third gets a slot once one frees");
    gate.release.add_permits(2);
    for call in calls {
        let (status, _) = call.await.expect("join");
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_or_an_allowed_answer_never_a_denial() {
    let f = fixture(DEFAULT_BODY_LIMIT);
    let mut wrong_version: Value = serde_json::from_str(CONFIGMAP_UPDATE).expect("fixture");
    wrong_version["apiVersion"] = "admission.k8s.io/v1beta1".into();
    wrong_version["kind"] = "Pod".into();
    let mut no_old: Value = serde_json::from_str(CONFIGMAP_UPDATE).expect("fixture");
    no_old["request"]
        .as_object_mut()
        .expect("request")
        .remove("oldObject");
    let mut no_uid: Value = serde_json::from_str(CONFIGMAP_UPDATE).expect("fixture");
    no_uid["request"]
        .as_object_mut()
        .expect("request")
        .remove("uid");
    let nested = format!(
        r#"{{"request":{{"uid":"u","object":{}{}}}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let invalid_utf8 = CONFIGMAP_UPDATE.replace("app-config", "app-\u{fffd}");
    let cases: Vec<(&str, String, Option<StatusCode>)> = vec![
        (
            "malformed JSON",
            "{\"request\": {".into(),
            Some(StatusCode::BAD_REQUEST),
        ),
        ("wrong apiVersion and kind", wrong_version.to_string(), None),
        ("UPDATE without oldObject", no_old.to_string(), None),
        ("no uid", no_uid.to_string(), Some(StatusCode::BAD_REQUEST)),
        // A uid to answer to: allowed, with a warning that kreload ignored the write.
        ("deeply nested", nested, None),
        ("replacement character", invalid_utf8, None),
        ("empty", String::new(), Some(StatusCode::BAD_REQUEST)),
    ];
    for (what, body, want) in cases {
        let (status, answer) = call(&f.router, "POST", "/validate/sources", &body).await;
        match want {
            Some(want) => {
                assert_eq!(status, want, "{what}: {answer}");
                assert!(answer["error"].is_string(), "{what}: {answer}");
            }
            None => {
                assert_eq!(status, StatusCode::OK, "{what}: {answer}");
                assert_eq!(answer["response"]["allowed"], true, "{what}: {answer}");
            }
        }
    }
    // Bytes that are not UTF-8 at all, inside a string and outside.
    let mut raw = CONFIGMAP_UPDATE.as_bytes().to_vec();
    let at = CONFIGMAP_UPDATE.find("app-config").expect("name");
    raw[at] = 0xff;
    let request = Request::post("/validate/sources")
        .header("content-type", "application/json")
        .body(Body::from(raw))
        .expect("request");
    let (status, _, _) = crate::testing::oneshot(&f.router, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
