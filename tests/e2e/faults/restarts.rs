//! kube-apiserver restarted in the middle of a burst, then etcd: no reload is lost. On a
//! control plane of its own, so the shared one (and every other test) is not disturbed.
//! kreload's calls fail while the API server is down; what the worker could not finish,
//! the periodic resync (5 s here) applies.

use std::time::Duration;

use anyhow::{Result, ensure};
use kreload_testenv::controlplane::{ControlPlane, Options};

use super::{apps, gen_of, set, wait_hash, wait_observed};
use crate::reload::wait_indexed;
use crate::support::instance::Instance;
use crate::support::namespace;

pub fn trial() -> libtest_mimic::Trial {
    crate::support::trial(
        "faults::apiserver_and_etcd_restarts_lose_no_reload",
        |_env| restarts(),
    )
}

async fn restarts() -> Result<()> {
    let assets = crate::support::assets()?;
    let opts = Options {
        controller_manager: false,
        ..Options::default()
    };
    let mut cp = ControlPlane::start(&assets, &opts).await?;
    let client = cp.client().await?;
    let flags = ["--coalesce-window=1s", "--resync-period=5s"];
    let inst = Instance::start(&client, cp.kubeconfig(), "restarts", "restarts", &flags).await?;
    let ns = namespace(&client, "restarts", &inst.labels()).await?;
    let n = 5;
    apps(&client, &ns, n).await?;
    wait_indexed(&inst, n).await?;
    for i in 0..n {
        wait_observed(&client, &ns, &format!("app-{i}"), &format!("cfg-{i}")).await?;
    }
    // A burst, the API server restarted in its middle.
    for i in 0..n {
        set(&client, &ns, &format!("cfg-{i}"), "1").await?;
    }
    cp.restart("kube-apiserver", Duration::from_secs(2)).await?;
    for i in 0..n {
        set(&client, &ns, &format!("cfg-{i}"), "2").await?;
    }
    for i in 0..n {
        wait_hash(&client, &ns, &format!("app-{i}"), &format!("cfg-{i}"), "2").await?;
    }
    // Another burst, etcd restarted in its middle.
    for i in 0..n {
        set(&client, &ns, &format!("cfg-{i}"), "3").await?;
    }
    cp.restart("etcd", Duration::from_secs(2)).await?;
    for i in 0..n {
        set(&client, &ns, &format!("cfg-{i}"), "4").await?;
    }
    for i in 0..n {
        wait_hash(&client, &ns, &format!("app-{i}"), &format!("cfg-{i}"), "4").await?;
        // Four contents, at most one rollout each, and at least the two bursts' finals.
        let g = gen_of(&client, &ns, &format!("app-{i}")).await?;
        ensure!((3..=5).contains(&g), "app-{i}: generation {g}");
    }
    drop(inst);
    drop(cp);
    Ok(())
}
