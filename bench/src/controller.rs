//! The two controllers as child processes, one at a time: started with their own user,
//! waited for until a probe ConfigMap change really reloads the probe Deployment, measured
//! from /proc, and stopped. kreload's webhooks are registered while it runs and removed when
//! it stops, so Reloader's runs pay nothing for them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use kube::Api;
use kube::api::DeleteParams;
use serde::{Deserialize, Serialize};

use crate::cluster::{KRELOAD_USER, RELOADER_USER, Requests};
use crate::context::{Bench, PROBE_NS};
use crate::observe::{Observer, env_var};
use crate::procfs;
use kreload_testenv::registration::{self as local, Registration};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Variant {
    Reloader,
    Kreload,
    KreloadW0,
}

impl Variant {
    pub fn key(self) -> &'static str {
        match self {
            Variant::Reloader => "reloader",
            Variant::Kreload => "kreload",
            Variant::KreloadW0 => "kreload-w0",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Variant::Reloader => "Reloader",
            Variant::Kreload => "kreload, window 3 s (default)",
            Variant::KreloadW0 => "kreload, window 0",
        }
    }

    pub fn is_kreload(self) -> bool {
        self != Variant::Reloader
    }

    fn user(self) -> &'static str {
        if self.is_kreload() {
            KRELOAD_USER
        } else {
            RELOADER_USER
        }
    }
}

/// How to start one controller.
#[derive(Default)]
pub struct Launch {
    /// `taskset -c <cpus>`.
    pub cpus: Option<String>,
    /// Run kreload (this binary, built without mimalloc) under heaptrack, writing here.
    pub heaptrack: Option<(PathBuf, PathBuf)>,
    /// Leave kreload's webhooks unregistered (the admission server measured alone).
    pub no_registration: bool,
}

/// CPU and API requests one controller used.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Cost {
    pub cpu_seconds: f64,
    pub wall_seconds: f64,
    pub requests: Requests,
}

