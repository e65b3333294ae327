//! Reload latency: a ConfigMap data update until the Deployment's pod template carries the
//! new hash (timestamped as the watch event arrives). One update every `SPACING`, round
//! robin over the sources (one Deployment each, at most `PER_SOURCE` updates each), each
//! written again only after its previous update was seen: a run at kreload's 3 s window takes minutes instead of ten, and the rate (2 a
//! second) stays under Reloader's client-side limit (client-go's 5 requests a second), so
//! what is measured is latency, not a queue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::start_settled;
use crate::context::Bench;
use crate::controller::Variant;
use crate::observe::{Observer, env_var};
use crate::populate::{self, Object};
use crate::results::{Scenario, percentile};

pub const NS: &str = "bench-latency";
/// At least this many sources; more when needed so no workload gets more than
/// `PER_SOURCE` updates.
const MIN_SOURCES: usize = 8;
/// kreload's storm limit (`--storm-max-reloads`, 5 rollouts per workload per 10 minutes by
/// default) would hold a sixth reload back; latency is measured below it.
const PER_SOURCE: usize = 5;
const SPACING: Duration = Duration::from_millis(500);

pub async fn run(b: &Bench, s: &mut Scenario, updates: usize) -> Result<()> {
    let sources = updates.div_ceil(PER_SOURCE).max(MIN_SOURCES);
    let client = &b.cluster.client;
    populate::create_all(client, "namespace", vec![Object::Namespace(NS.to_owned())]).await?;
    let mut objects = vec![];
    for i in 0..sources {
        let name = format!("lat-{i}");
        objects.push(populate::configmap(NS, &name, 1024));
        objects.push(populate::deployment(NS, &name, &[&name], &[]));
    }
    populate::create_all(client, "latency objects", objects).await?;
    s.note(format!(
        "{updates} updates per controller, one every {} ms, round robin over {sources} sources \
         (one Deployment each)",
        SPACING.as_millis()
    ));
    for v in [Variant::Reloader, Variant::Kreload, Variant::KreloadW0] {
        let r = start_settled(b, s, v).await?;
        let observer = Arc::new(Observer::start(&b.cluster.client, NS).await?);
        let tag = format!("{}-{}", v.key(), b.next_run());
        let mut tick = tokio::time::interval(SPACING);
        let mut pending: Vec<Option<tokio::task::JoinHandle<Option<f64>>>> =
            (0..sources).map(|_| None).collect();
        let mut all: Vec<Option<f64>> = Vec::new();
        for n in 0..updates {
            let i = n % sources;
            // A source is written again only once its previous update was seen (or given up).
            if let Some(task) = pending[i].take() {
                all.push(task.await?);
            }
            tick.tick().await;
            let name = format!("lat-{i}");
            let sent = Instant::now();
            let hash =
                populate::update_configmap(&b.cluster.client, NS, &name, &format!("{tag}-{n}"))
                    .await?;
            let observer = observer.clone();
            pending[i] = Some(tokio::spawn(async move {
                let var = env_var(&name, "CONFIGMAP");
                let deadline = Instant::now() + Duration::from_secs(60);
                let seen = observer.wait(&name, &var, &hash, deadline).await;
                seen.map(|at| at.duration_since(sent).as_secs_f64() * 1000.0)
            }));
        }
        for task in pending.into_iter().flatten() {
            all.push(task.await?);
        }
        let cost = r.stop(b, false).await?;
        s.cost(v, &cost);
        let seen: Vec<f64> = all.iter().flatten().copied().collect();
        let missed = all.len() - seen.len();
        s.figure("reload latency p50", v.key(), percentile(&seen, 50.0), "ms");
        s.figure("reload latency p95", v.key(), percentile(&seen, 95.0), "ms");
        s.figure("reload latency p99", v.key(), percentile(&seen, 99.0), "ms");
        s.figure(
            "reload latency: updates measured",
            v.key(),
            seen.len() as f64,
            "",
        );
        if missed > 0 {
            s.note(format!(
                "{}: {missed} of {} updates not reloaded within 60 s",
                v.key(),
                all.len()
            ));
        }
    }
    Ok(())
}
