//! Every annotation key, env var prefix and field-manager name kreload uses, in one place.
//!
//! kreload reads two vocabularies: its own (`kreload.dev`) and, for drop-in compatibility,
//! Stakater Reloader's (`reloader.stakater.com`). Where both carry a key, kreload's wins.

use std::collections::BTreeMap;

/// kreload's own annotation prefix.
pub const KRELOAD_PREFIX: &str = "kreload.dev";
/// Stakater Reloader's annotation prefix, read when `--compat-reloader` is on.
pub const RELOADER_PREFIX: &str = "reloader.stakater.com";
/// Field manager for every write kreload makes.
pub const FIELD_MANAGER: &str = "kreload";
/// Env var prefix; the same as Reloader's for both vocabularies so a migration keeps the
/// variable (and so the pod template) unchanged.
pub const ENV_PREFIX: &str = "STAKATER_";
/// Workload metadata annotation recording the content hashes the pod template reflects.
pub const OBSERVED: &str = "kreload.dev/observed";

/// One annotation of the user-facing vocabulary (README, "Opting in"), independent of its prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Auto,
    ConfigMapAuto,
    SecretAuto,
    ConfigMapReload,
    SecretReload,
    Search,
    Match,
    Ignore,
    ConfigMapsExclude,
    SecretsExclude,
    PausePeriod,
    PausedAt,
    RolloutStrategy,
    LastReloadedFrom,
}

impl Key {
    /// Every key, for scans such as [`Vocabulary::is_known_key`].
    pub const ALL: [Key; 14] = [
        Key::Auto,
        Key::ConfigMapAuto,
        Key::SecretAuto,
        Key::ConfigMapReload,
        Key::SecretReload,
        Key::Search,
        Key::Match,
        Key::Ignore,
        Key::ConfigMapsExclude,
        Key::SecretsExclude,
        Key::PausePeriod,
        Key::PausedAt,
        Key::RolloutStrategy,
        Key::LastReloadedFrom,
    ];

    /// Whether the key opts a workload in (named reload, `auto`, typed `auto`, `search`).
    pub fn opts_in(self) -> bool {
        matches!(
            self,
            Key::Auto
                | Key::ConfigMapAuto
                | Key::SecretAuto
                | Key::ConfigMapReload
                | Key::SecretReload
                | Key::Search
        )
    }

    /// The full annotation key under `prefix`, e.g. `configmap.kreload.dev/reload`.
    pub fn with_prefix(self, prefix: &str) -> String {
        match self {
            Key::Auto => format!("{prefix}/auto"),
            Key::ConfigMapAuto => format!("configmap.{prefix}/auto"),
            Key::SecretAuto => format!("secret.{prefix}/auto"),
            Key::ConfigMapReload => format!("configmap.{prefix}/reload"),
            Key::SecretReload => format!("secret.{prefix}/reload"),
            Key::Search => format!("{prefix}/search"),
            Key::Match => format!("{prefix}/match"),
            Key::Ignore => format!("{prefix}/ignore"),
            Key::ConfigMapsExclude => format!("configmaps.exclude.{prefix}/reload"),
            Key::SecretsExclude => format!("secrets.exclude.{prefix}/reload"),
            Key::PausePeriod => format!("deployment.{prefix}/pause-period"),
            Key::PausedAt => format!("deployment.{prefix}/paused-at"),
            Key::RolloutStrategy => format!("{prefix}/rollout-strategy"),
            Key::LastReloadedFrom => format!("{prefix}/last-reloaded-from"),
        }
    }
}

/// The enabled prefixes, in precedence order (kreload's first), and the keys Reloader's
/// annotation-key flags (`--auto-annotation`, …) put in place of Reloader's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocabulary {
    prefixes: Vec<&'static str>,
    /// Full keys replacing Reloader's vocabulary's (kreload's own are never replaced).
    overrides: BTreeMap<Key, String>,
}

impl Vocabulary {
    pub fn new(compat_reloader: bool) -> Self {
        let mut prefixes = vec![KRELOAD_PREFIX];
        if compat_reloader {
            prefixes.push(RELOADER_PREFIX);
        }
        Vocabulary {
            prefixes,
            overrides: BTreeMap::new(),
        }
    }

    /// Replaces keys of Reloader's vocabulary, as Reloader's annotation-key flags do (empty
    /// values are ignored). kreload's own keys stay as they are.
    pub fn with_overrides(mut self, overrides: impl IntoIterator<Item = (Key, String)>) -> Self {
        self.overrides.extend(
            overrides
                .into_iter()
                .map(|(k, v)| (k, v.trim().to_owned()))
                .filter(|(_, v)| !v.is_empty()),
        );
        self
    }

