//! Command line: `kreload serve` and `kreload certs`. Every flag of `serve`
//! also reads an environment variable (`KRELOAD_<FLAG>`), so a Helm chart can set either.

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

mod reliability;
pub use reliability::ReliabilityArgs;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::reload::keys::Key;
use crate::reload::model::{SourceKind, Strategy, WorkloadKind};

#[derive(Debug, Parser)]
#[command(
    name = "kreload",
    version,
    // A flag given twice takes its last value, as Reloader's flags do (a chart's arguments
    // can then follow defaults set earlier on the command line).
    args_override_self = true,
    about = "Restarts workloads when the ConfigMaps and Secrets they use change"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the admission webhook and the restart worker.
    Serve(Box<ServeArgs>),
    /// Write a local CA and a serving certificate (for running outside a cluster).
    Certs(CertsArgs),
    /// Which workloads a change of a ConfigMap or Secret reloads, and why; or, for a
    /// workload, what reloads it and when it was last reloaded.
    Explain(ExplainArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ExplainArgs {
    /// `configmap/NAME`, `secret/NAME`, or a workload: `deployment/NAME`, `statefulset/…`,
    /// `daemonset/…`, `cronjob/…`, `job/…`, `rollout/…`.
    pub target: String,
    /// The namespace.
    #[arg(
        short = 'n',
        long,
        env = "KRELOAD_EXPLAIN_NAMESPACE",
        default_value = "default"
    )]
    pub namespace: String,
    /// `text` or `json`.
    #[arg(
        short = 'o',
        long,
        env = "KRELOAD_EXPLAIN_OUTPUT",
        value_enum,
        default_value = "text"
    )]
    pub output: Output,
    /// Path to a kubeconfig; $KUBECONFIG or in-cluster when unset.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// As for `serve`: explain with the same rules it runs with.
    #[arg(long, env = "KRELOAD_COMPAT_RELOADER", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub compat_reloader: bool,
    /// As for `serve`.
    #[arg(long, env = "KRELOAD_AUTO_RELOAD_ALL", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub auto_reload_all: bool,
    /// As for `serve`.
    #[arg(long, env = "KRELOAD_IGNORED_WORKLOAD_TYPES", value_delimiter = ',', value_parser = parse_workload_kind)]
    pub ignored_workload_types: Vec<WorkloadKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log format.
    #[arg(long, env = "KRELOAD_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log level or tracing filter (error, warn, info, debug, trace, or `kreload=debug,kube=info`).
    #[arg(long, env = "KRELOAD_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address of the HTTPS admission endpoint.
    #[arg(long, env = "KRELOAD_LISTEN_ADDRESS", default_value = "0.0.0.0:9443")]
    pub listen_address: SocketAddr,
    /// Address of the plain-HTTP admin endpoint (/livez, /readyz, /metrics).
    #[arg(long, env = "KRELOAD_ADMIN_ADDRESS", default_value = "0.0.0.0:9090")]
    pub admin_address: SocketAddr,
    /// Serving certificate (PEM); re-read when it changes, no restart needed.
    #[arg(long, env = "KRELOAD_TLS_CERT_FILE", default_value = "certs/tls.crt")]
    pub tls_cert_file: PathBuf,
    /// Serving certificate key (PEM).
    #[arg(long, env = "KRELOAD_TLS_KEY_FILE", default_value = "certs/tls.key")]
    pub tls_key_file: PathBuf,
    /// Require a client certificate signed by a CA in this PEM file on the webhook port
    /// (the API server's, from its AdmissionConfiguration); any client when unset.
    #[arg(long, env = "KRELOAD_CLIENT_CA_FILE")]
    pub client_ca_file: Option<PathBuf>,
    /// Path to a kubeconfig; in-cluster configuration or $KUBECONFIG when unset.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Only act in these namespaces (comma-separated); all namespaces when unset.
    #[arg(long, env = "KRELOAD_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Never act in these namespaces (comma-separated).
    #[arg(long, env = "KRELOAD_NAMESPACES_TO_IGNORE", value_delimiter = ',')]
    pub namespaces_to_ignore: Vec<String>,
    /// Only act in namespaces whose labels match this Kubernetes label selector (`team=a`,
    /// `env!=dev`, `tier in (web,api)`, `!legacy`; all must hold). Reloader's `key:value`
    /// and `key:*` also work.
    #[arg(long, env = "KRELOAD_NAMESPACE_SELECTOR", value_delimiter = ',')]
    pub namespace_selector: Vec<String>,
    /// kreload's own namespace, never acted in (set from the downward API in a cluster).
    #[arg(long, env = "POD_NAMESPACE")]
    pub own_namespace: Option<String>,
    /// Only act on ConfigMaps/Secrets whose labels match this Kubernetes label selector
    /// (`reload=yes`, `env!=dev`, `tier in (web,api)`, `!legacy`; all must hold). Reloader's
    /// `key:value` and `key:*` also work.
    #[arg(long, env = "KRELOAD_RESOURCE_LABEL_SELECTOR", value_delimiter = ',')]
    pub resource_label_selector: Vec<String>,
    /// Ignore changes to one kind of source: `configmaps` or `secrets`.
    #[arg(long, env = "KRELOAD_RESOURCES_TO_IGNORE", value_delimiter = ',', value_parser = parse_source_kind)]
    pub resources_to_ignore: Vec<SourceKind>,
    /// Workload kinds never reloaded (comma-separated): deployments, statefulsets,
    /// daemonsets, cronjobs, jobs, rollouts.
    #[arg(long, env = "KRELOAD_IGNORED_WORKLOAD_TYPES", value_delimiter = ',', value_parser = parse_workload_kind)]
    pub ignored_workload_types: Vec<WorkloadKind>,
    /// Reload every workload on changes to what it references, unless it opts out with
    /// `auto: "false"`.
    #[arg(long, env = "KRELOAD_AUTO_RELOAD_ALL", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub auto_reload_all: bool,
    /// How a reload is written: `env-vars` (a STAKATER_* variable) or `annotations`.
    #[arg(long, env = "KRELOAD_RELOAD_STRATEGY", default_value = "env-vars", value_parser = parse_strategy)]
    pub reload_strategy: Strategy,
    /// Also reload when a referenced ConfigMap or Secret is created.
    #[arg(long, env = "KRELOAD_RELOAD_ON_CREATE", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub reload_on_create: bool,
    /// Also reload when a referenced ConfigMap or Secret is deleted.
    #[arg(long, env = "KRELOAD_RELOAD_ON_DELETE", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub reload_on_delete: bool,
    /// Read Reloader's `reloader.stakater.com` annotations too.
    #[arg(long, env = "KRELOAD_COMPAT_RELOADER", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub compat_reloader: bool,
    /// Changes to one source inside this window become one reload (e.g. `3s`, `500ms`).
    #[arg(long, env = "KRELOAD_COALESCE_WINDOW", default_value = "3s", value_parser = parse_duration)]
    pub coalesce_window: Duration,
    /// Maximum number of sources waiting in the queue; more are dropped and counted.
    #[arg(long, env = "KRELOAD_QUEUE_CAPACITY", default_value_t = 10_000, value_parser = clap::value_parser!(usize))]
    pub queue_capacity: usize,
    /// How long in-flight admissions and the patch in hand may take after SIGTERM.
    #[arg(long, env = "KRELOAD_SHUTDOWN_GRACE", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    #[command(flatten)]
    pub reliability: ReliabilityArgs,

    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub reloader: ReloaderArgs,
}

