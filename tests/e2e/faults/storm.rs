//! A Secret rewritten every second (a flapping cert-manager Certificate, Reloader #1183):
//! the rollouts are bounded by the storm limit, a Warning Event says so, and the final
//! content is applied once the Secret is quiet.
//!
//! Scaled for the suite: 20 s of flapping instead of a minute, with a limit of 3 rollouts
//! per 10 minutes and a 5 s quiet time (the defaults are 5 per 10 minutes and 30 s). A
//! minute of flapping at the same settings gives the same bound: 3 rollouts, then one
//! with the final content.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, ensure};
use k8s_openapi::api::events::v1::Event;
use kreload::reload::model::{SourceKind, SourceRef};
use kube::api::{Api, ListParams};
use serde_json::json;

use super::gen_of;
use crate::guards::D;
use crate::reload::wait_indexed;
use crate::support::instance::Instance;
use crate::support::workloads::secret;
use crate::support::workloads::update_secret;
use crate::support::workloads::{self as w, Form, create, data, expected_hash, get, reload_env};
use crate::support::{Env, eventually, namespace};

const MAX: i64 = 3;

pub async fn flapping_secret(env: Arc<Env>) -> Result<()> {
    let client = env.client.clone();
    let flags = [
        "--coalesce-window=1s",
        "--storm-max-reloads=3",
        "--storm-period=10m",
        "--storm-quiet=5s",
    ];
    let inst = Instance::start(&client, &env.kreload_kubeconfig, "storm", "storm", &flags).await?;
    let ns = namespace(&client, "storm", &inst.labels()).await?;
    secret(&client, &ns, "tls", &[("crt", "0")]).await?;
    let spec = w::pod_spec(Form::Volume, SourceKind::Secret, "tls");
    let annotations = json!({"reloader.stakater.com/auto": "true"});
    create(
        &client,
        &ns,
        &w::workload(D, "web", annotations, json!({}), spec),
    )
    .await?;
    wait_indexed(&inst, 1).await?;
    super::wait_observed_kind(&client, &ns, "web", "secret/tls").await?;
    let mut last = 0;
    for i in 1..=20 {
        let v = i.to_string();
        update_secret(&client, &ns, "tls", &[("crt", &v)]).await?;
        last = i;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let want = expected_hash(SourceKind::Secret, &data(&[("crt", &last.to_string())]));
    let secret = SourceRef::secret("tls");
    eventually("the final content", Duration::from_secs(90), || async {
        let obj = get(&client, &ns, D, "web").await?;
        Ok((reload_env(D, &obj, &secret) == Some(want.clone())).then_some(()))
    })
    .await?;
    let rollouts = gen_of(&client, &ns, "web").await? - 1;
    ensure!(
        (1..=MAX + 1).contains(&rollouts),
        "{rollouts} rollouts for 20 writes; the limit is {MAX} plus the final one"
    );
    let trips = inst.metric("kreload_storm_trips_total", &[]).await?;
    let held = inst.metric("kreload_reloads_held_total", &[]).await?;
    ensure!(trips >= 1.0 && held >= 1.0, "trips {trips}, held {held}");
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let warned = events
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .any(|e| {
            e.reason.as_deref() == Some("ReloadsHeld") && e.type_.as_deref() == Some("Warning")
        });
    ensure!(warned, "no ReloadsHeld Warning Event");
    eprintln!("faults: 20 writes in 20 s -> {rollouts} rollouts, {held} reloads held");
    Ok(())
}
