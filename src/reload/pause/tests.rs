use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::*;
use crate::reload::testing::pairs as map;

const PERIOD: &str = "deployment.reloader.stakater.com/pause-period";
const PAUSED_AT: &str = "deployment.reloader.stakater.com/paused-at";
const K_PERIOD: &str = "deployment.kreload.dev/pause-period";
const K_PAUSED_AT: &str = "deployment.kreload.dev/paused-at";

/// Both prefixes, as kreload runs by default.
static DEFAULT: std::sync::LazyLock<Vocabulary> = std::sync::LazyLock::new(Vocabulary::default);

fn view<'a>(
    vocabulary: &'a Vocabulary,
    annotations: &'a BTreeMap<String, String>,
    paused: bool,
) -> PauseView<'a> {
    PauseView {
        vocabulary,
        annotations,
        paused,
    }
}

fn t(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

/// A Deployment document with these annotations and `spec.paused`, so ops can be applied.
fn doc(annotations: &BTreeMap<String, String>, paused: bool) -> Value {
    json!({
        "metadata": {"resourceVersion": "7", "annotations": annotations},
        "spec": {"paused": paused, "template": {}},
    })
}

fn apply(doc: &Value, ops: Vec<PatchOperation>) -> Value {
    let mut doc = doc.clone();
    json_patch::patch(&mut doc, &guarded("7", ops)).expect("ops apply");
    doc
}

const NOW: &str = "2025-03-01T12:00:00.750Z";

#[test]
fn first_reload_pauses_under_the_period_prefix() {
    for (period_key, paused_at_key) in [(PERIOD, PAUSED_AT), (K_PERIOD, K_PAUSED_AT)] {
        let annotations = map(&[(period_key, "5m"), ("team", "a")]);
        let view = view(&DEFAULT, &annotations, false);
        let OnReload::Pause { ops, until } = on_reload(WorkloadKind::Deployment, &view, t(NOW))
        else {
            panic!("expected a pause");
        };
        // The window counts from the whole second written in paused-at.
        assert_eq!(until, t("2025-03-01T12:05:00Z"));
        let after = apply(&doc(&annotations, false), ops);
        assert_eq!(after["spec"]["paused"], true);
        assert_eq!(
            after["metadata"]["annotations"][paused_at_key],
            "2025-03-01T12:00:00Z"
        );
        assert_eq!(after["metadata"]["annotations"]["team"], "a");
        assert_eq!(
            after["metadata"]["annotations"]
                .as_object()
                .map(|m| m.len()),
            Some(3)
        );
    }
}

#[test]
fn kreload_period_wins_and_a_stale_paused_at_elsewhere_is_removed() {
    let vocabulary = Vocabulary::default();
    let annotations = map(&[
        (K_PERIOD, "10s"),
        (PERIOD, "1h"),
        (PAUSED_AT, "2020-01-01T00:00:00Z"),
    ]);
    let view = view(&vocabulary, &annotations, false);
    let OnReload::Pause { ops, until } = on_reload(WorkloadKind::Deployment, &view, t(NOW)) else {
        panic!("expected a pause");
    };
    assert_eq!(until, t("2025-03-01T12:00:10Z"));
    let after = apply(&doc(&annotations, false), ops);
    let a = &after["metadata"]["annotations"];
    assert_eq!(a[K_PAUSED_AT], "2025-03-01T12:00:00Z");
    assert!(a.get(PAUSED_AT).is_none());
}

type Case<'a> = (
    &'a str,
    WorkloadKind,
    &'a Vocabulary,
    BTreeMap<String, String>,
    bool,
    OnReload,
);

