//! Watches the Deployments of one namespace and timestamps, as the watch event arrives, the
//! first time each `STAKATER_*` value appears in a pod template, and counts template changes
//! (each one is a rollout; no kube-controller-manager runs, so there are no ReplicaSets to
//! count). Both controllers write the same variable with the same hash, so one observer
//! serves both.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::runtime::watcher::{self, Event};

#[derive(Default)]
struct State {
    /// Template hash and number of changes seen, per Deployment.
    templates: HashMap<String, (u64, u32)>,
    /// When each (deployment, variable, value) was first seen.
    seen: HashMap<(String, String, String), Instant>,
    synced: bool,
}

pub struct Observer {
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `STAKATER_<NAME>_<KIND>` for the simple names the benchmark uses.
pub fn env_var(source: &str, kind: &str) -> String {
    let name: String = source
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("STAKATER_{name}_{kind}")
}

impl Observer {
    /// Starts watching and returns once the initial list is in.
    pub async fn start(client: &kube::Client, namespace: &str) -> Result<Self> {
        let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            let mut events = std::pin::pin!(watcher::watcher(api, watcher::Config::default()));
            while let Some(event) = events.next().await {
                let now = Instant::now();
                let mut s = shared.lock().unwrap_or_else(PoisonError::into_inner);
                match event {
                    Ok(Event::Apply(d) | Event::InitApply(d)) => record(&mut s, &d, now),
                    Ok(Event::InitDone) => s.synced = true,
                    _ => {}
                }
            }
        });
        let observer = Self { state, task };
        let deadline = Instant::now() + Duration::from_secs(120);
        while !observer.lock().synced {
            if Instant::now() > deadline {
                bail!("watching Deployments in {namespace}: no initial list within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(observer)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When `deployment`'s template first carried `var=value`, waiting until `deadline`.
    pub async fn wait(
        &self,
        deployment: &str,
        var: &str,
        value: &str,
        deadline: Instant,
    ) -> Option<Instant> {
        let key = (deployment.to_owned(), var.to_owned(), value.to_owned());
        loop {
            if let Some(at) = self.lock().seen.get(&key) {
                return Some(*at);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// For each of `deployments`, when its template first carried `var=value`; waits until
    /// all did or `deadline` passed.
    pub async fn wait_all(
        &self,
        deployments: &[String],
        var: &str,
        value: &str,
        deadline: Instant,
    ) -> Vec<Option<Instant>> {
        loop {
            let found: Vec<Option<Instant>> = {
                let s = self.lock();
                deployments
                    .iter()
                    .map(|d| {
                        s.seen
                            .get(&(d.clone(), var.to_owned(), value.to_owned()))
                            .copied()
                    })
                    .collect()
            };
            if found.iter().all(Option::is_some) || Instant::now() > deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Template changes seen so far, per Deployment.
    pub fn changes(&self) -> BTreeMap<String, u32> {
        self.lock()
            .templates
            .iter()
            .map(|(name, (_, n))| (name.clone(), *n))
            .collect()
    }
}

fn record(s: &mut State, d: &Deployment, now: Instant) {
    let name = d.metadata.name.clone().unwrap_or_default();
    let Some(template) = d.spec.as_ref().map(|spec| &spec.template) else {
        return;
    };
    let mut hasher = DefaultHasher::new();
    serde_json::to_string(template)
        .unwrap_or_default()
        .hash(&mut hasher);
    let hash = hasher.finish();
    let entry = s.templates.entry(name.clone()).or_insert((hash, 0));
    if entry.0 != hash {
        *entry = (hash, entry.1 + 1);
    }
    let containers = template.spec.iter().flat_map(|p| &p.containers);
    for env in containers.flat_map(|c| c.env.iter().flatten()) {
        if let (true, Some(value)) = (env.name.starts_with("STAKATER_"), &env.value) {
            s.seen
                .entry((name.clone(), env.name.clone(), value.clone()))
                .or_insert(now);
        }
    }
}
