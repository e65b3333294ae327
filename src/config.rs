//! The typed configuration of `kreload serve`, built once from the command line; everything
//! after start-up takes its part of [`Config`], never the raw flags.

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::ReliabilityArgs;
use crate::cli::{AlertArgs, ServeArgs};
use crate::loops::lease::LeaseConfig;
use crate::loops::resync::ResyncConfig;
use crate::notify::sinks::Sink;
use crate::notify::{Alerts, Settings};
use crate::reload::keys::Vocabulary;
use crate::reload::model::{SourceKind, Strategy, WorkloadKind};
use crate::reload::rules::RuleOptions;
use crate::reload::storm::Limits;
use crate::scope::selector::{Selector, SelectorError};
use crate::scope::{NamespaceGate, Scope};
use crate::server::ConnectionLimits;
use crate::worker::limits::StormConfig;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid --{flag}")]
    Selector {
        flag: &'static str,
        #[source]
        source: SelectorError,
    },
}

/// Settings that have no flag: values chosen for the webhook's few-second timeout and a
/// rollout that takes tens of seconds anyway.
#[derive(Debug, Clone)]
pub struct Tunables {
    /// How long the worker waits for an admitted write to show up in the live object.
    pub confirm_patience: Duration,
    /// How long the workload mutation may spend reading the sources it records.
    pub read_budget: Duration,
    /// Confirmations, and workload patches, that the worker runs at once.
    pub worker_concurrency: usize,
    /// Largest AdmissionReview body read.
    pub body_limit: usize,
    pub connections: ConnectionLimits,
}

impl Default for Tunables {
    fn default() -> Self {
        Tunables {
            confirm_patience: Duration::from_secs(3),
            read_budget: Duration::from_secs(2),
            worker_concurrency: 8,
            body_limit: crate::admission::DEFAULT_BODY_LIMIT,
            connections: ConnectionLimits::default(),
        }
    }
}

/// Everything `kreload serve` runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen_address: SocketAddr,
    pub admin_address: SocketAddr,
    pub tls_cert_file: PathBuf,
    pub tls_key_file: PathBuf,
    /// CA whose client certificates the webhook port requires, when set.
    pub client_ca_file: Option<PathBuf>,
    pub kubeconfig: Option<PathBuf>,
    pub scope: Scope,
    pub rules: RuleOptions,
    pub strategy: Strategy,
    pub coalesce_window: Duration,
    pub queue_capacity: usize,
    pub shutdown_grace: Duration,
    /// The Events' reporting instance (the pod's name in a cluster).
    pub instance: Option<String>,
    pub tunables: Tunables,
    /// Reloader's `--webhook-url` (post there for each change instead of reloading) and
    /// its alerts.
    pub notify: Settings,
    /// Reloader's `METRICS_COUNT_BY_NAMESPACE=enabled`.
    pub metrics_by_namespace: bool,
    /// `--cronjob-create-job`.
    pub cronjob_create_job: bool,
    pub reliability: Reliability,
}

/// The resync, the lease (`None` without `--enable-ha`) and storm control.
#[derive(Debug, Clone)]
pub struct Reliability {
    pub resync: ResyncConfig,
    pub lease: Option<LeaseConfig>,
    pub storm: StormConfig,
}

impl Reliability {
    /// `own_namespace` holds the Lease by default; `identity` names this replica in it.
    fn from_args(args: &ReliabilityArgs, own_namespace: Option<&str>, identity: String) -> Self {
        let lease = args.enable_ha.then(|| LeaseConfig {
            name: args.lease_name.clone(),
            namespace: args
                .lease_namespace
                .clone()
                .or_else(|| own_namespace.map(str::to_owned))
                .unwrap_or_else(|| "default".to_owned()),
            duration: args.lease_duration,
            grace: args.lease_grace,
            identity,
        });
        Reliability {
            resync: ResyncConfig {
                period: args.resync_period,
                on_start: args.resync_on_start,
            },
            lease,
            storm: StormConfig {
                limits: Limits {
                    max: args.storm_max_reloads,
                    period: args.storm_period,
                    quiet: args.storm_quiet,
                },
                patches_per_second: args.max_patches_per_second,
            },
        }
    }
}

/// This replica's name in the Lease: the pod's name, else the host's and the process id.
fn identity(instance: Option<&str>) -> String {
    match instance {
        Some(name) => name.to_owned(),
        None => {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "kreload".to_owned());
            format!("{host}-{}", std::process::id())
        }
    }
}

fn selector(values: &[String], flag: &'static str) -> Result<Selector, ConfigError> {
    Selector::parse(&unquote(values)).map_err(|source| ConfigError::Selector { flag, source })
}

/// Reloader's chart renders `--namespace-selector="a=b,c"`, quotes included, and Reloader's
/// flag parser (CSV) drops them; so does kreload. A label selector never contains `"`.
fn unquote(values: &[String]) -> Vec<String> {
    values
        .iter()
        .map(|v| v.trim_matches('"').to_owned())
        .collect()
}

