//! Each misuse gets its warning; correct annotations get none.

use super::*;
use crate::reload::refs::pod_refs;
use crate::reload::testing::pairs as map;

/// A pod spec using ConfigMap `app` through envFrom.
fn refs() -> PodRefs {
    let spec = serde_json::from_value(serde_json::json!({
        "containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "app"}}]}]
    }))
    .expect("pod spec");
    pod_refs(&spec)
}

fn check(
    annotations: &[(&str, &str)],
    template: &[(&str, &str)],
    found: &[(SourceRef, Lookup)],
) -> Vec<String> {
    let vocab = Vocabulary::default();
    let (a, t, r) = (map(annotations), map(template), refs());
    let s = Subject {
        kind: "Deployment",
        annotations: &a,
        template_annotations: &t,
        refs: &r,
    };
    warnings(&vocab, &s, &found.iter().cloned().collect())
}

fn one(annotations: &[(&str, &str)]) -> String {
    let w = check(annotations, &[], &[]);
    assert_eq!(w.len(), 1, "{annotations:?}: {w:?}");
    w[0].clone()
}

#[test]
fn correct_annotations_get_no_warning() {
    let found = [(
        SourceRef::configmap("app"),
        Lookup::Found(map(&[("reloader.stakater.com/match", "true")])),
    )];
    for annotations in [
        &[("reloader.stakater.com/auto", "true")][..],
        &[
            ("kreload.dev/auto", "false"),
            ("secret.kreload.dev/auto", "True"),
        ],
        &[("configmap.reloader.stakater.com/reload", "app, other-.*")],
        &[("reloader.stakater.com/search", "true")],
        &[("deployment.reloader.stakater.com/pause-period", "5m")],
        &[("kreload.dev/observed", "{}"), ("example.com/auto", "a,b")],
    ] {
        assert_eq!(
            check(annotations, &[], &found),
            Vec::<String>::new(),
            "{annotations:?}"
        );
    }
}

#[test]
fn an_unknown_key_gets_the_closest_valid_one() {
    assert_eq!(
        one(&[("reloader.stakater.com/atuo", "true")]),
        "kreload: unknown annotation reloader.stakater.com/atuo on the Deployment; did you mean reloader.stakater.com/auto?"
    );
    assert!(
        one(&[("configmap.kreload.dev/relaod", "a")])
            .ends_with("did you mean configmap.kreload.dev/reload?")
    );
    // Nothing close: no suggestion.
    assert!(one(&[("kreload.dev/completely-different", "x")]).ends_with("on the Deployment"));
    // Under the pod template too.
    let w = check(&[], &[("secret.reloader.stakater.com/autoo", "true")], &[]);
    assert_eq!(w.len(), 1);
    assert!(
        w[0].contains("on the pod template; did you mean secret.reloader.stakater.com/auto?"),
        "{w:?}"
    );
}

#[test]
fn match_and_ignore_on_a_workload() {
    for key in ["reloader.stakater.com/match", "kreload.dev/ignore"] {
        assert_eq!(
            one(&[(key, "true")]),
            format!("kreload: {key} goes on a ConfigMap or Secret; on a workload it does nothing")
        );
    }
}

#[test]
fn a_list_or_another_word_where_a_boolean_goes() {
    let list = one(&[("reloader.stakater.com/auto", "my-configmap,my-secret")]);
    assert!(
        list.contains("not a list; name sources with configmap.…/reload"),
        "{list}"
    );
    assert!(one(&[("configmap.kreload.dev/auto", "yes")]).contains("not \"yes\""));
    // search is compared with "true" exactly, as in Reloader.
    assert!(one(&[("kreload.dev/search", "True")]).contains("not \"True\""));
}

#[test]
fn an_invalid_regex_in_a_named_reload() {
    let w = one(&[("secret.reloader.stakater.com/reload", "ok, bad[")]);
    // One printable line: the API server drops a warning with a newline.
    assert_eq!(
        w,
        "kreload: invalid regex \"bad[\" in secret.reloader.stakater.com/reload: unclosed character class; the entry never matches"
    );
}

#[test]
fn warnings_are_one_short_printable_line() {
    assert_eq!(printable("a\nb\tc".into()), "a b c");
    let long = printable("é".repeat(200));
    assert!(long.len() <= WARNING_LIMIT && long.chars().all(|c| c == 'é'));
}

#[test]
fn a_named_source_that_does_not_exist() {
    let a = [("configmap.reloader.stakater.com/reload", "app, gone, re-.*")];
    let s_refs = refs();
    let (am, tm) = (map(&a), map(&[]));
    let s = Subject {
        kind: "Deployment",
        annotations: &am,
        template_annotations: &tm,
        refs: &s_refs,
    };
    // Only the plain names are looked up.
    assert_eq!(
        lookups(&Vocabulary::default(), &s),
        [SourceRef::configmap("app"), SourceRef::configmap("gone")]
    );
    let found = [
        (SourceRef::configmap("app"), Lookup::Found(map(&[]))),
        (SourceRef::configmap("gone"), Lookup::Missing),
    ];
    assert_eq!(
        check(&a, &[], &found),
        ["kreload: named reload of configmap/gone, which does not exist in this namespace"]
    );
    // Not read (budget, error): nothing said.
    assert_eq!(check(&a, &[], &[]), Vec::<String>::new());
}

#[test]
fn search_without_a_matching_source() {
    let a = [("reloader.stakater.com/search", "true")];
    let unmarked = [(SourceRef::configmap("app"), Lookup::Found(map(&[])))];
    let w = check(&a, &[], &unmarked);
    assert_eq!(w.len(), 1);
    assert!(
        w[0].contains("no ConfigMap or Secret this workload uses carries match"),
        "{w:?}"
    );
    let marked = [(
        SourceRef::configmap("app"),
        Lookup::Found(map(&[("kreload.dev/match", "true")])),
    )];
    assert!(check(&a, &[], &marked).is_empty());
    // Unread: no verdict.
    assert!(check(&a, &[], &[]).is_empty());
}

#[test]
fn distance_counts_edits() {
    assert_eq!(distance("auto", "auto"), 0);
    assert_eq!(distance("atuo", "auto"), 2);
    assert_eq!(distance("reload", "relaod"), 2);
    assert_eq!(distance("", "abc"), 3);
}
