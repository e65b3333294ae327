//! Creating the benchmark's objects fast: concurrent creates, at most [`IN_FLIGHT`] at once,
//! with progress printed; an object that already exists counts as created.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use futures::{StreamExt as _, stream};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use sha1::Digest as _;

pub const IN_FLIGHT: usize = 32;

/// One object to create: its kind, namespace and JSON body.
pub enum Object {
    Namespace(String),
    ConfigMap(String, Value),
    Secret(String, Value),
    Deployment(String, Value),
}

/// Creates every object, `IN_FLIGHT` at a time, printing progress as `what`.
pub async fn create_all(client: &kube::Client, what: &str, objects: Vec<Object>) -> Result<()> {
    let total = objects.len();
    if total == 0 {
        return Ok(());
    }
    let started = Instant::now();
    let mut last = Instant::now();
    let mut done = 0usize;
    let mut results = stream::iter(objects)
        .map(|o| create(client, o))
        .buffer_unordered(IN_FLIGHT);
    while let Some(result) = results.next().await {
        result.with_context(|| format!("creating {what}"))?;
        done += 1;
        // A handful of objects is not worth a line.
        if total >= 50 && (last.elapsed() >= Duration::from_secs(5) || done == total) {
            last = Instant::now();
            let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
            println!("  {what}: {done}/{total} ({rate:.0}/s)");
        }
    }
    Ok(())
}

async fn create(client: &kube::Client, object: Object) -> Result<()> {
    let pp = PostParams::default();
    let result = match object {
        Object::Namespace(name) => {
            let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
            Api::<Namespace>::all(client.clone())
                .create(&pp, &ns)
                .await
                .map(drop)
        }
        Object::ConfigMap(ns, body) => Api::<ConfigMap>::namespaced(client.clone(), &ns)
            .create(&pp, &serde_json::from_value(body)?)
            .await
            .map(drop),
        Object::Secret(ns, body) => Api::<Secret>::namespaced(client.clone(), &ns)
            .create(&pp, &serde_json::from_value(body)?)
            .await
            .map(drop),
        Object::Deployment(ns, body) => Api::<Deployment>::namespaced(client.clone(), &ns)
            .create(&pp, &serde_json::from_value(body)?)
            .await
            .map(drop),
    };
    match result {
        Ok(()) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `bytes` of printable filler, different for each `seed`.
pub fn filler(seed: &str, bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 40);
    let mut block = hex::encode(sha1::Sha1::digest(seed.as_bytes()));
    while out.len() < bytes {
        out.push_str(&block);
        block = hex::encode(sha1::Sha1::digest(block.as_bytes()));
    }
    out.truncate(bytes);
    out
}

pub fn configmap(ns: &str, name: &str, bytes: usize) -> Object {
    Object::ConfigMap(
        ns.to_owned(),
        json!({"metadata": {"name": name}, "data": {"v": filler(name, bytes)}}),
    )
}

pub fn secret(ns: &str, name: &str, bytes: usize) -> Object {
    Object::Secret(
        ns.to_owned(),
        json!({"metadata": {"name": name}, "stringData": {"v": filler(name, bytes)}}),
    )
}

/// A Deployment opted in with Reloader's `auto` annotation (both controllers read it),
/// reading `configmaps` and `secrets` through `envFrom`.
pub fn deployment(ns: &str, name: &str, configmaps: &[&str], secrets: &[&str]) -> Object {
    let mut env_from: Vec<Value> = configmaps
        .iter()
        .map(|c| json!({"configMapRef": {"name": c}}))
        .collect();
    env_from.extend(secrets.iter().map(|s| json!({"secretRef": {"name": s}})));
    Object::Deployment(
        ns.to_owned(),
        json!({
            "metadata": {"name": name, "annotations": {"reloader.stakater.com/auto": "true"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{
                    "name": "app", "image": "registry.invalid/app:1", "envFrom": env_from
                }]}}}
        }),
    )
}

/// Writes `data.v` of a ConfigMap and returns its new content hash (Reloader's, which both
/// controllers write).
pub async fn update_configmap(
    client: &kube::Client,
    ns: &str,
    name: &str,
    value: &str,
) -> Result<String> {
    let body = json!({"data": {"v": value}});
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .with_context(|| format!("updating ConfigMap {ns}/{name}"))?;
    Ok(kreload::reload::hash::configmap_hash_of(&cm))
}

/// The same for a Secret's `v`.
pub async fn update_secret(
    client: &kube::Client,
    ns: &str,
    name: &str,
    value: &str,
) -> Result<String> {
    let body = json!({"stringData": {"v": value}});
    let s = Api::<Secret>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .with_context(|| format!("updating Secret {ns}/{name}"))?;
    Ok(kreload::reload::hash::secret_hash_of(&s))
}
