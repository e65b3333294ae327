//! Rollouts per rotation burst (5 Secret updates 0.2 s apart, read by 50 workloads: how many
//! template changes each workload gets) and fan-out (one ConfigMap read by 500 Deployments:
//! time from the update until all 500 carry the new hash).

use std::time::{Duration, Instant};

use anyhow::Result;

use super::start_settled;
use crate::context::Bench;
use crate::controller::Variant;
use crate::observe::{Observer, env_var};
use crate::populate::{self, Object};
use crate::results::{Scenario, percentile};

const ALL: [Variant; 3] = [Variant::Reloader, Variant::Kreload, Variant::KreloadW0];

pub async fn burst(b: &Bench, s: &mut Scenario) -> Result<()> {
    let ns = "bench-burst";
    let workloads = b.n(50);
    let names = setup(b, ns, "rot", workloads, true).await?;
    s.note(format!(
        "5 updates of one Secret 0.2 s apart; {workloads} Deployments read it; rollouts counted as \
         pod-template changes until 10 s after the last workload carried the final hash"
    ));
    let var = env_var("rot", "SECRET");
    for v in ALL {
        let r = start_settled(b, s, v).await?;
        let observer = Observer::start(&b.cluster.client, ns).await?;
        let before = observer.changes();
        let mut hash = String::new();
        let tag = format!("{}-{}", v.key(), b.next_run());
        for n in 0..5 {
            hash = populate::update_secret(&b.cluster.client, ns, "rot", &format!("{tag}-{n}"))
                .await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(300);
        let seen = observer.wait_all(&names, &var, &hash, deadline).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let after = observer.changes();
        let cost = r.stop(b, false).await?;
        s.cost(v, &cost);
        let rollouts: Vec<f64> = names
            .iter()
            .map(|n| f64::from(after.get(n).unwrap_or(&0) - before.get(n).unwrap_or(&0)))
            .collect();
        let mean = rollouts.iter().sum::<f64>() / rollouts.len() as f64;
        s.figure(
            "rollouts per workload per 5-update burst (mean)",
            v.key(),
            mean,
            "",
        );
        s.figure(
            "rollouts per workload per burst (max)",
            v.key(),
            percentile(&rollouts, 100.0),
            "",
        );
        let done = seen.iter().flatten().count();
        s.figure(
            "burst: workloads on the final hash",
            v.key(),
            done as f64,
            "",
        );
    }
    Ok(())
}

pub async fn fanout(b: &Bench, s: &mut Scenario) -> Result<()> {
    let ns = "bench-fanout";
    let workloads = b.n(500);
    let names = setup(b, ns, "shared", workloads, false).await?;
    s.note(format!(
        "one ConfigMap read by {workloads} Deployments, updated once"
    ));
    let var = env_var("shared", "CONFIGMAP");
    for v in ALL {
        let r = start_settled(b, s, v).await?;
        let observer = Observer::start(&b.cluster.client, ns).await?;
        let sent = Instant::now();
        let value = format!("{}-{}", v.key(), b.next_run());
        let hash = populate::update_configmap(&b.cluster.client, ns, "shared", &value).await?;
        let deadline = Instant::now() + Duration::from_secs(900);
        let seen = observer.wait_all(&names, &var, &hash, deadline).await;
        let cost = r.stop(b, false).await?;
        s.cost(v, &cost);
        let times: Vec<f64> = seen
            .iter()
            .flatten()
            .map(|at| at.duration_since(sent).as_secs_f64())
            .collect();
        s.figure(
            "fan-out: time until all patched",
            v.key(),
            percentile(&times, 100.0),
            "s",
        );
        s.figure(
            "fan-out: time until half patched",
            v.key(),
            percentile(&times, 50.0),
            "s",
        );
        if times.len() < names.len() {
            s.note(format!(
                "{}: only {} of {} patched within 900 s",
                v.key(),
                times.len(),
                names.len()
            ));
        }
    }
    Ok(())
}

/// A namespace with one source and `n` Deployments reading it; their names.
async fn setup(b: &Bench, ns: &str, source: &str, n: usize, secret: bool) -> Result<Vec<String>> {
    let client = &b.cluster.client;
    populate::create_all(client, "namespace", vec![Object::Namespace(ns.to_owned())]).await?;
    let src = if secret {
        populate::secret(ns, source, 1024)
    } else {
        populate::configmap(ns, source, 1024)
    };
    populate::create_all(client, "source", vec![src]).await?;
    let names: Vec<String> = (0..n).map(|i| format!("{source}-app-{i}")).collect();
    let objects = names
        .iter()
        .map(|name| {
            if secret {
                populate::deployment(ns, name, &[], &[source])
            } else {
                populate::deployment(ns, name, &[source], &[])
            }
        })
        .collect();
    populate::create_all(client, "Deployments", objects).await?;
    Ok(names)
}
