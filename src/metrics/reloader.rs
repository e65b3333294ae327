//! Reloader's metric names, served beside kreload's so dashboards and alert rules written
//! for Reloader keep working (README, "Metrics"). Each is fed from the same events as
//! kreload's own series.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::register;

/// From the first admitted write to the patch: includes the coalescing window.
const LATENCY_BUCKETS: [f64; 12] = [
    0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SuccessLabels {
    success: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SuccessNamespaceLabels {
    success: &'static str,
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    workload_kind: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkloadKindLabels {
    workload_kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Reloader's series, under the `reloader_` prefix.
#[derive(Debug)]
pub struct ReloaderMetrics {
    reload_executed: Family<SuccessLabels, Counter>,
    /// Only with `METRICS_COUNT_BY_NAMESPACE=enabled`, as in Reloader. A gauge that only
    /// grows: a counter would be served as `…_by_namespace_total`, not Reloader's name.
    by_namespace: Option<Family<SuccessNamespaceLabels, Gauge>>,
    action: Family<ActionLabels, Counter>,
    action_latency: Family<WorkloadKindLabels, Histogram, fn() -> Histogram>,
    skipped: Family<ReasonLabels, Counter>,
    /// Labelled `type`, which a derived label set cannot name.
    errors: Family<Vec<(&'static str, &'static str)>, Counter>,
    workqueue_depth: Gauge,
    workqueue_adds: Counter,
}

/// Why something was skipped, in Reloader's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skipped {
    /// Out of scope: namespace, kind, labels, or the `ignore` annotation.
    IgnoredOrNotSelected,
    /// The write left the content as it was.
    NoDataChange,
    /// The workload already reflected the content (or had no container for it).
    StrategyNotUpdated,
}

impl Skipped {
    fn as_str(self) -> &'static str {
        match self {
            Skipped::IgnoredOrNotSelected => "ignored_or_not_selected",
            Skipped::NoDataChange => "no_data_change",
            Skipped::StrategyNotUpdated => "strategy_not_updated",
        }
    }
}

impl ReloaderMetrics {
    /// The root registry, holding Reloader's series under `reloader_`, and those series.
    pub(super) fn root(by_namespace: bool) -> (Registry, Self) {
        let mut root = Registry::default();
        let metrics = Self::new(root.sub_registry_with_prefix("reloader"), by_namespace);
        (root, metrics)
    }

    fn new(r: &mut Registry, by_namespace: bool) -> Self {
        let reload_executed = register(
            r,
            "reload_executed",
            "Counter of reloads executed by Reloader.",
            None,
            Family::default(),
        );
        let by_namespace = by_namespace.then(|| {
            register(
                r,
                "reload_executed_total_by_namespace",
                "Counter of reloads executed by Reloader by namespace.",
                None,
                Family::default(),
            )
        });
        let action = register(
            r,
            "action",
            "Total number of reload actions by workload kind and result.",
            None,
            Family::default(),
        );
        let action_latency: Family<_, _, fn() -> Histogram> = register(
            r,
            "action_latency",
            "Time from event received to action applied in seconds.",
            Some(Unit::Seconds),
            Family::new_with_constructor(latency_histogram),
        );
        let skipped = register(
            r,
            "skipped",
            "Total number of skipped operations by reason.",
            None,
            Family::default(),
        );
        let errors = register(
            r,
            "errors",
            "Total number of errors by type.",
            None,
            Family::default(),
        );
        let workqueue_depth = register(
            r,
            "workqueue_depth",
            "Current depth of the work queue.",
            None,
            Gauge::default(),
        );
        let workqueue_adds = register(
            r,
            "workqueue_adds",
            "Total number of items added to the work queue.",
            None,
            Counter::default(),
        );
        ReloaderMetrics {
            reload_executed,
            by_namespace,
            action,
            action_latency,
            skipped,
            errors,
            workqueue_depth,
            workqueue_adds,
        }
    }

    /// A workload was patched (`success`) or its reload failed.
    pub fn executed(
        &self,
        namespace: &str,
        workload_kind: &'static str,
        success: bool,
        latency: Option<Duration>,
    ) {
        let label = if success { "true" } else { "false" };
        self.reload_executed
            .get_or_create(&SuccessLabels { success: label })
            .inc();
        if let Some(family) = &self.by_namespace {
            family
                .get_or_create(&SuccessNamespaceLabels {
                    success: label,
                    namespace: namespace.to_owned(),
                })
                .inc();
        }
        let result = if success { "success" } else { "error" };
        self.action
            .get_or_create(&ActionLabels {
                workload_kind,
                result,
            })
            .inc();
        if let Some(latency) = latency {
            self.action_latency
                .get_or_create(&WorkloadKindLabels { workload_kind })
                .observe(latency.as_secs_f64());
        }
        if !success {
            self.errors
                .get_or_create(&vec![("type", "handler_error")])
                .inc();
        }
    }

    pub fn skipped(&self, why: Skipped) {
        self.skipped
            .get_or_create(&ReasonLabels {
                reason: why.as_str(),
            })
            .inc();
    }

    pub(super) fn queued(&self) {
        self.workqueue_adds.inc();
    }

    pub(super) fn set_depth(&self, depth: i64) {
        self.workqueue_depth.set(depth);
    }
}
