//! The nouns of the decision core: which kind of object changed, which workload kind may
//! reload, and how a reload is written.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Values from flags or annotations that kreload could not make sense of.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("unknown resource type {0:?}: expected configmaps or secrets")]
    SourceKind(String),
    #[error(
        "unknown workload type {0:?}: expected deployments, statefulsets, daemonsets, cronjobs, jobs or rollouts"
    )]
    WorkloadKind(String),
    #[error("unknown reload strategy {0:?}: expected env-vars or annotations")]
    Strategy(String),
    #[error(
        "bad source reference {0:?}: expected configmap/NAME, secret/NAME or secretproviderclass/NAME"
    )]
    SourceRef(String),
}

/// The kind of object whose content a workload consumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SourceKind {
    ConfigMap,
    Secret,
    /// A CSI Secrets Store `SecretProviderClass` (`--enable-csi-integration`). Its content is
    /// what the driver reports in the `SecretProviderClassPodStatus` objects naming it.
    SecretProviderClass,
}

/// Each source kind's names, in declaration order: singular (`configmap/NAME`), plural
/// (flags), API kind, and the env-var suffix (also the `type` of Reloader's record).
const SOURCE_NAMES: [(&str, &str, &str, &str); 3] = [
    ("configmap", "configmaps", "ConfigMap", "CONFIGMAP"),
    ("secret", "secrets", "Secret", "SECRET"),
    (
        "secretproviderclass",
        "secretproviderclasses",
        "SecretProviderClass",
        "SECRETPROVIDERCLASS",
    ),
];

impl SourceKind {
    pub const ALL: [SourceKind; 3] = [
        SourceKind::ConfigMap,
        SourceKind::Secret,
        SourceKind::SecretProviderClass,
    ];

    fn names(self) -> (&'static str, &'static str, &'static str, &'static str) {
        SOURCE_NAMES[self as usize]
    }

    /// Suffix of the env var name, also the `type` of Reloader's last-reloaded-from record.
    pub fn env_suffix(self) -> &'static str {
        self.names().3
    }

    pub fn as_str(self) -> &'static str {
        self.names().0
    }

    pub fn plural(self) -> &'static str {
        self.names().1
    }

    pub fn api_kind(self) -> &'static str {
        self.names().2
    }

    pub fn from_api_kind(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.api_kind() == kind)
    }

    /// The kind named `configmap` or `secret` (as in `configmap/NAME`).
    fn from_singular(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// Display by one of the type's names.
macro_rules! display_as {
    ($ty:ty, $name:ident) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.$name())
            }
        }
    };
}

display_as!(SourceKind, as_str);

/// Parses `--resources-to-ignore` values, case-insensitively like Reloader, which takes only
/// `configmaps` and `secrets` there (SecretProviderClasses are switched by
/// `--enable-csi-integration`).
impl FromStr for SourceKind {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        [SourceKind::ConfigMap, SourceKind::Secret]
            .into_iter()
            .find(|k| k.plural() == lower)
            .ok_or_else(|| ModelError::SourceKind(s.to_owned()))
    }
}

/// A ConfigMap, Secret or SecretProviderClass in the workload's own namespace (references never cross namespaces).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceRef {
    pub kind: SourceKind,
    pub name: String,
}

impl SourceRef {
    pub fn new(kind: SourceKind, name: impl Into<String>) -> Self {
        SourceRef {
            kind,
            name: name.into(),
        }
    }

    pub fn configmap(name: impl Into<String>) -> Self {
        Self::new(SourceKind::ConfigMap, name)
    }

    pub fn secret(name: impl Into<String>) -> Self {
        Self::new(SourceKind::Secret, name)
    }

    pub fn secret_provider_class(name: impl Into<String>) -> Self {
        Self::new(SourceKind::SecretProviderClass, name)
    }
}

/// `configmap/NAME`, `secret/NAME` or `secretproviderclass/NAME`.
impl fmt::Display for SourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.name)
    }
}

