//! Reload latency: a ConfigMap data update until the Deployment's pod template carries the
//! new hash (timestamped as the watch event arrives). `PARALLEL` sources are updated at
//! once, each again only after its previous update was seen, so a run at kreload's 3 s
//! window does not take ten minutes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use futures::future::try_join_all;

use super::start_settled;
use crate::context::Bench;
use crate::controller::Variant;
use crate::observe::{Observer, env_var};
use crate::populate::{self, Object};
use crate::results::{Scenario, percentile};

pub const NS: &str = "bench-latency";
const PARALLEL: usize = 8;

pub async fn run(b: &Bench, s: &mut Scenario, updates: usize) -> Result<()> {
    let mut objects = vec![Object::Namespace(NS.to_owned())];
    for i in 0..PARALLEL {
        let name = format!("lat-{i}");
        objects.push(populate::configmap(NS, &name, 1024));
        objects.push(populate::deployment(NS, &name, &[&name], &[]));
    }
    for o in objects {
        populate::create_all(&b.cluster.client, "latency objects", vec![o]).await?;
    }
    s.note(format!(
        "{updates} updates per controller, {PARALLEL} sources (one Deployment each) in flight at once"
    ));
    for v in [Variant::Reloader, Variant::Kreload, Variant::KreloadW0] {
        let r = start_settled(b, s, v).await?;
        let observer = Arc::new(Observer::start(&b.cluster.client, NS).await?);
        let per_source = updates.div_ceil(PARALLEL);
        let tasks = (0..PARALLEL).map(|i| {
            let observer = observer.clone();
            let client = b.cluster.client.clone();
            let tag = format!("{}-{}", v.key(), b.next_run());
            async move {
                let name = format!("lat-{i}");
                let var = env_var(&name, "CONFIGMAP");
                let mut out = Vec::new();
                for n in 0..per_source {
                    let sent = Instant::now();
                    let value = format!("{tag}-{n}");
                    let hash = populate::update_configmap(&client, NS, &name, &value).await?;
                    let deadline = Instant::now() + Duration::from_secs(60);
                    let seen = observer.wait(&name, &var, &hash, deadline).await;
                    out.push(seen.map(|at| at.duration_since(sent).as_secs_f64() * 1000.0));
                }
                anyhow::Ok(out)
            }
        });
        let all: Vec<Option<f64>> = try_join_all(tasks).await?.into_iter().flatten().collect();
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
