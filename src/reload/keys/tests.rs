//! The vocabulary: keys under both prefixes, precedence, overrides.

use super::*;
use crate::reload::testing::pairs as map;

/// Reloader's options/flags.go, v1.4.21 (kreload's are the same under its prefix).
const SECRET_PROVIDER_CLASS_KEYS: [(Key, &str, &str); 3] = [
    (
        Key::SecretProviderClassAuto,
        "secretproviderclass.kreload.dev/auto",
        "secretproviderclass.reloader.stakater.com/auto",
    ),
    (
        Key::SecretProviderClassReload,
        "secretproviderclass.kreload.dev/reload",
        "secretproviderclass.reloader.stakater.com/reload",
    ),
    (
        Key::SecretProviderClassesExclude,
        "secretproviderclasses.exclude.kreload.dev/reload",
        "secretproviderclasses.exclude.reloader.stakater.com/reload",
    ),
];

#[test]
fn keys_under_both_prefixes() {
    let cases = [
        (Key::Auto, "kreload.dev/auto", "reloader.stakater.com/auto"),
        (
            Key::ConfigMapAuto,
            "configmap.kreload.dev/auto",
            "configmap.reloader.stakater.com/auto",
        ),
        (
            Key::SecretAuto,
            "secret.kreload.dev/auto",
            "secret.reloader.stakater.com/auto",
        ),
        (
            Key::ConfigMapReload,
            "configmap.kreload.dev/reload",
            "configmap.reloader.stakater.com/reload",
        ),
        (
            Key::SecretReload,
            "secret.kreload.dev/reload",
            "secret.reloader.stakater.com/reload",
        ),
        (
            Key::Search,
            "kreload.dev/search",
            "reloader.stakater.com/search",
        ),
        (
            Key::Match,
            "kreload.dev/match",
            "reloader.stakater.com/match",
        ),
        (
            Key::Ignore,
            "kreload.dev/ignore",
            "reloader.stakater.com/ignore",
        ),
        (
            Key::ConfigMapsExclude,
            "configmaps.exclude.kreload.dev/reload",
            "configmaps.exclude.reloader.stakater.com/reload",
        ),
        (
            Key::SecretsExclude,
            "secrets.exclude.kreload.dev/reload",
            "secrets.exclude.reloader.stakater.com/reload",
        ),
        (
            Key::PausePeriod,
            "deployment.kreload.dev/pause-period",
            "deployment.reloader.stakater.com/pause-period",
        ),
        (
            Key::PausedAt,
            "deployment.kreload.dev/paused-at",
            "deployment.reloader.stakater.com/paused-at",
        ),
        (
            Key::RolloutStrategy,
            "kreload.dev/rollout-strategy",
            "reloader.stakater.com/rollout-strategy",
        ),
        (
            Key::LastReloadedFrom,
            "kreload.dev/last-reloaded-from",
            "reloader.stakater.com/last-reloaded-from",
        ),
    ];
    assert_eq!(
        cases.len() + SECRET_PROVIDER_CLASS_KEYS.len(),
        Key::ALL.len()
    );
    for (key, ours, theirs) in cases.into_iter().chain(SECRET_PROVIDER_CLASS_KEYS) {
        assert_eq!(key.with_prefix(KRELOAD_PREFIX), ours);
        assert_eq!(key.with_prefix(RELOADER_PREFIX), theirs);
    }
}

#[test]
fn get_prefers_kreload_and_honours_compat() {
    let compat = Vocabulary::new(true);
    let strict = Vocabulary::new(false);
    let both = map(&[
        ("kreload.dev/auto", "false"),
        ("reloader.stakater.com/auto", "true"),
    ]);
    assert_eq!(compat.get(&both, Key::Auto), Some("false"));
    let theirs = map(&[("reloader.stakater.com/auto", "true")]);
    assert_eq!(compat.get(&theirs, Key::Auto), Some("true"));
    assert_eq!(strict.get(&theirs, Key::Auto), None);
    assert!(!strict.contains(&theirs, Key::Auto));
    let empty = map(&[("kreload.dev/search", "")]);
    assert!(strict.contains(&empty, Key::Search));
    assert_eq!(compat.primary(), "kreload.dev");
    assert_eq!(strict.prefixes(), ["kreload.dev"]);
    assert_eq!(Vocabulary::default(), compat);
}