/// The inverse of `Display`: exactly `configmap/NAME`, `secret/NAME` or
/// `secretproviderclass/NAME`, NAME non-empty.
impl FromStr for SourceRef {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ModelError::SourceRef(s.to_owned());
        let (kind, name) = s.split_once('/').ok_or_else(bad)?;
        let kind = SourceKind::from_singular(kind).ok_or_else(bad)?;
        if name.is_empty() {
            return Err(bad());
        }
        Ok(SourceRef::new(kind, name))
    }
}

/// The workload kinds kreload can reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    CronJob,
    Job,
    /// Argo Rollouts' `argoproj.io/v1alpha1` Rollout.
    Rollout,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 6] = [
        WorkloadKind::Deployment,
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
        WorkloadKind::CronJob,
        WorkloadKind::Job,
        WorkloadKind::Rollout,
    ];

    pub fn api_kind(self) -> &'static str {
        WORKLOAD_NAMES[self as usize].0
    }

    pub fn from_api_kind(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.api_kind() == kind)
    }

    /// The flag spelling: lowercase plural, as `--ignored-workload-types` takes it.
    pub fn plural(self) -> &'static str {
        WORKLOAD_NAMES[self as usize].1
    }
}

/// Each workload kind's API kind and flag spelling, in declaration order.
const WORKLOAD_NAMES: [(&str, &str); 6] = [
    ("Deployment", "deployments"),
    ("StatefulSet", "statefulsets"),
    ("DaemonSet", "daemonsets"),
    ("CronJob", "cronjobs"),
    ("Job", "jobs"),
    ("Rollout", "rollouts"),
];

display_as!(WorkloadKind, plural);

/// Accepts the plural (Reloader's spelling) or the singular, in any case.
impl FromStr for WorkloadKind {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|k| {
                let plural = k.plural();
                lower == plural || Some(lower.as_str()) == plural.strip_suffix('s')
            })
            .ok_or_else(|| ModelError::WorkloadKind(s.to_owned()))
    }
}

/// How a reload is written into the pod template (`--reload-strategy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Strategy {
    /// Set `STAKATER_<NAME>_<KIND>` on one container to the content hash (Reloader's default).
    #[default]
    EnvVars,
    /// Set the `last-reloaded-from` pod-template annotation.
    Annotations,
}

impl Strategy {
    pub const ALL: [Strategy; 2] = [Strategy::EnvVars, Strategy::Annotations];

    pub fn as_str(self) -> &'static str {
        ["env-vars", "annotations"][self as usize]
    }
}

display_as!(Strategy, as_str);

impl FromStr for Strategy {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ModelError::Strategy(s.to_owned()))
    }
}

/// How an Argo Rollout is reloaded (`P/rollout-strategy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RolloutStrategy {
    /// Set `spec.restartAt`: pods restart without a new revision.
    Restart,
    /// Patch the pod template like any other workload.
    #[default]
    Rollout,
}

impl RolloutStrategy {
    /// Reloader's reading: exactly `restart` selects restart; anything else, including no
    /// annotation or a typo, is a template rollout.
    pub fn from_annotation(value: Option<&str>) -> Self {
        match value {
            Some("restart") => RolloutStrategy::Restart,
            _ => RolloutStrategy::Rollout,
        }
    }
}

impl RolloutStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutStrategy::Restart => "restart",
            RolloutStrategy::Rollout => "rollout",
        }
    }
}

