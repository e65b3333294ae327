//! Wiring: `kreload serve` builds the index, the queue, the worker and the servers from
//! the flags and runs them until shutdown.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::DynamicObject;
use kube::runtime::events::{Recorder, Reporter};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::admission::sources::{SourceFilter, SourcesReviewer};
use crate::admission::workloads::WorkloadsReviewer;
use crate::admission::{self, CertResolver, ConnectionLimits, Readiness};
use crate::cli::{LogArgs, LogFormat, ServeArgs};
use crate::index::{self, SharedIndex, Workload};
use crate::metrics::Metrics;
use crate::namespaces::NamespaceGate;
use crate::reload::keys::Vocabulary;
use crate::reload::model::WorkloadKind;
use crate::reload::rules::RuleOptions;
use crate::selector::Selector;
use crate::shutdown::Drain;
use crate::worker::Worker;
use crate::worker::apply::Settings;
use crate::worker::apply::api_resource;
use crate::worker::queue::Queue;

/// Sets up tracing from the log flags (text or JSON, level or filter).
pub fn init_tracing(log: &LogArgs) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&log.log_level)
        .with_context(|| format!("invalid --log-level {:?}", log.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match log.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // A second init (the demo runs serve in-process) keeps the first subscriber.
    let _ = result;
    Ok(())
}

fn selector(values: &[String], flag: &str) -> Result<Selector> {
    Selector::parse(values).with_context(|| format!("invalid --{flag}"))
}

/// The filter of admitted writes, from the flags.
pub fn source_filter(args: &ServeArgs) -> Result<SourceFilter> {
    let resource_labels = selector(&args.resource_label_selector, "resource-label-selector")?;
    let namespace_labels = selector(&args.namespace_selector, "namespace-selector")?;
    let namespace_gate = NamespaceGate::new(
        (!namespace_labels.is_empty()).then(|| namespace_labels.to_kubernetes()),
    );
    let set = |v: &[String]| -> HashSet<String> {
        v.iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    };
    Ok(SourceFilter {
        own_namespace: args.own_namespace.clone().filter(|s| !s.is_empty()),
        namespaces: set(&args.namespaces),
        namespaces_to_ignore: set(&args.namespaces_to_ignore),
        resource_labels,
        ignored_kinds: args.resources_to_ignore.iter().copied().collect(),
        reload_on_create: args.reload_on_create,
        reload_on_delete: args.reload_on_delete,
        namespace_gate,
    })
}

async fn client(args: &ServeArgs) -> Result<Client> {
    match &args.kubeconfig {
        Some(path) => Ok(crate::controlplane::client_from_kubeconfig(path).await?),
        None => Client::try_default()
            .await
            .context("no Kubernetes configuration (in-cluster or KUBECONFIG)"),
    }
}

/// The workload watches that feed the index, and their synced flags.
struct Watches {
    client: Client,
    namespaces: Vec<String>,
    rules: Arc<RuleOptions>,
    index: SharedIndex,
    metrics: Arc<Metrics>,
    tasks: tokio::task::JoinSet<()>,
    synced: Vec<watch::Receiver<bool>>,
}

impl Watches {
    /// One watch per watched namespace, or one cluster-wide.
    fn apis<K>(
        &self,
        all: impl Fn() -> Api<K>,
        namespaced: impl Fn(&str) -> Api<K>,
    ) -> Vec<Api<K>> {
        if self.namespaces.is_empty() {
            vec![all()]
        } else {
            self.namespaces.iter().map(|ns| namespaced(ns)).collect()
        }
    }

    fn spawn<K: index::Templated>(&mut self, kind: WorkloadKind, apis: Vec<Api<K>>)
    where
        K::DynamicType: Clone + Eq + std::hash::Hash,
    {
        for api in apis {
            let (tx, rx) = watch::channel(false);
            self.tasks.spawn(index::watch_kind(
                api,
                kind,
                self.rules.clone(),
                self.index.clone(),
                tx,
                self.metrics.clone(),
            ));
            self.synced.push(rx);
        }
    }

    fn typed<K>(&mut self)
    where
        K: Workload + kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    {
        let client = self.client.clone();
        let apis = self.apis(
            || Api::<K>::all(client.clone()),
            |ns| Api::namespaced(client.clone(), ns),
        );
        self.spawn(K::KIND, apis);
    }

    /// Argo Rollouts, when their CRD is served.
    async fn rollouts(&mut self) {
        let resource = api_resource(WorkloadKind::Rollout);
        match self
            .client
            .list_api_group_resources(&resource.api_version)
            .await
        {
            Ok(list) if list.resources.iter().any(|r| r.name == resource.plural) => {
                let client = self.client.clone();
                let apis = self.apis(
                    || Api::all_with(client.clone(), &resource),
                    |ns| Api::namespaced_with(client.clone(), ns, &resource),
                );
                self.spawn::<DynamicObject>(WorkloadKind::Rollout, apis);
                tracing::info!("argo rollouts found; watching them");
            }
            _ => tracing::info!("no argo rollouts CRD; rollouts are not watched"),
        }
    }
}

/// Not ready from the moment shutdown begins, so endpoints stop sending admissions to this
/// replica while it drains, rather than once the listener has closed.
fn withdraw_on_shutdown(readiness: Readiness, drain: Drain) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        drain.deadline().await;
        readiness.set_not_ready();
        tracing::info!("shutting down; not ready");
    })
}