fn cases_without_a_pause<'a>(vocabulary: &'a Vocabulary, strict: &'a Vocabulary) -> Vec<Case<'a>> {
    vec![
        (
            "no period",
            WorkloadKind::Deployment,
            vocabulary,
            map(&[("x", "y")]),
            false,
            OnReload::NoPause,
        ),
        (
            "not a deployment",
            WorkloadKind::StatefulSet,
            vocabulary,
            map(&[(PERIOD, "5m")]),
            false,
            OnReload::NoPause,
        ),
        (
            "reloader key without compat",
            WorkloadKind::Deployment,
            strict,
            map(&[(PERIOD, "5m")]),
            false,
            OnReload::NoPause,
        ),
        (
            "invalid period",
            WorkloadKind::Deployment,
            vocabulary,
            map(&[(PERIOD, "5 minutes")]),
            false,
            OnReload::InvalidPeriod(DurationError::UnknownUnit {
                value: "5 minutes".into(),
                unit: " minutes".into(),
            }),
        ),
        (
            "zero period",
            WorkloadKind::Deployment,
            vocabulary,
            map(&[(PERIOD, "0s")]),
            false,
            OnReload::InvalidPeriod(DurationError::NotPositive("0s".into())),
        ),
        (
            "paused by hand",
            WorkloadKind::Deployment,
            vocabulary,
            map(&[(PERIOD, "5m")]),
            true,
            OnReload::PausedByOthers,
        ),
        (
            // Without compat the Reloader paused-at is not kreload's to manage.
            "paused under a disabled prefix",
            WorkloadKind::Deployment,
            strict,
            map(&[(K_PERIOD, "5m"), (PAUSED_AT, "2025-03-01T11:59:00Z")]),
            true,
            OnReload::PausedByOthers,
        ),
    ]
}

#[test]
fn reloads_that_do_not_pause() {
    let vocabulary = Vocabulary::default();
    let strict = Vocabulary::new(false);
    let now = t(NOW);
    let cases = cases_without_a_pause(&vocabulary, &strict);
    for (name, kind, vocabulary, annotations, paused, want) in cases {
        let view = view(vocabulary, &annotations, paused);
        assert_eq!(on_reload(kind, &view, now), want, "{name}");
    }
}

#[test]
fn a_reload_inside_the_window_keeps_paused_at() {
    let annotations = map(&[(PERIOD, "5m"), (PAUSED_AT, "2025-03-01T11:58:00Z")]);
    let view = view(&DEFAULT, &annotations, true);
    assert_eq!(
        on_reload(WorkloadKind::Deployment, &view, t(NOW)),
        OnReload::InWindow {
            until: t("2025-03-01T12:03:00Z")
        }
    );
    // Go writes local time with an offset; it is the same instant.
    let annotations = map(&[(PERIOD, "5m"), (PAUSED_AT, "2025-03-01T13:58:00+02:00")]);
    let view = PauseView {
        annotations: &annotations,
        ..view
    };
    assert_eq!(
        on_reload(WorkloadKind::Deployment, &view, t(NOW)),
        OnReload::InWindow {
            until: t("2025-03-01T12:03:00Z")
        }
    );
}

#[test]
fn a_reload_after_the_window_resumes_in_the_same_patch() {
    let cases = [
        (
            map(&[(PERIOD, "1m"), (PAUSED_AT, "2025-03-01T11:59:00Z")]),
            ResumeReason::Elapsed,
        ),
        (
            map(&[(PAUSED_AT, "2025-03-01T11:59:30Z")]),
            ResumeReason::PeriodRemoved,
        ),
        (
            map(&[(PERIOD, "1 hour"), (PAUSED_AT, "2025-03-01T11:59:30Z")]),
            ResumeReason::InvalidPeriod(DurationError::UnknownUnit {
                value: "1 hour".into(),
                unit: " hour".into(),
            }),
        ),
        (
            map(&[(PERIOD, "1h"), (PAUSED_AT, "yesterday")]),
            ResumeReason::InvalidPausedAt("yesterday".into()),
        ),
    ];
    for (annotations, want) in cases {
        let view = view(&DEFAULT, &annotations, true);
        let OnReload::Resume { ops, reason } = on_reload(WorkloadKind::Deployment, &view, t(NOW))
        else {
            panic!("expected a resume for {annotations:?}");
        };
        assert_eq!(reason, want);
        let after = apply(&doc(&annotations, true), ops);
        assert_eq!(after["spec"]["paused"], false);
        assert!(after["metadata"]["annotations"].get(PAUSED_AT).is_none());
    }
}