    /// The full annotation key of `key` under the enabled prefix `prefix`, with any override.
    pub fn key(&self, prefix: &str, key: Key) -> String {
        match self.overrides.get(&key) {
            Some(custom) if prefix == RELOADER_PREFIX => custom.clone(),
            _ => key.with_prefix(prefix),
        }
    }

    /// Every enabled full key of `key`, in precedence order, with the prefix it stands for.
    pub fn keys(&self, key: Key) -> impl Iterator<Item = (&'static str, String)> + '_ {
        self.prefixes.iter().map(move |p| (*p, self.key(p, key)))
    }

    /// The prefix kreload writes under.
    pub fn primary(&self) -> &str {
        KRELOAD_PREFIX
    }

    pub fn prefixes(&self) -> &[&'static str] {
        &self.prefixes
    }

    /// The value of `key` under the first enabled prefix that carries it.
    pub fn get<'a>(&self, map: &'a BTreeMap<String, String>, key: Key) -> Option<&'a str> {
        self.keys(key)
            .find_map(|(_, k)| map.get(&k).map(String::as_str))
    }

    /// Like [`Vocabulary::get`], with the full key the value was found under.
    pub fn find<'a>(
        &self,
        map: &'a BTreeMap<String, String>,
        key: Key,
    ) -> Option<(String, &'a str)> {
        self.keys(key)
            .find_map(|(_, k)| map.get(&k).map(|v| (k, v.as_str())))
    }

    /// Whether `key` is present (with any value, even empty) under any enabled prefix.
    pub fn contains(&self, map: &BTreeMap<String, String>, key: Key) -> bool {
        self.get(map, key).is_some()
    }

    /// Which [`Key`] the full annotation key `k` is, under an enabled prefix.
    pub fn is_known_key(&self, k: &str) -> Option<Key> {
        self.prefixes
            .iter()
            .find_map(|p| Key::ALL.into_iter().find(|key| self.key(p, *key) == k))
    }

    /// Whether `k` sits under an enabled prefix: its prefix part (before `/`) is the prefix
    /// itself or a subdomain of it (`configmap.kreload.dev/…`).
    pub fn has_prefix(&self, k: &str) -> bool {
        let Some((domain, _)) = k.split_once('/') else {
            return false;
        };
        self.prefixes.iter().any(|p| {
            domain == *p
                || domain
                    .strip_suffix(p)
                    .is_some_and(|rest| rest.ends_with('.'))
        })
    }

    /// A key under an enabled prefix that kreload does not understand (for admission
    /// warnings). kreload's own bookkeeping key is not "unknown".
    pub fn is_unknown_key(&self, k: &str) -> bool {
        k != OBSERVED && self.has_prefix(k) && self.is_known_key(k).is_none()
    }

    /// The prefix of the `last-reloaded-from` record: the vocabulary the workload opted in
    /// with, so a workload opted in with Reloader's annotations gets exactly Reloader's key.
    /// The first enabled prefix carrying an opt-in key in the metadata, else in the pod
    /// template (where Reloader also reads them). Without any (`--auto-reload-all`), Reloader's
    /// when its vocabulary is on, as a Reloader user migrating expects; otherwise kreload's.
    pub fn record_prefix(
        &self,
        annotations: &BTreeMap<String, String>,
        template_annotations: &BTreeMap<String, String>,
    ) -> &'static str {
        [annotations, template_annotations]
            .into_iter()
            .find_map(|map| {
                self.prefixes.iter().copied().find(|p| {
                    Key::ALL
                        .iter()
                        .any(|k| k.opts_in() && map.contains_key(&self.key(p, *k)))
                })
            })
            .or_else(|| self.prefixes.last().copied())
            .unwrap_or(KRELOAD_PREFIX)
    }

    /// Only the annotations decisions need: known keys of either vocabulary, plus
    /// [`OBSERVED`] (the resync's baseline). The workload index stores this, not whole maps.
    pub fn relevant(&self, map: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        map.iter()
            .filter(|(k, _)| k.as_str() == OBSERVED || self.is_known_key(k).is_some())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Reloader's vocabulary is on by default (`--compat-reloader`).
impl Default for Vocabulary {
    fn default() -> Self {
        Vocabulary::new(true)
    }
}

/// Go's `strconv.ParseBool`: exactly these spellings, anything else is `None`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reload::testing::pairs as map;

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
        assert_eq!(cases.len(), Key::ALL.len());
        for (key, ours, theirs) in cases {
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
        let strict =
            Vocabulary::new(false).with_overrides([(Key::Auto, "example.com/auto".into())]);
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
}
