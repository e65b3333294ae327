//! The shared test environment: the control plane, a runtime, and helpers.

pub mod instance;
pub mod policy;
pub mod rbac;
pub mod recorder;
pub mod workloads;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::core::v1::Namespace;
use kreload_testenv::controlplane::{Assets, ControlPlane, Options};
use kube::api::{Api, ObjectMeta, PostParams};

pub struct Env {
    pub rt: tokio::runtime::Runtime,
    pub cp: ControlPlane,
    pub client: kube::Client,
    /// The kubeconfig kreload instances use: the manifests' ServiceAccount, impersonated.
    pub kreload_kubeconfig: PathBuf,
    /// kreload instances shared by tests, by profile name; stopped at teardown.
    instances: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Arc<instance::Instance>>>>>,
}

impl Env {
    /// The shared kreload instance for `profile`, started with `flags` on first use.
    pub async fn kreload(&self, profile: &str, flags: &[&str]) -> Result<Arc<instance::Instance>> {
        let cell = {
            let mut map = self
                .instances
                .lock()
                .map_err(|_| anyhow::anyhow!("instances lock"))?;
            map.entry(profile.to_owned()).or_default().clone()
        };
        let instance = cell
            .get_or_try_init(|| async {
                instance::Instance::start(
                    &self.client,
                    &self.kreload_kubeconfig,
                    profile,
                    profile,
                    flags,
                )
                .await
                .map(Arc::new)
            })
            .await?;
        Ok(instance.clone())
    }
}

static ENV: Mutex<Option<Arc<Env>>> = Mutex::new(None);

impl Env {
    pub fn start() -> Result<Env> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let assets = assets()?;
        let started = Instant::now();
        let opts = Options {
            // tests/e2e/install routes a Service-referenced webhook to a test's process.
            aggregator_routing: true,
            ..Options::default()
        };
        let cp = rt.block_on(ControlPlane::start(&assets, &opts))?;
        eprintln!(
            "e2e: control plane up in {:.1}s at {} (kube-controller-manager: {})",
            started.elapsed().as_secs_f64(),
            cp.server(),
            cp.has_controller_manager()
        );
        let client = rt.block_on(cp.client())?;
        let kreload_kubeconfig = rbac::grant_shipped(&cp)?;
        Ok(Env {
            rt,
            cp,
            client,
            kreload_kubeconfig,
            instances: Mutex::new(HashMap::new()),
        })
    }
}

/// The binaries: KUBEBUILDER_ASSETS / TEST_ASSET_* when set, else hack/controlplane.sh
/// (which builds them on the first run and prints their cached directory).
pub fn assets() -> Result<Assets> {
    if std::env::var_os("KUBEBUILDER_ASSETS").is_some()
        || std::env::var_os("TEST_ASSET_KUBE_APISERVER").is_some()
    {
        return Ok(Assets::from_env()?);
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("hack/controlplane.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!("{} failed ({})", script.display(), out.status);
    }
    let dir = String::from_utf8(out.stdout)?;
    let dir = dir
        .lines()
        .last()
        .context("hack/controlplane.sh printed no directory")?;
    Ok(Assets::in_dir(std::path::Path::new(dir.trim()))?)
}

pub fn install(env: Env) {
    if let Ok(mut slot) = ENV.lock() {
        *slot = Some(Arc::new(env));
    }
}

/// Drops the environment: stops the control plane and removes its directory.
pub fn teardown() {
    let env = ENV.lock().ok().and_then(|mut slot| slot.take());
    if let Some(env) = env {
        match Arc::try_unwrap(env) {
            Ok(env) => {
                let Env {
                    rt,
                    cp,
                    client,
                    instances,
                    ..
                } = env;
                drop(instances);
                drop(client);
                drop(cp);
                rt.shutdown_timeout(Duration::from_secs(5));
            }
            Err(_) => eprintln!("e2e: environment still in use at teardown"),
        }
    }
}

pub fn env() -> Arc<Env> {
    ENV.lock()
        .ok()
        .and_then(|slot| slot.clone())
        .expect("test environment installed")
}

/// Turns an async test body into a libtest-mimic trial run on the shared runtime.
pub fn trial<F, Fut>(name: &'static str, body: F) -> libtest_mimic::Trial
where
    F: FnOnce(Arc<Env>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    libtest_mimic::Trial::test(name, move || {
        let env = env();
        let handle = env.rt.handle().clone();
        handle
            .block_on(body(env))
            .map_err(|e| libtest_mimic::Failed::from(format!("{e:#}")))
    })
}

/// Creates a namespace with exactly this name (if it does not exist yet).
pub async fn named_namespace(
    client: &kube::Client,
    name: &str,
    labels: &[(&str, &str)],
) -> Result<()> {
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace_object(name, labels))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating namespace {name}")),
    }
}

/// Creates a namespace with a unique name derived from `base` and the given labels.
pub async fn namespace(
    client: &kube::Client,
    base: &str,
    labels: &[(&str, &str)],
) -> Result<String> {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("{base}-{n}");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace_object(&name, labels))
        .await
        .with_context(|| format!("creating namespace {name}"))?;
    Ok(name)
}

fn namespace_object(name: &str, labels: &[(&str, &str)]) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Polls `check` until it returns `Some`, failing with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() > deadline {
            match last_err {
                Some(e) => bail!("timed out after {timeout:?} waiting for {what}: {e:#}"),
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