#[test]
fn timer_waits_resumes_or_forgets() {
    let ours = map(&[(PERIOD, "5m"), (PAUSED_AT, "2025-03-01T12:00:00Z")]);
    let view = view(&DEFAULT, &ours, true);
    assert_eq!(
        on_timer(&view, t("2025-03-01T12:04:59Z")),
        OnTimer::Wait {
            until: t("2025-03-01T12:05:00Z")
        }
    );
    let OnTimer::Resume { ops, reason } = on_timer(&view, t("2025-03-01T12:05:00Z")) else {
        panic!("expected a resume at the deadline");
    };
    assert_eq!(reason, ResumeReason::Elapsed);
    let after = apply(&doc(&ours, true), ops);
    assert_eq!(after["spec"]["paused"], false);
    assert_eq!(
        after["metadata"]["annotations"],
        json!({PERIOD: "5m"}),
        "only paused-at is removed"
    );

    // Resumed by someone else: only the left-over paused-at goes; spec is not touched.
    let resumed = PauseView {
        paused: false,
        ..view
    };
    let OnTimer::Forget { ops } = on_timer(&resumed, t("2025-03-01T12:01:00Z")) else {
        panic!("expected forget");
    };
    assert!(
        !ops.iter()
            .any(|op| op.path().to_string().starts_with("/spec")),
        "{ops:?}"
    );
    let after = apply(&doc(&ours, false), ops);
    assert_eq!(after["metadata"]["annotations"], json!({PERIOD: "5m"}));
}

#[test]
fn timer_never_resumes_what_kreload_did_not_pause() {
    let vocabulary = Vocabulary::default();
    let by_hand = map(&[(PERIOD, "5m")]);
    for paused in [true, false] {
        let view = PauseView {
            vocabulary: &vocabulary,
            annotations: &by_hand,
            paused,
        };
        assert_eq!(on_timer(&view, t("2030-01-01T00:00:00Z")), OnTimer::NotOurs);
    }
    let strict = Vocabulary::new(false);
    let reloaders = map(&[(PERIOD, "5m"), (PAUSED_AT, "2025-03-01T12:00:00Z")]);
    let view = PauseView {
        vocabulary: &strict,
        annotations: &reloaders,
        paused: true,
    };
    assert_eq!(on_timer(&view, t("2030-01-01T00:00:00Z")), OnTimer::NotOurs);
}

#[test]
fn resume_removes_paused_at_under_every_enabled_prefix() {
    let both = map(&[
        (K_PERIOD, "1m"),
        (K_PAUSED_AT, "2025-03-01T11:00:00Z"),
        (PAUSED_AT, "2025-03-01T11:00:00Z"),
    ]);
    let view = view(&DEFAULT, &both, true);
    let OnTimer::Resume { ops, .. } = on_timer(&view, t(NOW)) else {
        panic!("expected a resume");
    };
    let after = apply(&doc(&both, true), ops);
    assert_eq!(after["metadata"]["annotations"], json!({K_PERIOD: "1m"}));
}

#[test]
fn check_at_from_index_annotations() {
    let vocabulary = Vocabulary::default();
    let now = t(NOW);
    assert_eq!(check_at(&vocabulary, &map(&[(PERIOD, "5m")]), now), None);
    assert_eq!(
        check_at(
            &vocabulary,
            &map(&[(PERIOD, "5m"), (PAUSED_AT, "2025-03-01T12:00:00Z")]),
            now
        ),
        Some(t("2025-03-01T12:05:00Z"))
    );
    for over in [
        map(&[(PERIOD, "5m"), (PAUSED_AT, "2025-03-01T11:00:00Z")]),
        map(&[(PAUSED_AT, "2025-03-01T12:00:00Z")]),
        map(&[(PERIOD, "5m"), (PAUSED_AT, "soon")]),
    ] {
        assert_eq!(check_at(&vocabulary, &over, now), Some(now), "{over:?}");
    }
}

#[test]
fn paused_at_is_rfc3339_utc_whole_seconds() {
    assert_eq!(paused_at_value(t(NOW)), "2025-03-01T12:00:00Z");
    assert_eq!(
        paused_at_value(t("2025-03-01T12:00:00Z")),
        "2025-03-01T12:00:00Z"
    );
}

#[test]
fn guarded_patch_tests_the_resource_version_first() {
    let patch = guarded("42", vec![add(&["spec", "paused"], Value::Bool(true))]);
    let v = serde_json::to_value(&patch).expect("json");
    assert_eq!(
        v,
        json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": "42"},
            {"op": "add", "path": "/spec/paused", "value": true},
        ])
    );
    let escaped =
        serde_json::to_value(remove(&["metadata", "annotations", PAUSED_AT])).expect("json");
    assert_eq!(
        escaped["path"],
        "/metadata/annotations/deployment.reloader.stakater.com~1paused-at"
    );
}