fn names(values: &[String]) -> HashSet<String> {
    values
        .iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Reloader's single-namespace mode: `KUBERNETES_NAMESPACE` when `--namespaces` is unset.
/// As in Reloader, it leaves `--namespaces-to-ignore` and `--namespace-selector` unused.
fn single_namespace(args: &ServeArgs) -> Option<String> {
    let ns = args.reloader.kubernetes_namespace.as_deref()?.trim();
    if ns.is_empty() || !names(&args.namespaces).is_empty() {
        return None;
    }
    if !args.namespaces_to_ignore.is_empty() || !args.namespace_selector.is_empty() {
        tracing::warn!(
            namespace = ns,
            "KUBERNETES_NAMESPACE is set: --namespaces-to-ignore and --namespace-selector are not used, as in Reloader"
        );
    }
    Some(ns.to_owned())
}

/// `--ignored-workload-types`, plus Rollouts when Reloader's `--is-Argo-Rollouts` is
/// explicitly false.
fn ignored_workload_kinds(args: &ServeArgs) -> BTreeSet<WorkloadKind> {
    let mut kinds: BTreeSet<_> = args.ignored_workload_types.iter().copied().collect();
    if args.reloader.is_argo_rollouts == Some(false) {
        kinds.insert(WorkloadKind::Rollout);
    }
    kinds
}

/// `--resources-to-ignore`, and SecretProviderClasses unless `--enable-csi-integration`
/// (Reloader runs its SecretProviderClassPodStatus controller only then).
fn ignored_source_kinds(args: &ServeArgs) -> HashSet<SourceKind> {
    let mut kinds: HashSet<_> = args.resources_to_ignore.iter().copied().collect();
    if !args.reloader.enable_csi_integration {
        kinds.insert(SourceKind::SecretProviderClass);
    }
    kinds
}

/// Says at start which of Reloader's options kreload accepts without acting on them, and
/// returns `--webhook-url` when set.
fn reloader_notices(args: &ServeArgs) -> Option<String> {
    let r = &args.reloader;
    if r.enable_pprof {
        tracing::warn!(addr = %r.pprof_addr, "--enable-pprof: kreload has no pprof endpoint");
    }
    let url = r
        .webhook_url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())?;
    tracing::warn!("--webhook-url is set: kreload posts to it for each change and reloads nothing");
    Some(url.to_owned())
}

/// Reloader's rule: alerts only with `ALERT_ON_RELOAD=true` and a URL.
fn alerts(a: &AlertArgs) -> Option<Alerts> {
    if a.alert_on_reload.as_deref().map(str::trim) != Some("true") {
        return None;
    }
    let nonempty = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let Some(url) = nonempty(&a.alert_webhook_url) else {
        tracing::error!("ALERT_ON_RELOAD is true but ALERT_WEBHOOK_URL is not set; no alerts");
        return None;
    };
    Some(Alerts {
        sink: Sink::parse(a.alert_sink.as_deref().unwrap_or_default()),
        url,
        proxy: nonempty(&a.alert_webhook_proxy),
        additional_info: a.alert_additional_info.clone(),
    })
}

impl Config {
    /// Checks and types the flags; `instance` is the pod's name, when known.
    pub fn from_args(args: &ServeArgs, instance: Option<String>) -> Result<Config, ConfigError> {
        let resource_labels = selector(&args.resource_label_selector, "resource-label-selector")?;
        let single = single_namespace(args);
        let namespace_labels = match single {
            Some(_) => Selector::default(),
            None => selector(&args.namespace_selector, "namespace-selector")?,
        };
        let namespace_gate = NamespaceGate::new(
            (!namespace_labels.is_empty()).then(|| namespace_labels.to_kubernetes()),
        );
        let mut own_namespace = args.own_namespace.clone().filter(|s| !s.is_empty());
        let (namespaces, namespaces_to_ignore) = match &single {
            // Reloader's chart points it at its own namespace: asked for explicitly, so act there.
            Some(ns) => {
                own_namespace.take_if(|own| own == ns);
                (HashSet::from([ns.clone()]), HashSet::new())
            }
            None => (names(&args.namespaces), names(&args.namespaces_to_ignore)),
        };
        let scope = Scope {
            own_namespace,
            namespaces,
            namespaces_to_ignore,
            resource_labels,
            ignored_kinds: ignored_source_kinds(args),
            reload_on_create: args.reload_on_create,
            reload_on_delete: args.reload_on_delete,
            namespace_gate,
        };
        let rules = RuleOptions {
            vocabulary: Vocabulary::new(args.compat_reloader)
                .with_overrides(args.reloader.annotations.overrides()),
            auto_reload_all: args.auto_reload_all,
            ignored_workload_kinds: ignored_workload_kinds(args),
        };
        let instance = instance.filter(|s| !s.is_empty());
        let reliability = Reliability::from_args(
            &args.reliability,
            scope.own_namespace.as_deref(),
            identity(instance.as_deref()),
        );
        Ok(Config {
            listen_address: args.listen_address,
            admin_address: args.admin_address,
            tls_cert_file: args.tls_cert_file.clone(),
            tls_key_file: args.tls_key_file.clone(),
            client_ca_file: args.client_ca_file.clone(),
            kubeconfig: args.kubeconfig.clone(),
            scope,
            rules,
            strategy: args.reload_strategy,
            coalesce_window: args.coalesce_window,
            queue_capacity: args.queue_capacity,
            shutdown_grace: args.shutdown_grace,
            instance,
            tunables: Tunables::default(),
            notify: Settings {
                alerts: alerts(&args.reloader.alerts),
                webhook_url: reloader_notices(args),
            },
            cronjob_create_job: args.reloader.cronjob_create_job,
            metrics_by_namespace: args.reloader.metrics_count_by_namespace.as_deref()
                == Some("enabled"),
            reliability,
        })
    }
}

#[cfg(test)]
mod tests;