/// Reloader's own flags and environment variables, accepted with Reloader's names and
/// meanings so its chart's command line and environment run kreload unchanged.
#[derive(Debug, Clone, Args)]
pub struct ReloaderArgs {
    /// Reloader's single-namespace mode (its chart sets it when `watchGlobally` is false):
    /// act only in this namespace. Ignored when --namespaces is set; like Reloader, it turns
    /// off --namespaces-to-ignore and --namespace-selector.
    #[arg(long, env = "KUBERNETES_NAMESPACE")]
    pub kubernetes_namespace: Option<String>,
    #[command(flatten)]
    pub annotations: AnnotationArgs,
    #[command(flatten)]
    pub alerts: AlertArgs,
    /// Reloader's Argo Rollouts switch. kreload reloads Rollouts whenever their CRD is
    /// served; an explicit `false` turns them off, as in Reloader.
    #[arg(long = "is-Argo-Rollouts", env = "KRELOAD_IS_ARGO_ROLLOUTS", value_parser = parse_go_bool, num_args = 0..=1, default_missing_value = "true")]
    pub is_argo_rollouts: Option<bool>,
    /// POST `{"webhook":"update successful"}` to this URL for each change, instead of
    /// reloading anything (Reloader's `--webhook-url`).
    #[arg(long, env = "KRELOAD_WEBHOOK_URL")]
    pub webhook_url: Option<String>,
    /// Also start a Job from a CronJob at once when it is reloaded, as Reloader does (never
    /// for a suspended CronJob). Off: only the template changes, for the next run.
    #[arg(long, env = "KRELOAD_CRONJOB_CREATE_JOB", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub cronjob_create_job: bool,
    /// Reloader's `--enable-csi-integration`: reload on CSI Secrets Store rotations
    /// (SecretProviderClassPodStatus updates) of the SecretProviderClasses workloads mount.
    #[arg(long, env = "KRELOAD_ENABLE_CSI_INTEGRATION", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub enable_csi_integration: bool,
    /// Reloader's `--enable-pprof`: accepted; kreload has no Go profiler to serve.
    #[arg(long, env = "KRELOAD_ENABLE_PPROF", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub enable_pprof: bool,
    /// Reloader's `--pprof-addr`: accepted, unused.
    #[arg(long, env = "KRELOAD_PPROF_ADDR", default_value = ":6060")]
    pub pprof_addr: String,
    /// `enabled`: also count reloads per namespace (Reloader's
    /// `reloader_reload_executed_total_by_namespace`).
    #[arg(long, env = "METRICS_COUNT_BY_NAMESPACE")]
    pub metrics_count_by_namespace: Option<String>,
}