impl Cost {
    pub fn add(&mut self, other: &Cost) {
        self.cpu_seconds += other.cpu_seconds;
        self.wall_seconds += other.wall_seconds;
        self.requests.total += other.requests.total;
        for (k, v) in &other.requests.by_verb {
            *self.requests.by_verb.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.requests.user_agents {
            *self.requests.user_agents.entry(k.clone()).or_default() += v;
        }
    }
}

pub struct Running {
    pub variant: Variant,
    child: Child,
    /// The controller's own pid (under heaptrack, the profiled child).
    pub pid: u32,
    started: Instant,
    audit_from: u64,
    log: PathBuf,
    registered: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.pid != self.child.id() {
            procfs::signal(self.pid, "KILL");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parent_death(cmd: &mut Command, bin: &Path) {
    cmd.arg("--pdeathsig").arg("SIGKILL").arg("--").arg(bin);
}

/// Starts `variant` and returns once it reloads the probe.
pub async fn start(b: &Bench, variant: Variant, launch: &Launch) -> Result<Running> {
    let what = variant.key();
    let log = b.dir().join(format!("{what}-{}.log", b.next_run()));
    let out = std::fs::File::create(&log).context("creating a controller log")?;
    let mut cmd = Command::new("/usr/bin/setpriv");
    if let Some(cpus) = &launch.cpus {
        parent_death(&mut cmd, Path::new("/usr/bin/taskset"));
        cmd.arg("-c").arg(cpus);
    } else {
        cmd.arg("--pdeathsig").arg("SIGKILL").arg("--");
    }
    let kubeconfig = b.cluster.kubeconfig(variant.user());
    if variant.is_kreload() {
        if let Some((bin, out)) = &launch.heaptrack {
            cmd.arg("heaptrack").arg("-o").arg(out).arg(bin);
        } else {
            cmd.arg(&b.kreload_bin);
        }
        let (port, admin) = b.kreload_ports;
        cmd.arg("serve")
            .arg(format!("--listen-address=127.0.0.1:{port}"))
            .arg(format!("--admin-address=127.0.0.1:{admin}"))
            .arg(format!("--tls-cert-file={}", b.serving.cert.display()))
            .arg(format!("--tls-key-file={}", b.serving.key.display()))
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            // What the shipped image sets (README, "Admission server limits").
            .env("MIMALLOC_PURGE_DELAY", "0");
        if variant == Variant::KreloadW0 {
            cmd.arg("--coalesce-window=0s");
        }
    } else {
        wait_for_port_9090().await?;
        cmd.arg(&b.reloader_bin)
            .arg("--reload-strategy=env-vars")
            .env("KUBECONFIG", kubeconfig);
    }
    let audit_from = b.cluster.audit_offset();
    let child = cmd
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(out.try_clone().context("log")?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let mut running = Running {
        variant,
        pid: child.id(),
        child,
        started: Instant::now(),
        audit_from,
        log,
        registered: false,
    };
    if launch.heaptrack.is_some() {
        running.pid = find_profiled(&mut running).await?;
    }
    if variant.is_kreload() {
        wait_admin_ready(&mut running, b).await?;
        if launch.no_registration {
            return Ok(running);
        }
        register(b).await?;
        running.registered = true;
    }
    probe(b, &mut running).await?;
    Ok(running)
}

/// Reloader serves /metrics on :9090 with no flag to move it, and exits when the port is
/// taken; on a shared machine another process may hold it for a while.
async fn wait_for_port_9090() -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut told = false;
    while std::net::TcpListener::bind(("0.0.0.0", 9090)).is_err() {
        if Instant::now() > deadline {
            bail!("starting Reloader: port 9090 (its fixed metrics port) stayed taken for 300 s");
        }
        if !told {
            println!(
                "  port 9090 (Reloader's metrics port) is taken; waiting (ss -ltnp shows who)"
            );
            told = true;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(())
}

async fn find_profiled(r: &mut Running) -> Result<u32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // setpriv execs heaptrack (a shell script), which runs kreload as its child.
        if let Some(pid) = procfs::children_named(r.child.id(), "kreload").first() {
            return Ok(*pid);
        }
        r.check_alive()?;
        if Instant::now() > deadline {
            bail!("heaptrack started no kreload within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn register(b: &Bench) -> Result<()> {
    local::register(
        &b.cluster.client,
        &Registration {
            name_suffix: String::new(),
            base_url: format!("https://127.0.0.1:{}", b.kreload_ports.0),
            ca_pem: std::fs::read_to_string(&b.serving.ca_cert).context("reading the CA")?,
            namespace_labels: Default::default(),
            source_operations: vec!["UPDATE".into()],
        },
    )
    .await
    .context("registering kreload's webhooks")
}

/// Removes kreload's webhook configurations.
pub async fn unregister(b: &Bench) -> Result<()> {
    let dp = DeleteParams::default();
    let gone = |r: Result<_, kube::Error>| match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    };
    gone(
        Api::<ValidatingWebhookConfiguration>::all(b.cluster.client.clone())
            .delete("kreload-sources", &dp)
            .await
            .map(drop),
    )
    .context("removing kreload-sources")?;
    gone(
        Api::<MutatingWebhookConfiguration>::all(b.cluster.client.clone())
            .delete("kreload-workloads", &dp)
            .await
            .map(drop),
    )
    .context("removing kreload-workloads")
}

async fn wait_admin_ready(r: &mut Running, b: &Bench) -> Result<()> {
    let admin = ([127, 0, 0, 1], b.kreload_ports.1).into();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if local::admin_get(admin, "/readyz").await.is_some() {
            return Ok(());
        }
        r.check_alive()?;
        if Instant::now() > deadline {
            bail!(
                "kreload was not ready within 300 s; log: {}",
                r.log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Changes the probe ConfigMap until the probe Deployment carries its hash: the controller
/// has listed what it needs and reloads.
async fn probe(b: &Bench, r: &mut Running) -> Result<()> {
    let observer = Observer::start(&b.cluster.client, PROBE_NS).await?;
    let var = env_var("probe", "CONFIGMAP");
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let value = format!("{}-{}", r.variant.key(), b.next_run());
        let hash =
            crate::populate::update_configmap(&b.cluster.client, PROBE_NS, "probe", &value).await?;
        let wait = Instant::now() + Duration::from_secs(10);
        if observer.wait("probe", &var, &hash, wait).await.is_some() {
            return Ok(());
        }
        r.check_alive()?;
        if Instant::now() > deadline {
            bail!(
                "{} did not reload the probe within 600 s; log: {}",
                r.variant.key(),
                r.log.display()
            );
        }
    }
}

impl Running {
    fn check_alive(&mut self) -> Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "{} exited ({status}); last lines of {}:\n{}",
                self.variant.key(),
                self.log.display(),
                tail.join("\n")
            );
        }
        Ok(())
    }

    pub fn rss_kib(&self) -> u64 {
        procfs::rss_kib(self.pid).unwrap_or(0)
    }

    pub fn hwm_kib(&self) -> u64 {
        procfs::hwm_kib(self.pid).unwrap_or(0)
    }

    pub fn cpu_seconds(&self) -> f64 {
        procfs::cpu_seconds(self.pid).unwrap_or(0.0)
    }

    /// Stops the controller (SIGTERM, then SIGKILL after 60 s) and returns what it cost
    /// since it started. `keep_registration` leaves kreload's webhooks pointing at it, as
    /// after a crash.
    pub async fn stop(mut self, b: &Bench, keep_registration: bool) -> Result<Cost> {
        let cpu_seconds = self.cpu_seconds();
        let wall_seconds = self.started.elapsed().as_secs_f64();
        procfs::signal(self.pid, "TERM");
        // Under heaptrack the child is heaptrack's script, which exits once its profile is
        // written.
        let deadline = Instant::now() + Duration::from_secs(60);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.registered && !keep_registration {
            unregister(b).await?;
        }
        // The audit log is written as requests arrive; the last ones are in by now.
        let requests = b
            .cluster
            .requests_since(self.variant.user(), self.audit_from)?;
        Ok(Cost {
            cpu_seconds,
            wall_seconds,
            requests,
        })
    }
}

impl Running {
    /// Waits until the controller is quiet (under 0.1 CPU seconds and under 2 % RSS change
    /// over 5 s, sampled each second), at most `cap`; whether it got quiet.
    pub async fn settle(&self, cap: Duration) -> bool {
        let deadline = Instant::now() + cap;
        let mut window: Vec<(f64, u64)> = Vec::new();
        loop {
            window.push((self.cpu_seconds(), self.rss_kib()));
            if window.len() > 6 {
                window.remove(0);
            }
            if let (6, Some(first), Some(last)) = (window.len(), window.first(), window.last()) {
                let (lo, hi) = window
                    .iter()
                    .fold((u64::MAX, 0), |(lo, hi), (_, r)| (lo.min(*r), hi.max(*r)));
                let quiet_cpu = last.0 - first.0 < 0.1;
                let steady_rss = (hi - lo) as f64 <= hi as f64 * 0.02;
                if quiet_cpu && steady_rss {
                    return true;
                }
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
