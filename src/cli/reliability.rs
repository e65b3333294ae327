//! The flags of the resync, leader election and storm control.

use std::time::Duration;

use clap::Args;

use super::parse_duration;

/// The resync, leader election and storm control.
#[derive(Debug, Clone, Args)]
pub struct ReliabilityArgs {
    /// How often the leader compares every opted-in workload with its sources' live
    /// content and reloads what differs; 0 turns the periodic resync off.
    #[arg(long, env = "KRELOAD_RESYNC_PERIOD", default_value = "5m", value_parser = parse_duration)]
    pub resync_period: Duration,
    /// Resync once at start (Reloader's `--sync-after-restart` is the same flag).
    #[arg(long, alias = "sync-after-restart", env = "KRELOAD_RESYNC_ON_START", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub resync_on_start: bool,
    /// Run several replicas: elect a leader on a Lease (Reloader's flag). Without it there
    /// is no Lease and this replica is the leader.
    #[arg(long, env = "KRELOAD_ENABLE_HA", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub enable_ha: bool,
    /// Name of the coordination.k8s.io Lease.
    #[arg(long, env = "KRELOAD_LEASE_NAME", default_value = "kreload")]
    pub lease_name: String,
    /// Namespace of the Lease; kreload's own namespace (POD_NAMESPACE) when unset, else `default`.
    #[arg(long, env = "KRELOAD_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// How long the Lease is held without renewal (whole seconds).
    #[arg(long, env = "KRELOAD_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// How long before expiry the leader renews the Lease (whole seconds, below the duration).
    #[arg(long, env = "KRELOAD_LEASE_GRACE", default_value = "5s", value_parser = parse_duration)]
    pub lease_grace: Duration,
    /// Rollouts of one workload allowed per --storm-period; further reloads are held, never
    /// dropped. 0 turns the limit off.
    #[arg(long, env = "KRELOAD_STORM_MAX_RELOADS", default_value_t = 5)]
    pub storm_max_reloads: usize,
    /// The period of --storm-max-reloads.
    #[arg(long, env = "KRELOAD_STORM_PERIOD", default_value = "10m", value_parser = parse_duration)]
    pub storm_period: Duration,
    /// Held reloads are applied, with the latest content, once their sources have not
    /// changed for this long (or once the period has room again).
    #[arg(long, env = "KRELOAD_STORM_QUIET", default_value = "30s", value_parser = parse_duration)]
    pub storm_quiet: Duration,
    /// Workload patches per second over all workloads; more wait their turn. 0: no limit.
    #[arg(long, env = "KRELOAD_MAX_PATCHES_PER_SECOND", default_value_t = 50)]
    pub max_patches_per_second: u32,
}
