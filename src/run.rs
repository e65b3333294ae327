//! Wiring: `kreload serve` builds the index, the queue, the worker, the loops and the
//! servers from the [`Config`] and runs them until shutdown.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::DynamicObject;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::admission::sources::SourcesReviewer;
use crate::admission::workloads::WorkloadsReviewer;
use crate::admission::{Limits, Load};
use crate::cli::{CertsArgs, ServeArgs};
use crate::config::Config;
use crate::index::SharedIndex;
use crate::kube::events::Events;
use crate::kube::index::{Slim, Templated, Workload, watch_kind};
use crate::kube::workloads::api_resource;
use crate::loops::lease::{self, Leadership};
use crate::loops::resumer::Resumer;
use crate::loops::resync::Resync;
use crate::metrics::Metrics;
use crate::queue::Queue;
use crate::reload::model::WorkloadKind;
use crate::reload::rules::RuleOptions;
use crate::server::shutdown::Drain;
use crate::server::{self, CertResolver, Readiness};
use crate::worker::Worker;
use crate::worker::limits::Limiter;

pub mod runtime;

/// `kreload certs`: a CA and a serving certificate for local use.
pub fn certs(args: &CertsArgs) -> Result<()> {
    let paths = crate::certs::write_serving_bundle(&args.dir, &args.dns_names, &args.ips)?;
    println!("wrote {}", paths.ca_cert.display());
    println!("wrote {}", paths.ca_key.display());
    println!(
        "wrote {} (for {:?} {:?})",
        paths.cert.display(),
        args.dns_names,
        args.ips
    );
    println!("wrote {}", paths.key.display());
    Ok(())
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

    fn spawn<K: Templated>(&mut self, kind: WorkloadKind, apis: Vec<Api<Slim<K>>>)
    where
        K::DynamicType: Clone + Eq + std::hash::Hash,
    {
        for api in apis {
            let (tx, rx) = watch::channel(false);
            self.tasks.spawn(watch_kind(
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
            || Api::<Slim<K>>::all(client.clone()),
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

/// Starts the workload watches (and the namespace gate's) and marks the index synced once
/// every one of them has listed.
async fn start_watches(
    client: &Client,
    config: &Config,
    rules: &Arc<RuleOptions>,
    index: &SharedIndex,
    metrics: &Arc<Metrics>,
    readiness: &Readiness,
) -> (tokio::task::JoinSet<()>, watch::Receiver<bool>) {
    let mut watches = Watches {
        client: client.clone(),
        namespaces: config.scope.namespaces.iter().cloned().collect(),
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
        mut tasks,
        mut synced,
        ..
    } = watches;
    let (tx, rx) = watch::channel(false);
    let gate = config.scope.namespace_gate.clone();
    tasks.spawn(crate::kube::namespaces::watch(gate, client.clone(), tx));
    synced.push(rx);
    let readiness = readiness.clone();
    let index = index.clone();
    let (all_synced, all_synced_rx) = watch::channel(false);
    tokio::spawn(async move {
        for mut rx in synced {
            if rx.wait_for(|done| *done).await.is_err() {
                return;
            }
        }
        tracing::info!(workloads = index.read(|i| i.len()), "workload index synced");
        readiness.set_index_synced();
        let _ = all_synced.send(true);
        // Keep the flag readable for a resync that starts later (a new leader).
        all_synced.closed().await;
    });
    (tasks, all_synced_rx)
}

/// Joins the election (with `--enable-ha`), or leads alone; the `leader` gauge follows.
async fn leadership(
    config: &Config,
    client: &Client,
    metrics: &Arc<Metrics>,
) -> Result<(Leadership, Option<lease::Election>)> {
    let election = match &config.reliability.lease {
        Some(lease) => Some(
            lease::elect(client.clone(), lease)
                .await
                .context("joining the leader election")?,
        ),
        None => None,
    };
    let leadership = election
        .as_ref()
        .map_or_else(Leadership::always, lease::Election::leadership);
    let (mut watch, metrics) = (leadership.clone(), metrics.clone());
    tokio::spawn(async move {
        loop {
            watch.until(true).await;
            metrics.reliability.set_leader(true);
            watch.until(false).await;
            metrics.reliability.set_leader(false);
        }
    });
    Ok((leadership, election))
}

/// The resync, reloading through `worker`.
fn resync(
    config: &Config,
    client: &Client,
    index: &SharedIndex,
    synced: watch::Receiver<bool>,
    rules: &Arc<RuleOptions>,
    worker: &Arc<Worker>,
    metrics: &Arc<Metrics>,
) -> Resync {
    Resync {
        client: client.clone(),
        index: index.clone(),
        synced,
        rules: rules.clone(),
        scope: config.scope.clone(),
        reloads: worker.clone(),
        metrics: metrics.clone(),
        config: config.reliability.resync,
        led_before: Default::default(),
    }
}

/// The leader's loops: the pause resumer's scan and the resync, each stopped when the lease
/// is lost and started again when it is won.
fn leader_loops(
    leadership: &Leadership,
    resumer: &Arc<Resumer>,
    resync: Resync,
    index: &SharedIndex,
    scope: &crate::scope::Scope,
) -> [tokio::task::JoinHandle<()>; 2] {
    let (resumer, index, scope) = (resumer.clone(), index.clone(), scope.clone());
    let scan = tokio::spawn(
        leadership
            .clone()
            .while_leading(move || resumer.clone().scan(index.clone(), scope.clone())),
    );
    let resync = Arc::new(resync);
    let resync = tokio::spawn(
        leadership
            .clone()
            .while_leading(move || resync.clone().lead()),
    );
    [scan, resync]
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

/// Runs `kreload serve` until `shutdown` is cancelled (or a signal arrives when `shutdown`
/// is the token from [`crate::server::shutdown::signals`]).
pub async fn serve(args: ServeArgs, shutdown: CancellationToken) -> Result<()> {
    let config = Config::from_args(&args, std::env::var("POD_NAME").ok())?;
    run(config, shutdown).await
}

/// What the listeners serve: the two reviewers behind the admission router.
fn admission_app(
    config: &Config,
    client: &Client,
    rules: &Arc<RuleOptions>,
    index: &SharedIndex,
    queue: &Arc<Queue>,
    metrics: &Arc<Metrics>,
    load: &Arc<Load>,
) -> axum::Router {
    let sources = Arc::new(SourcesReviewer {
        filter: config.scope.clone(),
        vocabulary: rules.vocabulary.clone(),
        index: index.clone(),
        queue: queue.clone(),
        metrics: metrics.clone(),
    });
    let workloads = Arc::new(WorkloadsReviewer {
        client: client.clone(),
        rules: rules.clone(),
        scope: config.scope.clone(),
        read_budget: config.tunables.read_budget,
        index: index.clone(),
    });
    crate::admission::router_with_load(sources, workloads, metrics.clone(), load.clone())
}

/// Not ready while admissions have been stalled (every review slot taken, or requests
/// waiting for room) for a few seconds: the API server's calls go to another replica.
fn stall_probe(load: &Arc<Load>) -> crate::server::Probe {
    let load = load.clone();
    Arc::new(move || {
        load.stalled()
            .map(|held| format!("admissions stalled for {}s", held.as_secs()))
    })
}

/// The webhook port's TLS configuration, from local files only.
fn tls_config(config: &Config) -> Result<Arc<rustls::ServerConfig>> {
    let resolver = CertResolver::new(config.tls_cert_file.clone(), config.tls_key_file.clone())
        .context("loading the serving certificate")?;
    let tls = server::server_config_with(resolver, config.client_ca_file.as_deref())?;
    Ok(Arc::new(tls))
}

/// Binds the webhook listener and the admin port.
async fn bind(config: &Config) -> Result<(tokio::net::TcpListener, tokio::net::TcpListener)> {
    let listener = tokio::net::TcpListener::bind(config.listen_address)
        .await
        .with_context(|| format!("binding {}", config.listen_address))?;
    let admin_listener = tokio::net::TcpListener::bind(config.admin_address)
        .await
        .with_context(|| format!("binding {}", config.admin_address))?;
    tracing::info!(
        listen = %listener.local_addr()?,
        admin = %admin_listener.local_addr()?,
        strategy = %config.strategy,
        coalesce_window = ?config.coalesce_window,
        "serving"
    );
    Ok((listener, admin_listener))
}

/// Runs kreload with `config` until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<()> {
    // Local inputs first, so a bad file fails before any cluster call.
    let tls = tls_config(&config)?;
    let client = crate::kube::client::connect(config.kubeconfig.as_deref()).await?;
    let rules = Arc::new(config.rules.clone());
    let load = Load::new(Limits::with_body_limit(config.tunables.body_limit));
    let mut metrics = Metrics::with_reloader_by_namespace(config.metrics_by_namespace);
    load.register(&mut metrics.registry);
    let metrics = Arc::new(metrics);
    let readiness = Readiness::new();
    readiness.add_probe(stall_probe(&load));
    let drain = Drain::new(shutdown, config.shutdown_grace);
    withdraw_on_shutdown(readiness.clone(), drain.clone());
    let index = SharedIndex::default();
    let queue = Arc::new(Queue::new(config.queue_capacity, config.coalesce_window));
    let (mut watches, synced) =
        start_watches(&client, &config, &rules, &index, &metrics, &readiness).await;
    let (leadership, election) = leadership(&config, &client, &metrics).await?;

    let events = Events::new(client.clone(), config.instance.clone());
    let resumer = Resumer::new(client.clone(), rules.vocabulary.clone(), events.clone());
    let worker = Arc::new(Worker {
        client: client.clone(),
        queue: queue.clone(),
        index: index.clone(),
        rules: rules.clone(),
        strategy: config.strategy,
        metrics: metrics.clone(),
        events,
        resumer: resumer.clone(),
        confirm_patience: config.tunables.confirm_patience,
        concurrency: config.tunables.worker_concurrency,
        cronjob_create_job: config.cronjob_create_job,
        notifier: crate::notify::Notifier::start(config.notify.clone())
            .context("starting the alert sinks")?,
        limiter: Arc::new(Limiter::new(config.reliability.storm)),
        leadership: leadership.clone(),
    });
    let resync = resync(&config, &client, &index, synced, &rules, &worker, &metrics);
    let loops = leader_loops(&leadership, &resumer, resync, &index, &config.scope);
    let worker = tokio::spawn(worker.run());
    let app = admission_app(&config, &client, &rules, &index, &queue, &metrics, &load);

    let (listener, admin_listener) = bind(&config).await?;
    readiness.set_tls_bound();
    let admin_app = server::admin_router(readiness.clone(), metrics.clone());
    let admin_token = CancellationToken::new();
    let admin = tokio::spawn(server::serve_plain(
        admin_listener,
        admin_app,
        admin_token.clone(),
    ));

    let served = server::serve_tls(
        listener,
        tls,
        app,
        config.tunables.connections,
        drain.clone(),
    );
    let served = drain_in_order(served, worker, &queue, &drain).await;
    loops.iter().for_each(tokio::task::JoinHandle::abort);
    if let Some(election) = election {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), election.release()).await;
    }
    resumer.stop();
    watches.abort_all();
    admin_token.cancel();
    let _ = admin.await;
    served?;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests;
