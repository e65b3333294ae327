//! kube-apiserver restarted in the middle of a burst, then etcd: no reload is lost. On a
//! control plane of its own, so the shared one (and every other test) is not disturbed.
//! kreload's calls fail while the API server is down; what the worker could not finish,
//! the periodic resync (5 s here) applies.

use std::time::Duration;

use anyhow::{Result, ensure};
use kreload_testenv::controlplane::{ControlPlane, Options};

use super::{gen_of, ready_apps, set_all, wait_all};
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
    // kreload with the shipped RBAC here too.
    let kubeconfig = crate::support::rbac::grant_shipped(&cp)?;
    let inst = Instance::start(&client, &kubeconfig, "restarts", "restarts", &flags).await?;
    let ns = namespace(&client, "restarts", &inst.labels()).await?;
    let n = 5;
    ready_apps(&inst, &client, &ns, n).await?;
    // A burst, the API server restarted in its middle.
    set_all(&client, &ns, n, "1").await?;
    cp.restart("kube-apiserver", Duration::from_secs(2)).await?;
    set_all(&client, &ns, n, "2").await?;
    wait_all(&client, &ns, n, "2").await?;
    // Another burst, etcd restarted in its middle.
    set_all(&client, &ns, n, "3").await?;
    cp.restart("etcd", Duration::from_secs(2)).await?;
    set_all(&client, &ns, n, "4").await?;
    wait_all(&client, &ns, n, "4").await?;
    for i in 0..n {
        // Four contents, at most one rollout each, and at least the two bursts' finals.
        let g = gen_of(&client, &ns, &format!("app-{i}")).await?;
        ensure!((3..=5).contains(&g), "app-{i}: generation {g}");
    }
    drop(inst);
    drop(cp);
    Ok(())
}
