//! Prometheus metrics, exposed in OpenMetrics text on the admin port.
//!
//! Callers use the typed helpers on [`Metrics`]; label sets are private so every series
//! name and label value comes from one place and cardinality stays bounded. Reloader's
//! names are served beside kreload's ([`reloader`]).

pub mod reloader;

use std::fmt;
use std::time::Duration;

use kube::core::admission::Operation;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry, Unit};

mod reliability;
pub use reliability::Reliability;
use reloader::ReloaderMetrics;

/// Content type of [`Metrics::encode`]'s output.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Admission answers must come back within a millisecond budget; anything near a second is
/// already close to the webhook timeout, so resolve the sub-millisecond range finely.
const ADMISSION_BUCKETS: [f64; 13] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// A PATCH is an API-server round trip: milliseconds normally, seconds when it is loaded.
const PATCH_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Which admission endpoint served a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /validate/sources`: ConfigMap and Secret writes.
    Sources,
    /// `POST /mutate/workloads`: workload CREATE and UPDATE.
    Workloads,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sources => "sources",
            Self::Workloads => "workloads",
        }
    }
}

/// How an admission request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AdmissionOutcome {
    /// Allowed without a patch.
    Allowed,
    /// Allowed with a JSON patch.
    Patched,
    /// Denied by the reviewer.
    Denied,
    /// The review had a uid but the object could not be read.
    Invalid,
    /// The body was not an AdmissionReview with a request (HTTP 400).
    Malformed,
    /// The body was over the size limit (HTTP 413).
    TooLarge,
    /// The body did not arrive within the body deadline (HTTP 408).
    TimedOut,
    /// No room within the admission bounds in time (HTTP 503).
    Overloaded,
}

impl AdmissionOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Patched => "patched",
            Self::Denied => "denied",
            Self::Invalid => "invalid",
            Self::Malformed => "malformed",
            Self::TooLarge => "too_large",
            Self::TimedOut => "timed_out",
            Self::Overloaded => "overloaded",
        }
    }
}

/// Why an intent was dropped before it reloaded anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The bounded queue was full; the change was dropped.
    QueueFull,
    /// The worker is gone (shutting down).
    QueueClosed,
    /// The live object still had the content from before the write(s): rejected after
    /// kreload admitted them.
    NotPersisted,
    /// The live object could not be read to confirm the write.
    Unconfirmed,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::QueueClosed => "queue_closed",
            Self::NotPersisted => "not_persisted",
            Self::Unconfirmed => "unconfirmed",
        }
    }
}

/// What a reload attempt did to one workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReloadOutcome {
    Reloaded,
    /// The workload already carried the value; nothing was written.
    AlreadyApplied,
    /// No container to put the env var on.
    NoContainer,
    Failed,
    /// The workload was deleted before the reload reached it.
    Gone,
}

impl ReloadOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reloaded => "reloaded",
            Self::AlreadyApplied => "already_applied",
            Self::NoContainer => "no_container",
            Self::Failed => "failed",
            Self::Gone => "gone",
        }
    }
}

fn operation_label(operation: Option<&Operation>) -> &'static str {
    match operation {
        Some(Operation::Create) => "CREATE",
        Some(Operation::Update) => "UPDATE",
        Some(Operation::Delete) => "DELETE",
        Some(Operation::Connect) => "CONNECT",
        None => "UNKNOWN",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AdmissionLabels {
    endpoint: &'static str,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    kind: &'static str,
    strategy: &'static str,
    outcome: &'static str,
}

fn admission_histogram() -> Histogram {
    Histogram::new(ADMISSION_BUCKETS)
}

/// All of kreload's metrics and the registry they are encoded from.
#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    admission_requests: Family<AdmissionLabels, Counter>,
    admission_duration: Family<EndpointLabels, Histogram, fn() -> Histogram>,
    intents_enqueued: Family<KindLabels, Counter>,
    intents_dropped: Family<ReasonLabels, Counter>,
    intents_coalesced: Counter,
    queue_depth: Gauge,
    index_workloads: Gauge,
    reloads: Family<ReloadLabels, Counter>,
    reload_patch_duration: Histogram,
    /// Reloader's series (`reloader_…`).
    pub reloader: reloader::ReloaderMetrics,
    /// The resync, the lease and storm control.
    pub reliability: Reliability,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Registers `metric` as `name` (with `unit`, if any) and hands it back.
fn register<M: Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    metric: M,
) -> M {
    match unit {
        Some(unit) => registry.register_with_unit(name, help, unit, metric.clone()),
        None => registry.register(name, help, metric.clone()),
    }
    metric
}

impl Metrics {
    pub fn new() -> Self {
        Self::with_reloader_by_namespace(false)
    }

    /// Also serves Reloader's `reloader_reload_executed_total_by_namespace` when `by_namespace`
    /// (`METRICS_COUNT_BY_NAMESPACE=enabled`).
    pub fn with_reloader_by_namespace(by_namespace: bool) -> Self {
        let (mut root, reloader) = reloader::ReloaderMetrics::root(by_namespace);
        let reliability = Reliability::register(root.sub_registry_with_prefix("kreload"));
        Self::build(root, reloader, reliability)
    }

    fn build(mut root: Registry, reloader: ReloaderMetrics, rel: Reliability) -> Self {
        let r = root.sub_registry_with_prefix("kreload");
        let admission_requests = register(
            r,
            "admission_requests",
            "Admission requests answered, by endpoint, operation and outcome",
            None,
            Family::default(),
        );
        let admission_duration: Family<_, _, fn() -> Histogram> = register(
            r,
            "admission_duration",
            "Time to parse, review and answer an admission request",
            Some(Unit::Seconds),
            Family::new_with_constructor(admission_histogram),
        );
        let intents_enqueued = register(
            r,
            "intents_enqueued",
            "Reload intents put on the queue, by source kind",
            None,
            Family::default(),
        );
        let intents_dropped = register(
            r,
            "intents_dropped",
            "Reload intents dropped before the queue, by reason",
            None,
            Family::default(),
        );
        let intents_coalesced = register(
            r,
            "intents_coalesced",
            "Reload intents merged into one already queued for the same source",
            None,
            Counter::default(),
        );
        let queue_depth = register(
            r,
            "queue_depth",
            "Reload intents waiting for the worker",
            None,
            Gauge::default(),
        );
        let index_workloads = register(
            r,
            "index_workloads",
            "Opted-in workloads kept in the workload index",
            None,
            Gauge::default(),
        );
        let reloads = register(
            r,
            "reloads",
            "Reload attempts on workloads, by kind, strategy and outcome",
            None,
            Family::default(),
        );
        let reload_patch_duration = register(
            r,
            "reload_patch_duration",
            "Time to apply a reload to one workload: read, plan, patch and retries",
            Some(Unit::Seconds),
            Histogram::new(PATCH_BUCKETS),
        );
        Self {
            reliability: rel,
            registry: root,
            reloader,
            admission_requests,
            admission_duration,
            intents_enqueued,
            intents_dropped,
            intents_coalesced,
            queue_depth,
            index_workloads,
            reloads,
            reload_patch_duration,
        }
    }

    /// Records one answered admission request and how long it took.
    pub fn admission(
        &self,
        endpoint: Endpoint,
        operation: Option<&Operation>,
        outcome: AdmissionOutcome,
        elapsed: Duration,
    ) {
        self.admission_requests
            .get_or_create(&AdmissionLabels {
                endpoint: endpoint.as_str(),
                operation: operation_label(operation),
                outcome: outcome.as_str(),
            })
            .inc();
        self.admission_duration
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.as_str(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// An intent was queued; `source_kind` is the source's kind name (`ConfigMap`, `Secret`).
    pub fn intent_enqueued(&self, source_kind: &'static str) {
        self.reloader.queued();
        self.intents_enqueued
            .get_or_create(&KindLabels { kind: source_kind })
            .inc();
    }

    pub fn intent_dropped(&self, reason: DropReason) {
        self.intents_dropped
            .get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            })
            .inc();
    }

    /// A ConfigMap/Secret write the sources webhook skipped, by its reason text; counted
    /// under Reloader's `reloader_skipped_total` reasons where Reloader has one.
    pub fn source_skipped(&self, reason: &str) {
        use reloader::Skipped;
        let why = match reason {
            "content unchanged" => Skipped::NoDataChange,
            "namespace not watched"
            | "kind ignored"
            | "labels do not match"
            | "ignore annotation" => Skipped::IgnoredOrNotSelected,
            _ => return,
        };
        self.reloader.skipped(why);
    }

    pub fn intent_coalesced(&self) {
        self.intents_coalesced.inc();
    }

    pub fn set_index_workloads(&self, count: usize) {
        self.index_workloads
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub fn set_queue_depth(&self, depth: usize) {
        let depth = i64::try_from(depth).unwrap_or(i64::MAX);
        self.queue_depth.set(depth);
        self.reloader.set_depth(depth);
    }

    /// Records a reload attempt. `workload_kind` and `strategy` are the static names the
    /// reload module uses (`Deployment`, `env-vars`), so the label values stay bounded.
    pub fn reload(
        &self,
        workload_kind: &'static str,
        strategy: &'static str,
        outcome: ReloadOutcome,
    ) {
        self.reloads
            .get_or_create(&ReloadLabels {
                kind: workload_kind,
                strategy,
                outcome: outcome.as_str(),
            })
            .inc();
    }

    pub fn observe_reload_patch(&self, elapsed: Duration) {
        self.reload_patch_duration.observe(elapsed.as_secs_f64());
    }

    /// The registry in OpenMetrics text, ending with `# EOF`.
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_show_up_with_their_labels() {
        let metrics = Metrics::new();
        metrics.admission(
            Endpoint::Sources,
            Some(&Operation::Update),
            AdmissionOutcome::Allowed,
            Duration::from_micros(300),
        );
        metrics.intent_enqueued("Secret");
        metrics.intent_dropped(DropReason::QueueFull);
        metrics.intent_coalesced();
        metrics.set_queue_depth(7);
        metrics.reload("Deployment", "env-vars", ReloadOutcome::AlreadyApplied);
        metrics.observe_reload_patch(Duration::from_millis(20));
        let text = metrics.encode().expect("encode");

        for line in [
            r#"kreload_admission_requests_total{endpoint="sources",operation="UPDATE",outcome="allowed"} 1"#,
            r#"kreload_admission_duration_seconds_bucket{le="0.0005",endpoint="sources"} 1"#,
            r#"kreload_admission_duration_seconds_bucket{le="0.00025",endpoint="sources"} 0"#,
            r#"kreload_intents_enqueued_total{kind="Secret"} 1"#,
            r#"kreload_intents_dropped_total{reason="queue_full"} 1"#,
            "kreload_intents_coalesced_total 1",
            "kreload_queue_depth 7",
            r#"kreload_reloads_total{kind="Deployment",strategy="env-vars",outcome="already_applied"} 1"#,
            "kreload_reload_patch_duration_seconds_count 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
        assert!(!text.contains("reloader_reload_executed_total_by_namespace"));
    }

    #[test]
    fn reloaders_names_are_served_beside() {
        use reloader::Skipped;
        let metrics = Metrics::with_reloader_by_namespace(true);
        metrics.intent_enqueued("ConfigMap");
        metrics.set_queue_depth(2);
        let m = &metrics.reloader;
        m.executed(
            "shop",
            "Deployment",
            true,
            Some(Duration::from_millis(1500)),
        );
        m.executed("shop", "StatefulSet", false, None);
        m.skipped(Skipped::NoDataChange);
        m.skipped(Skipped::IgnoredOrNotSelected);
        m.skipped(Skipped::StrategyNotUpdated);
        let text = metrics.encode().expect("encode");
        for line in [
            r#"reloader_reload_executed_total{success="true"} 1"#,
            r#"reloader_reload_executed_total{success="false"} 1"#,
            r#"reloader_reload_executed_total_by_namespace{success="true",namespace="shop"} 1"#,
            r#"reloader_action_total{workload_kind="Deployment",result="success"} 1"#,
            r#"reloader_action_total{workload_kind="StatefulSet",result="error"} 1"#,
            r#"reloader_action_latency_seconds_bucket{le="2.0",workload_kind="Deployment"} 1"#,
            r#"reloader_skipped_total{reason="no_data_change"} 1"#,
            r#"reloader_skipped_total{reason="ignored_or_not_selected"} 1"#,
            r#"reloader_skipped_total{reason="strategy_not_updated"} 1"#,
            r#"reloader_errors_total{type="handler_error"} 1"#,
            "reloader_workqueue_depth 2",
            "reloader_workqueue_adds_total 1",
            r#"kreload_intents_enqueued_total{kind="ConfigMap"} 1"#,
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
