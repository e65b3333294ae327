//! The metrics of the resync, the lease and storm control.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Default)]
pub struct Reliability {
    reloads_held: Counter,
    storm_trips: Counter,
    resync_passes: Counter,
    resync_stale: Counter,
    resync_baselines: Counter,
    resync_errors: Counter,
    leader: Gauge,
}

impl Reliability {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Reliability::default();
        let mut add = |name: &str, help: &str, metric: &Counter| {
            registry.register(name, help, metric.clone());
        };
        add(
            "reloads_held",
            "Reloads held back by the per-workload storm limit (applied later, never dropped)",
            &m.reloads_held,
        );
        add(
            "storm_trips",
            "Times a workload's storm limit tripped",
            &m.storm_trips,
        );
        add("resync_passes", "Completed resync passes", &m.resync_passes);
        add(
            "resync_stale",
            "Workloads the resync found behind their sources' live content",
            &m.resync_stale,
        );
        add(
            "resync_baselines",
            "Observed records the resync wrote to workloads that had none (no rollout)",
            &m.resync_baselines,
        );
        add(
            "resync_errors",
            "Workloads or sources the resync could not read or record (retried next pass)",
            &m.resync_errors,
        );
        registry.register(
            "leader",
            "1 while this replica holds the lease (always 1 without --enable-ha)",
            m.leader.clone(),
        );
        m
    }

    pub fn reload_held(&self) {
        self.reloads_held.inc();
    }

    pub fn storm_tripped(&self) {
        self.storm_trips.inc();
    }

    pub fn resync_pass(&self) {
        self.resync_passes.inc();
    }

    pub fn resync_stale(&self) {
        self.resync_stale.inc();
    }

    pub fn resync_baseline(&self) {
        self.resync_baselines.inc();
    }

    pub fn resync_error(&self) {
        self.resync_errors.inc();
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }
}
