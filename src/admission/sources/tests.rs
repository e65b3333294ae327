//! The inline decision for ConfigMap/Secret writes, driven with AdmissionRequests shaped
//! like the API server's.

use kube::core::admission::AdmissionReview;
use serde_json::{Value, json};

use super::*;

const FIXTURE: &str = include_str!("../../../tests/fixtures/configmap_update.json");

fn request(edit: impl FnOnce(&mut Value)) -> AdmissionRequest<DynamicObject> {
    let mut review: Value = serde_json::from_str(FIXTURE).expect("fixture");
    edit(&mut review["request"]);
    let review: AdmissionReview<DynamicObject> = serde_json::from_value(review).expect("review");
    review.try_into().expect("request")
}

fn admit_with(filter: &Scope, req: &AdmissionRequest<DynamicObject>) -> Admitted {
    admit(filter, &Vocabulary::new(true), req, |_| true)
}

fn enqueued(a: Admitted) -> Intent {
    match a {
        Admitted::Enqueue(i) => i,
        Admitted::Skip(reason) => panic!("skipped: {reason}"),
    }
}

#[test]
fn a_data_change_enqueues_the_new_hash_and_the_old_one_as_base() {
    let intent = enqueued(admit_with(&Scope::default(), &request(|_| {})));
    let hash = |level: &str| {
        let data = BTreeMap::from([
            ("feature.flags".to_owned(), "a,b".to_owned()),
            ("log.level".to_owned(), level.to_owned()),
        ]);
        configmap_hash(Some(&data), None)
    };
    assert_eq!(intent.namespace, "shop");
    assert_eq!(intent.source.name, "app-config");
    assert_eq!(intent.operation, Operation::Update);
    assert_eq!(intent.hash, Some(hash("debug")));
    assert_eq!(intent.base, Some(hash("info")));
}

#[test]
fn writes_that_cannot_reload_anything_are_skipped() {
    let none = Scope::default();
    let cases: Vec<(&str, Scope, AdmissionRequest<DynamicObject>)> = vec![
        (
            "content unchanged",
            none.clone(),
            request(|r| r["object"]["data"] = r["oldObject"]["data"].clone()),
        ),
        (
            "dry run",
            none.clone(),
            request(|r| r["dryRun"] = json!(true)),
        ),
        (
            "ignore annotation",
            none.clone(),
            request(|r| {
                r["object"]["metadata"]["annotations"]["kreload.dev/ignore"] = json!("true")
            }),
        ),
        (
            "operation not watched",
            none.clone(),
            request(|r| r["operation"] = json!("CREATE")),
        ),
        (
            "namespace not watched",
            Scope {
                own_namespace: Some("shop".into()),
                ..none.clone()
            },
            request(|_| {}),
        ),
        (
            "namespace not watched",
            Scope {
                namespaces_to_ignore: ["shop".to_owned()].into(),
                ..none.clone()
            },
            request(|_| {}),
        ),
        (
            "namespace not watched",
            Scope {
                namespaces: ["other".to_owned()].into(),
                ..none.clone()
            },
            request(|_| {}),
        ),
        (
            "kind ignored",
            Scope {
                ignored_kinds: [SourceKind::ConfigMap].into(),
                ..none.clone()
            },
            request(|_| {}),
        ),
    ];
    for (reason, filter, req) in cases {
        assert_eq!(
            admit_with(&filter, &req),
            Admitted::Skip(reason),
            "{reason}"
        );
    }
}

#[test]
fn no_candidates_or_an_ignore_annotation_skip_the_write() {
    let none = Scope::default();
    // Nothing opted in lives in the namespace.
    let req = request(|_| {});
    assert_eq!(
        admit(&none, &Vocabulary::new(true), &req, |_| false),
        Admitted::Skip("no opted-in workload in namespace")
    );
    // Reloader's ignore key too, unless compatibility is off.
    let req = request(|r| {
        r["object"]["metadata"]["annotations"]["reloader.stakater.com/ignore"] = json!("true")
    });
    assert_eq!(admit_with(&none, &req), Admitted::Skip("ignore annotation"));
    assert!(matches!(
        admit(&none, &Vocabulary::new(false), &req, |_| true),
        Admitted::Enqueue(_)
    ));
}

#[test]
fn create_and_delete_count_only_when_asked() {
    let create = request(|r| {
        r["operation"] = json!("CREATE");
        r["oldObject"] = Value::Null;
    });
    let on = Scope {
        reload_on_create: true,
        reload_on_delete: true,
        ..Default::default()
    };
    let intent = enqueued(admit_with(&on, &create));
    assert_eq!((intent.operation, intent.base), (Operation::Create, None));
    assert!(intent.hash.is_some());

    let delete = request(|r| {
        r["operation"] = json!("DELETE");
        r["object"] = Value::Null;
    });
    assert_eq!(
        admit_with(&Scope::default(), &delete),
        Admitted::Skip("operation not watched")
    );
    let intent = enqueued(admit_with(&on, &delete));
    assert_eq!(intent.operation, Operation::Delete);
    assert_eq!(intent.hash, None);
    assert!(
        intent.base.is_some(),
        "a delete's base is the deleted content"
    );
}

