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
    SecretProviderClassAuto,
    SecretProviderClassReload,
    SecretProviderClassesExclude,
}

impl Key {
    /// Every key, for scans such as [`Vocabulary::is_known_key`].
    pub const ALL: [Key; 17] = [
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
        Key::SecretProviderClassAuto,
        Key::SecretProviderClassReload,
        Key::SecretProviderClassesExclude,
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
                | Key::SecretProviderClassAuto
                | Key::SecretProviderClassReload
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
            Key::SecretProviderClassAuto => format!("secretproviderclass.{prefix}/auto"),
            Key::SecretProviderClassReload => format!("secretproviderclass.{prefix}/reload"),
            Key::SecretProviderClassesExclude => {
                format!("secretproviderclasses.exclude.{prefix}/reload")
            }
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
mod tests;
