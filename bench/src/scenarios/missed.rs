//! Missed while down: the controller runs (and settles), stops, 100 sources read by 100
//! workloads are updated, the controller starts again; how many workloads end up with the
//! new hash, and how long after the start the last one did. kreload's webhooks stay
//! registered while it is down, as after a crash (they fail open).

use std::time::{Duration, Instant};

use anyhow::Result;

use super::{settle, start_settled};
use crate::context::Bench;
use crate::controller::{self, Launch, Variant};
use crate::observe::{Observer, env_var};
use crate::populate::{self, Object};
use crate::results::{Scenario, percentile};

const NS: &str = "bench-missed";
/// How long to wait for the reloads after the restart.
const PATIENCE: Duration = Duration::from_secs(120);

pub async fn run(b: &Bench, s: &mut Scenario) -> Result<()> {
    let n = b.n(100);
    let client = &b.cluster.client;
    let mut objects = vec![];
    for i in 0..n {
        let name = format!("miss-{i}");
        objects.push(populate::configmap(NS, &name, 1024));
        objects.push(populate::deployment(NS, &name, &[&name], &[]));
    }
    populate::create_all(client, "namespace", vec![Object::Namespace(NS.to_owned())]).await?;
    populate::create_all(client, "missed-while-down objects", objects).await?;
    s.note(format!(
        "{n} ConfigMaps (one Deployment each) updated while the controller was stopped; \
         counted until all were reloaded or {} s after the restart. Reloader runs with its \
         defaults (no --sync-after-restart)",
        PATIENCE.as_secs()
    ));
    for v in [Variant::Reloader, Variant::Kreload] {
        let r = start_settled(b, s, v).await?;
        let cost = r.stop(b, true).await?;
        s.cost(v, &cost);
        let mut want = Vec::new();
        let tag = format!("{}-{}", v.key(), b.next_run());
        for i in 0..n {
            let name = format!("miss-{i}");
            let hash = populate::update_configmap(client, NS, &name, &tag).await?;
            want.push((name, hash));
        }
        let observer = Observer::start(client, NS).await?;
        let restarted = Instant::now();
        let r = controller::start(b, v, &Launch::default()).await?;
        let deadline = restarted + PATIENCE;
        let var = |name: &str| env_var(name, "CONFIGMAP");
        let mut times = Vec::new();
        for (name, hash) in &want {
            if let Some(at) = observer.wait(name, &var(name), hash, deadline).await {
                times.push(at.saturating_duration_since(restarted).as_secs_f64());
            }
        }
        settle(b, s, &r).await;
        let cost = r.stop(b, false).await?;
        s.cost(v, &cost);
        s.figure(
            "missed while down: workloads reloaded",
            v.key(),
            times.len() as f64,
            &format!("of {n}"),
        );
        if !times.is_empty() {
            s.figure(
                "missed while down: time from restart to last reload",
                v.key(),
                percentile(&times, 100.0),
                "s",
            );
        }
    }
    Ok(())
}