#[test]
fn secrets_hash_their_decoded_bytes() {
    let req = request(|r| {
        for key in ["kind", "requestKind"] {
            r[key]["kind"] = json!("Secret");
        }
        r["object"]["kind"] = json!("Secret");
        r["oldObject"]["kind"] = json!("Secret");
        r["object"]["data"] = json!({"password": "czNjcjN0"}); // "s3cr3t"
        r["oldObject"]["data"] = json!({"password": "b2xk"}); // "old"
    });
    let intent = enqueued(admit_with(&Scope::default(), &req));
    assert_eq!(intent.source.kind, SourceKind::Secret);
    // sha1("password=s3cr3t"), computed with: python3 -c "import hashlib;
    // print(hashlib.sha1(b'password=s3cr3t').hexdigest())"
    assert_eq!(
        intent.hash.as_deref(),
        Some("d93dd00779cd04e2ec1db21fa3d0e20deea13f9c")
    );
}

const SPCPS_FIXTURE: &str = include_str!("../../../tests/fixtures/spcps_update.json");

fn status_request(edit: impl FnOnce(&mut Value)) -> AdmissionRequest<DynamicObject> {
    let mut review: Value = serde_json::from_str(SPCPS_FIXTURE).expect("fixture");
    edit(&mut review["request"]);
    let review: AdmissionReview<DynamicObject> = serde_json::from_value(review).expect("review");
    review.try_into().expect("request")
}

#[test]
fn a_rotation_is_a_change_of_the_class_the_status_names() {
    let intent = enqueued(admit_with(&Scope::default(), &status_request(|_| {})));
    assert_eq!(intent.namespace, "shop");
    assert_eq!(
        intent.source,
        SourceRef::secret_provider_class("vault-db"),
        "the class, not the status"
    );
    assert_eq!(intent.operation, Operation::Update);
    // Reloader's hash (reload::hash::tests::secret_provider_class_is_reloaders_hash).
    assert_eq!(
        intent.hash.as_deref(),
        Some("a75cc321702f1128daaf6dab6634e2916a6f7bb6")
    );
    let old = crate::reload::hash::secret_provider_class_hash(
        "vault-db",
        [("secret/api-key", "7"), ("secret/db-password", "v1")],
    );
    assert_eq!(intent.base, Some(old));
}

#[test]
fn status_writes_that_rotate_nothing_are_skipped() {
    let on_create = Scope {
        reload_on_create: true,
        reload_on_delete: true,
        ..Scope::default()
    };
    let cases: Vec<(&str, Scope, AdmissionRequest<DynamicObject>)> = vec![
        (
            "content unchanged",
            Scope::default(),
            status_request(|r| r["object"]["status"] = r["oldObject"]["status"].clone()),
        ),
        (
            // Only the target path or mounted flag moved: the versions are the content.
            "content unchanged",
            Scope::default(),
            status_request(|r| {
                r["object"]["status"] = r["oldObject"]["status"].clone();
                r["object"]["status"]["targetPath"] = json!("/elsewhere");
                r["object"]["metadata"]["labels"]["x"] = json!("y");
            }),
        ),
        (
            // Reloader ignores status creates and deletes, even with reload-on-create.
            "operation not watched",
            on_create.clone(),
            status_request(|r| {
                r["operation"] = json!("CREATE");
                r["oldObject"] = Value::Null;
            }),
        ),
        (
            "operation not watched",
            on_create,
            status_request(|r| {
                r["operation"] = json!("DELETE");
                r["object"] = Value::Null;
            }),
        ),
        (
            // Without --enable-csi-integration the kind is ignored.
            "kind ignored",
            Scope {
                ignored_kinds: [SourceKind::SecretProviderClass].into(),
                ..Scope::default()
            },
            status_request(|_| {}),
        ),
        (
            "unreadable object",
            Scope::default(),
            status_request(|r| r["object"]["status"]["objects"] = json!("v2")),
        ),
        (
            "unreadable object",
            Scope::default(),
            status_request(|r| {
                r["object"]["status"]
                    .as_object_mut()
                    .map(|s| s.remove("secretProviderClassName"));
            }),
        ),
    ];
    for (want, scope, req) in cases {
        assert_eq!(admit_with(&scope, &req), Admitted::Skip(want), "{want}");
    }
    // A status's own annotations are not the class's: ignore there does not apply.
    let annotated = status_request(|r| {
        r["object"]["metadata"]["annotations"] = json!({"reloader.stakater.com/ignore": "true"})
    });
    enqueued(admit_with(&Scope::default(), &annotated));
    // A write of the class itself is no content change.
    let class = status_request(|r| r["kind"]["kind"] = json!("SecretProviderClass"));
    assert_eq!(
        admit_with(&Scope::default(), &class),
        Admitted::Skip("not a configmap or secret")
    );
}