/// Runs the webhook listener (`served`) until it has drained, then lets the worker finish
/// what was admitted, both by the one deadline, so shutdown takes at most the grace period.
async fn drain_in_order<E>(
    served: impl Future<Output = Result<(), E>>,
    worker: tokio::task::JoinHandle<()>,
    queue: &Queue,
    drain: &Drain,
) -> Result<(), E> {
    let served = served.await;
    // The listener returns before shutdown only on an error; shut down then too.
    drain.begin();
    let deadline = drain.deadline().await;
    queue.close();
    if tokio::time::timeout_at(deadline, worker).await.is_err() {
        tracing::warn!(
            pending = queue.len(),
            "worker did not finish in time; pending changes dropped"
        );
    }
    served
}

/// Runs kreload until `shutdown` is cancelled (or a signal arrives when `shutdown` is the
/// token from [`crate::shutdown::signals`]).
pub async fn serve(args: ServeArgs, shutdown: CancellationToken) -> Result<()> {
    // Local inputs first, so a bad flag or file fails before any cluster call.
    let filter = source_filter(&args)?;
    let resolver = CertResolver::new(args.tls_cert_file.clone(), args.tls_key_file.clone())
        .context("loading the serving certificate")?;
    let tls = Arc::new(admission::server_config(resolver)?);
    let client = client(&args).await?;
    let vocabulary = Vocabulary::new(args.compat_reloader);
    let rules = Arc::new(RuleOptions {
        vocabulary: vocabulary.clone(),
        auto_reload_all: args.auto_reload_all,
        ignored_workload_kinds: args.ignored_workload_types.iter().copied().collect(),
    });
    let metrics = Arc::new(Metrics::new());
    let readiness = Readiness::new();
    let drain = Drain::new(shutdown, args.shutdown_grace);
    withdraw_on_shutdown(readiness.clone(), drain.clone());
    let index = SharedIndex::default();
    let queue = Arc::new(Queue::new(args.queue_capacity, args.coalesce_window));

    // Workload watches feed the index; the index is ready once every watch listed.
    let mut watches = Watches {
        client: client.clone(),
        namespaces: filter.namespaces.iter().cloned().collect(),
        rules: rules.clone(),
        index: index.clone(),
        metrics: metrics.clone(),
        tasks: tokio::task::JoinSet::new(),
        synced: Vec::new(),
    };
    for kind in WorkloadKind::ALL {
        if rules.ignored_workload_kinds.contains(&kind) {
            continue;
        }
        match kind {
            WorkloadKind::Deployment => watches.typed::<Deployment>(),
            WorkloadKind::StatefulSet => watches.typed::<StatefulSet>(),
            WorkloadKind::DaemonSet => watches.typed::<DaemonSet>(),
            WorkloadKind::CronJob => watches.typed::<CronJob>(),
            WorkloadKind::Job => watches.typed::<Job>(),
            WorkloadKind::Rollout => watches.rollouts().await,
        }
    }
    let Watches {
        tasks: mut watches,
        mut synced,
        ..
    } = watches;
    {
        let (tx, rx) = watch::channel(false);
        watches.spawn(filter.namespace_gate.clone().watch(client.clone(), tx));
        synced.push(rx);
    }
    {
        let readiness = readiness.clone();
        let index = index.clone();
        tokio::spawn(async move {
            for mut rx in synced {
                if rx.wait_for(|done| *done).await.is_err() {
                    return;
                }
            }
            tracing::info!(workloads = index.read(|i| i.len()), "workload index synced");
            readiness.set_index_synced();
        });
    }

    let reporter = Reporter {
        controller: "kreload".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let worker = Worker {
        client: client.clone(),
        queue: queue.clone(),
        index: index.clone(),
        rules: rules.clone(),
        settings: Settings {
            strategy: args.reload_strategy,
            vocabulary: vocabulary.clone(),
        },
        metrics: metrics.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        confirm_patience: Duration::from_secs(3),
        scope: filter.clone(),
    };
    let worker = tokio::spawn(worker.run());

    let sources = Arc::new(SourcesReviewer {
        filter: filter.clone(),
        vocabulary,
        index: index.clone(),
        queue: queue.clone(),
        metrics: metrics.clone(),
    });
    let workloads = Arc::new(WorkloadsReviewer {
        client: client.clone(),
        rules: rules.clone(),
        filter,
        read_budget: Duration::from_secs(2),
    });
    let app = admission::router(
        sources,
        workloads,
        metrics.clone(),
        admission::DEFAULT_BODY_LIMIT,
    );

    let listener = tokio::net::TcpListener::bind(args.listen_address)
        .await
        .with_context(|| format!("binding {}", args.listen_address))?;
    let admin_listener = tokio::net::TcpListener::bind(args.admin_address)
        .await
        .with_context(|| format!("binding {}", args.admin_address))?;
    tracing::info!(
        listen = %listener.local_addr()?,
        admin = %admin_listener.local_addr()?,
        strategy = %args.reload_strategy,
        coalesce_window = ?args.coalesce_window,
        "serving"
    );
    readiness.set_tls_bound();
    let admin_app = admission::admin_router(readiness.clone(), metrics.clone());
    let admin_token = CancellationToken::new();
    let admin = tokio::spawn(admission::serve_plain(
        admin_listener,
        admin_app,
        admin_token.clone(),
    ));

    let served = admission::serve_tls(
        listener,
        tls,
        app,
        ConnectionLimits::default(),
        drain.clone(),
    );
    let served = drain_in_order(served, worker, &queue, &drain).await;
    watches.abort_all();
    admin_token.cancel();
    let _ = admin.await;
    served?;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests;