/// Reloader's alerts, by Reloader's environment variables.
#[derive(Debug, Clone, Default, Args)]
pub struct AlertArgs {
    /// `true`: post an alert for each reload (Reloader's `ALERT_ON_RELOAD`).
    #[arg(long, env = "ALERT_ON_RELOAD")]
    pub alert_on_reload: Option<String>,
    /// `slack`, `teams`, `gchat`; anything else posts the raw text (`webhook`).
    #[arg(long, env = "ALERT_SINK")]
    pub alert_sink: Option<String>,
    /// Where alerts are posted.
    #[arg(long, env = "ALERT_WEBHOOK_URL")]
    pub alert_webhook_url: Option<String>,
    /// An HTTP proxy (`http://host:port`) alerts go through.
    #[arg(long, env = "ALERT_WEBHOOK_PROXY")]
    pub alert_webhook_proxy: Option<String>,
    /// Put before each alert's text (a cluster name, for example).
    #[arg(long, env = "ALERT_ADDITIONAL_INFO")]
    pub alert_additional_info: Option<String>,
}

/// Reloader's annotation-key flags: each replaces one key of Reloader's vocabulary (the
/// `reloader.stakater.com` keys); kreload's own `kreload.dev` keys keep working.
#[derive(Debug, Clone, Default, Args)]
pub struct AnnotationArgs {
    /// Replaces `configmap.reloader.stakater.com/reload`.
    #[arg(long, env = "KRELOAD_CONFIGMAP_ANNOTATION")]
    pub configmap_annotation: Option<String>,
    /// Replaces `secret.reloader.stakater.com/reload`.
    #[arg(long, env = "KRELOAD_SECRET_ANNOTATION")]
    pub secret_annotation: Option<String>,
    /// Replaces `reloader.stakater.com/auto`.
    #[arg(long, env = "KRELOAD_AUTO_ANNOTATION")]
    pub auto_annotation: Option<String>,
    /// Replaces `configmap.reloader.stakater.com/auto`.
    #[arg(long, env = "KRELOAD_CONFIGMAP_AUTO_ANNOTATION")]
    pub configmap_auto_annotation: Option<String>,
    /// Replaces `secret.reloader.stakater.com/auto`.
    #[arg(long, env = "KRELOAD_SECRET_AUTO_ANNOTATION")]
    pub secret_auto_annotation: Option<String>,
    /// Replaces `reloader.stakater.com/search`.
    #[arg(long, env = "KRELOAD_AUTO_SEARCH_ANNOTATION")]
    pub auto_search_annotation: Option<String>,
    /// Replaces `reloader.stakater.com/match`.
    #[arg(long, env = "KRELOAD_SEARCH_MATCH_ANNOTATION")]
    pub search_match_annotation: Option<String>,
    /// Replaces `reloader.stakater.com/ignore`.
    #[arg(long, env = "KRELOAD_IGNORE_ANNOTATION")]
    pub ignore_annotation: Option<String>,
    /// Replaces `deployment.reloader.stakater.com/pause-period`.
    #[arg(long, env = "KRELOAD_PAUSE_DEPLOYMENT_ANNOTATION")]
    pub pause_deployment_annotation: Option<String>,
    /// Replaces `deployment.reloader.stakater.com/paused-at`.
    #[arg(long, env = "KRELOAD_PAUSE_DEPLOYMENT_TIME_ANNOTATION")]
    pub pause_deployment_time_annotation: Option<String>,
}