#[test]
fn known_and_unknown_keys() {
    let compat = Vocabulary::new(true);
    let strict = Vocabulary::new(false);
    assert_eq!(
        compat.is_known_key("configmap.reloader.stakater.com/reload"),
        Some(Key::ConfigMapReload)
    );
    assert_eq!(
        strict.is_known_key("configmap.reloader.stakater.com/reload"),
        None
    );
    assert_eq!(
        strict.is_known_key("deployment.kreload.dev/pause-period"),
        Some(Key::PausePeriod)
    );
    assert!(compat.has_prefix("kreload.dev/autoo"));
    assert!(compat.has_prefix("configmaps.exclude.reloader.stakater.com/x"));
    assert!(!compat.has_prefix("notkreload.dev/auto"));
    assert!(!compat.has_prefix("kreload.dev"));
    assert!(!strict.has_prefix("reloader.stakater.com/auto"));
    assert!(compat.is_unknown_key("kreload.dev/autoo"));
    assert!(!compat.is_unknown_key("kreload.dev/auto"));
    assert!(!compat.is_unknown_key(OBSERVED));
    assert!(!compat.is_unknown_key("example.com/auto"));
}

#[test]
fn relevant_keeps_only_vocabulary_and_observed() {
    let all = map(&[
        ("kreload.dev/auto", "true"),
        ("reloader.stakater.com/search", "true"),
        ("kreload.dev/observed", "{}"),
        ("kreload.dev/typo", "x"),
        ("kubectl.kubernetes.io/last-applied-configuration", "{...}"),
    ]);
    let kept: Vec<String> = Vocabulary::new(true).relevant(&all).into_keys().collect();
    assert_eq!(
        kept,
        [
            "kreload.dev/auto",
            "kreload.dev/observed",
            "reloader.stakater.com/search"
        ]
    );
    let strict: Vec<String> = Vocabulary::new(false).relevant(&all).into_keys().collect();
    assert_eq!(strict, ["kreload.dev/auto", "kreload.dev/observed"]);
}

#[test]
fn the_record_answers_in_the_vocabulary_that_opted_in() {
    let compat = Vocabulary::new(true);
    let strict = Vocabulary::new(false);
    let none = map(&[]);
    let theirs = map(&[("secret.reloader.stakater.com/reload", "a")]);
    let ours = map(&[("kreload.dev/search", "true")]);
    let both = map(&[
        ("reloader.stakater.com/auto", "true"),
        ("configmap.kreload.dev/auto", "true"),
    ]);
    // A pause-period alone does not opt in, so it does not choose the vocabulary.
    let pause = map(&[("deployment.kreload.dev/pause-period", "5m")]);
    assert_eq!(compat.record_prefix(&theirs, &none), RELOADER_PREFIX);
    assert_eq!(compat.record_prefix(&ours, &theirs), KRELOAD_PREFIX);
    assert_eq!(compat.record_prefix(&both, &none), KRELOAD_PREFIX);
    assert_eq!(compat.record_prefix(&pause, &theirs), RELOADER_PREFIX);
    assert_eq!(compat.record_prefix(&none, &ours), KRELOAD_PREFIX);
    assert_eq!(compat.record_prefix(&none, &none), RELOADER_PREFIX);
    assert_eq!(strict.record_prefix(&theirs, &none), KRELOAD_PREFIX);
    assert_eq!(strict.record_prefix(&none, &none), KRELOAD_PREFIX);
}

/// Reloader's annotation-key flags replace Reloader's keys only.
#[test]
fn overrides_replace_reloaders_keys() {
    let v = Vocabulary::new(true).with_overrides([
        (Key::Auto, "example.com/auto".to_owned()),
        (Key::Match, " ".to_owned()),
    ]);
    let custom = map(&[("example.com/auto", "true")]);
    let stock = map(&[("reloader.stakater.com/auto", "true")]);
    let ours = map(&[("kreload.dev/auto", "true")]);
    assert_eq!(v.get(&custom, Key::Auto), Some("true"));
    assert_eq!(v.get(&stock, Key::Auto), None);
    assert_eq!(v.get(&ours, Key::Auto), Some("true"));
    assert_eq!(v.is_known_key("example.com/auto"), Some(Key::Auto));
    assert_eq!(v.is_known_key("reloader.stakater.com/auto"), None);
    // An empty override keeps Reloader's key.
    assert_eq!(
        v.key(RELOADER_PREFIX, Key::Match),
        "reloader.stakater.com/match"
    );
    assert_eq!(v.record_prefix(&custom, &BTreeMap::new()), RELOADER_PREFIX);
    // Without Reloader's vocabulary there is nothing to replace.
    let strict = Vocabulary::new(false).with_overrides([(Key::Auto, "example.com/auto".into())]);
    assert_eq!(strict.get(&custom, Key::Auto), None);
}

#[test]
fn parse_bool_matches_go() {
    for s in ["1", "t", "T", "TRUE", "true", "True"] {
        assert_eq!(parse_bool(s), Some(true), "{s}");
    }
    for s in ["0", "f", "F", "FALSE", "false", "False"] {
        assert_eq!(parse_bool(s), Some(false), "{s}");
    }
    for s in ["", "yes", "tRUE", " true", "true ", "2", "on"] {
        assert_eq!(parse_bool(s), None, "{s:?}");
    }
}