display_as!(RolloutStrategy, as_str);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_kind_names() {
        let cm = SourceKind::ConfigMap;
        let s = SourceKind::Secret;
        assert_eq!(
            (cm.env_suffix(), cm.as_str(), cm.plural()),
            ("CONFIGMAP", "configmap", "configmaps")
        );
        assert_eq!(
            (s.env_suffix(), s.as_str(), s.plural()),
            ("SECRET", "secret", "secrets")
        );
        for input in ["configmaps", "ConfigMaps", "CONFIGMAPS"] {
            assert_eq!(input.parse::<SourceKind>(), Ok(cm));
        }
        assert_eq!("sEcrets".parse::<SourceKind>(), Ok(s));
        assert!("configmap".parse::<SourceKind>().is_err());
        // Reloader's --resources-to-ignore takes configmaps or secrets only.
        assert!("secretproviderclasses".parse::<SourceKind>().is_err());
        let spc = SourceKind::SecretProviderClass;
        assert_eq!(
            (spc.env_suffix(), spc.as_str(), spc.plural(), spc.api_kind()),
            (
                "SECRETPROVIDERCLASS",
                "secretproviderclass",
                "secretproviderclasses",
                "SecretProviderClass"
            )
        );
        assert_eq!(SourceKind::from_api_kind("SecretProviderClass"), Some(spc));
        assert_eq!(SourceKind::from_api_kind("Secret"), Some(s));
        assert_eq!(SourceKind::from_api_kind("secret"), None);
        assert_eq!(SourceKind::from_api_kind(cm.api_kind()), Some(cm));
    }

    #[test]
    fn source_ref_display_and_parse() {
        let r = SourceRef::configmap("app-config");
        assert_eq!(r.to_string(), "configmap/app-config");
        assert_eq!("configmap/app-config".parse::<SourceRef>(), Ok(r));
        assert_eq!(
            "secret/a.b".parse::<SourceRef>(),
            Ok(SourceRef::secret("a.b"))
        );
        assert_eq!(
            "secretproviderclass/vault".parse::<SourceRef>(),
            Ok(SourceRef::secret_provider_class("vault"))
        );
        for bad in [
            "configmap/",
            "configmap",
            "pod/x",
            "ConfigMap/x",
            "",
            "secretproviderclasspodstatus/x",
        ] {
            assert!(bad.parse::<SourceRef>().is_err(), "{bad:?}");
        }
        // ConfigMaps sort before Secrets, then by name.
        assert!(SourceRef::configmap("z") < SourceRef::secret("a"));
    }

    #[test]
    fn workload_kind_parse_and_display() {
        let cases = [
            ("deployments", WorkloadKind::Deployment),
            ("Deployment", WorkloadKind::Deployment),
            ("statefulsets", WorkloadKind::StatefulSet),
            ("StatefulSet", WorkloadKind::StatefulSet),
            ("DAEMONSETS", WorkloadKind::DaemonSet),
            ("cronjobs", WorkloadKind::CronJob),
            ("cronjob", WorkloadKind::CronJob),
            ("jobs", WorkloadKind::Job),
            ("job", WorkloadKind::Job),
            ("rollouts", WorkloadKind::Rollout),
            (" Rollout ", WorkloadKind::Rollout),
        ];
        for (input, kind) in cases {
            assert_eq!(input.parse::<WorkloadKind>(), Ok(kind), "{input}");
        }
        for bad in ["pods", "", "deploymentss", "job s"] {
            let err = bad.parse::<WorkloadKind>().expect_err("rejected");
            assert!(err.to_string().contains("expected deployments"), "{err}");
        }
        for kind in WorkloadKind::ALL {
            assert_eq!(kind.to_string().parse::<WorkloadKind>(), Ok(kind));
            assert_eq!(WorkloadKind::from_api_kind(kind.api_kind()), Some(kind));
        }
        assert_eq!(WorkloadKind::from_api_kind("ReplicaSet"), None);
    }

    #[test]
    fn strategies() {
        assert_eq!("env-vars".parse::<Strategy>(), Ok(Strategy::EnvVars));
        assert_eq!("annotations".parse::<Strategy>(), Ok(Strategy::Annotations));
        assert!("envvars".parse::<Strategy>().is_err());
        assert_eq!(Strategy::default().to_string(), "env-vars");
        assert_eq!(Strategy::Annotations.to_string(), "annotations");

        assert_eq!(
            RolloutStrategy::from_annotation(Some("restart")),
            RolloutStrategy::Restart
        );
        for other in [None, Some("rollout"), Some("Restart"), Some("")] {
            assert_eq!(
                RolloutStrategy::from_annotation(other),
                RolloutStrategy::Rollout
            );
        }
        assert_eq!(RolloutStrategy::default(), RolloutStrategy::Rollout);
    }
}