impl AnnotationArgs {
    /// The overrides given, as vocabulary keys.
    pub fn overrides(&self) -> Vec<(Key, String)> {
        [
            (Key::ConfigMapReload, &self.configmap_annotation),
            (Key::SecretReload, &self.secret_annotation),
            (Key::Auto, &self.auto_annotation),
            (Key::ConfigMapAuto, &self.configmap_auto_annotation),
            (Key::SecretAuto, &self.secret_auto_annotation),
            (Key::Search, &self.auto_search_annotation),
            (Key::Match, &self.search_match_annotation),
            (Key::Ignore, &self.ignore_annotation),
            (Key::PausePeriod, &self.pause_deployment_annotation),
            (Key::PausedAt, &self.pause_deployment_time_annotation),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v.clone()?)))
        .collect()
    }
}

/// Go's `strconv.ParseBool`, as Reloader's boolean strings are read.
fn parse_go_bool(s: &str) -> Result<bool, String> {
    crate::reload::keys::parse_bool(s).ok_or_else(|| format!("{s:?} is not a boolean"))
}

#[derive(Debug, Clone, Args)]
pub struct CertsArgs {
    /// Directory to write ca.crt, ca.key, tls.crt and tls.key into.
    #[arg(long, env = "KRELOAD_CERTS_DIR", default_value = "certs")]
    pub dir: PathBuf,
    /// DNS names of the serving certificate (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "localhost,kreload.kreload.svc,kreload.kreload.svc.cluster.local"
    )]
    pub dns_names: Vec<String>,
    /// IP addresses of the serving certificate (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1")]
    pub ips: Vec<IpAddr>,
}

/// Reloader's binary takes its flags without a subcommand, and the `args` Reloader's chart
/// renders replace the image's `serve`: a command line whose first argument is a flag (other
/// than help or version) runs `serve`.
pub fn with_default_command(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    let flag_first = args
        .get(1)
        .and_then(|a| a.to_str())
        .is_some_and(|a| a.starts_with('-') && !matches!(a, "-h" | "--help" | "-V" | "--version"));
    if flag_first {
        args.insert(1, "serve".into());
    }
    args
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("{e} (expected e.g. 3s, 500ms, 5m)"))
}

fn parse_strategy(s: &str) -> Result<Strategy, String> {
    s.parse()
        .map_err(|e: crate::reload::model::ModelError| e.to_string())
}

fn parse_source_kind(s: &str) -> Result<SourceKind, String> {
    s.parse()
        .map_err(|e: crate::reload::model::ModelError| e.to_string())
}

fn parse_workload_kind(s: &str) -> Result<WorkloadKind, String> {
    s.parse()
        .map_err(|e: crate::reload::model::ModelError| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        let mut full = vec!["kreload", "serve"];
        full.extend_from_slice(args);
        match Cli::try_parse_from(full)?.command {
            Command::Serve(s) => Ok(*s),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn defaults_match_reloader_where_it_has_the_flag() {
        let s = serve(&[]).expect("parse");
        assert_eq!(s.reload_strategy, Strategy::EnvVars);
        assert!(!s.auto_reload_all);
        assert!(s.compat_reloader);
        assert!(!s.reload_on_create);
        assert_eq!(s.coalesce_window, Duration::from_secs(3));
        assert_eq!(s.listen_address, "0.0.0.0:9443".parse().expect("addr"));
        let r = &s.reliability;
        assert_eq!(r.resync_period, Duration::from_secs(300));
        assert!(r.resync_on_start && !r.enable_ha);
        assert_eq!((r.storm_max_reloads, r.max_patches_per_second), (5, 50));
    }

    #[test]
    fn reloaders_ha_and_sync_flags_are_accepted() {
        let s = serve(&[
            "--enable-ha",
            "--sync-after-restart=false",
            "--lease-name=x",
        ])
        .expect("parse");
        assert!(s.reliability.enable_ha);
        assert!(!s.reliability.resync_on_start);
        assert_eq!(s.reliability.lease_name, "x");
    }

    #[test]
    fn lists_and_typed_values_parse() {
        let s = serve(&[
            "--namespaces=a,b",
            "--ignored-workload-types=jobs,cronjobs",
            "--resources-to-ignore=secrets",
            "--reload-strategy=annotations",
            "--auto-reload-all",
            "--compat-reloader=false",
            "--coalesce-window=500ms",
        ])
        .expect("parse");
        assert_eq!(s.namespaces, vec!["a", "b"]);
        assert_eq!(
            s.ignored_workload_types,
            vec![WorkloadKind::Job, WorkloadKind::CronJob]
        );
        assert_eq!(s.resources_to_ignore, vec![SourceKind::Secret]);
        assert_eq!(s.reload_strategy, Strategy::Annotations);
        assert!(s.auto_reload_all);
        assert!(!s.compat_reloader);
        assert_eq!(s.coalesce_window, Duration::from_millis(500));
    }

    /// As with Reloader: a repeated single-value flag takes the last value; list flags add up.
    #[test]
    fn repeated_flags_behave_like_reloaders() {
        let s = serve(&[
            "--log-level=kreload=debug",
            "--log-level=warning",
            "--resources-to-ignore=secrets",
            "--resources-to-ignore=configmaps",
            "--enable-pprof",
            "--is-Argo-Rollouts=true",
            "--configmap-annotation",
            "example.com/reload",
        ])
        .expect("parse");
        assert_eq!(s.log.log_level, "warning");
        assert_eq!(
            s.resources_to_ignore,
            vec![SourceKind::Secret, SourceKind::ConfigMap]
        );
        assert!(s.reloader.enable_pprof);
        assert_eq!(s.reloader.is_argo_rollouts, Some(true));
        assert_eq!(
            s.reloader.annotations.overrides(),
            vec![(Key::ConfigMapReload, "example.com/reload".to_owned())]
        );
    }

    #[test]
    fn reloaders_command_line_without_a_subcommand_is_serve() {
        let argv = |a: &[&str]| -> Vec<OsString> { a.iter().map(OsString::from).collect() };
        assert_eq!(
            with_default_command(argv(&["kreload", "--log-level=info"])),
            argv(&["kreload", "serve", "--log-level=info"])
        );
        for kept in [
            &["kreload", "serve", "--log-level=info"][..],
            &["kreload", "certs"],
            &["kreload", "--help"],
            &["kreload", "-V"],
            &["kreload"],
        ] {
            assert_eq!(with_default_command(argv(kept)), argv(kept));
        }
    }

    #[test]
    fn bad_values_are_refused_with_a_message() {
        for bad in [
            "--reload-strategy=rolling",
            "--ignored-workload-types=pods",
            "--resources-to-ignore=services",
            "--coalesce-window=soon",
            "--listen-address=nowhere",
            "--resync-period=often",
            "--storm-max-reloads=-1",
        ] {
            let err = serve(&[bad]).expect_err(bad);
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{bad}: {err}"
            );
        }
    }
}
