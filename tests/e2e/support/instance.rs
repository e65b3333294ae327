//! kreload instances for the tests: the real binary as a child process, with its own
//! certificates, its webhooks registered for namespaces that carry its label, and a canary
//! write that proves the API server calls it before any test relies on it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result};
use kreload_testenv::controlplane::free_port;
use kreload_testenv::registration::{self as local, Registration};

use super::namespace;

/// The namespace label that routes a namespace's writes to one instance.
pub const INSTANCE_LABEL: &str = "kreload.dev/e2e-instance";

pub struct Instance {
    pub name: String,
    /// The value of INSTANCE_LABEL this instance serves (replicas share one).
    pub label: String,
    pub admin: SocketAddr,
    /// The webhook port, and the CA of its serving certificate.
    pub webhook: SocketAddr,
    pub ca_pem: String,
    child: Option<Child>,
    _dir: tempfile::TempDir,
    log: PathBuf,
}

/// What some tests add to an instance's start.
#[derive(Default)]
pub struct Extra<'a> {
    /// Extra labels for the canary namespace (needed when the flags narrow which
    /// namespaces kreload acts in).
    pub canary_labels: &'a [(&'a str, &'a str)],
    /// Environment variables for the kreload process.
    pub envs: &'a [(&'a str, &'a str)],
    /// An existing namespace (served by this instance) to run the canary in.
    pub canary_namespace: Option<&'a str>,
    /// Also register the CSI Secrets Store trigger (always with `--enable-csi-integration`).
    pub csi_webhook: bool,
}

impl Instance {
    /// Starts `kreload serve` with `flags`, registers its webhooks for namespaces labelled
    /// `INSTANCE_LABEL=<name>`, and waits until they are live.
    pub async fn start(
        client: &kube::Client,
        kubeconfig: &std::path::Path,
        name: &str,
        label: &str,
        flags: &[&str],
    ) -> Result<Instance> {
        Self::start_with(client, kubeconfig, name, label, flags, &[]).await
    }

    /// Like `start`; `canary_labels` are extra labels for the canary namespace (needed
    /// when the flags narrow which namespaces kreload acts in).
    pub async fn start_with(
        client: &kube::Client,
        kubeconfig: &std::path::Path,
        name: &str,
        label: &str,
        flags: &[&str],
        canary_labels: &[(&str, &str)],
    ) -> Result<Instance> {
        let extra = Extra {
            canary_labels,
            ..Extra::default()
        };
        Self::start_extra(client, kubeconfig, name, label, flags, &extra).await
    }

    /// Like `start`, with the extras of [`Extra`].
    pub async fn start_extra(
        client: &kube::Client,
        kubeconfig: &std::path::Path,
        name: &str,
        label: &str,
        flags: &[&str],
        extra: &Extra<'_>,
    ) -> Result<Instance> {
        let canary_labels = extra.canary_labels;
        let dir = kreload_testenv::controlplane::owned_tempdir("kreload-e2e-")?;
        let bundle = kreload::certs::write_serving_bundle(
            dir.path(),
            &["localhost".into()],
            &["127.0.0.1".parse()?],
        )?;
        let port = free_port()?;
        let admin: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let log = dir.path().join("kreload.log");
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        let mut cmd = Command::new("/usr/bin/setpriv");
        cmd.args([
            "--pdeathsig",
            "SIGKILL",
            "--",
            env!("CARGO_BIN_EXE_kreload"),
            "serve",
        ])
        .arg(format!("--listen-address=127.0.0.1:{port}"))
        .arg(format!("--admin-address={admin}"))
        .arg(format!("--tls-cert-file={}", bundle.cert.display()))
        .arg(format!("--tls-key-file={}", bundle.key.display()))
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        // Act only where this instance's webhooks are registered, so instances that
        // share the control plane never touch each other's workloads.
        .arg(format!("--namespace-selector={INSTANCE_LABEL}={label}"))
        .args(
            (!flags.iter().any(|f| f.starts_with("--log-level")))
                .then_some("--log-level=kreload=debug,info"),
        )
        .args(flags)
        .env_remove("KUBEBUILDER_ASSETS")
        .envs(extra.envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
        let child = cmd.spawn().context("starting kreload")?;
        let mut instance = Instance {
            name: name.to_owned(),
            label: label.to_owned(),
            admin,
            webhook: ([127, 0, 0, 1], port).into(),
            ca_pem: std::fs::read_to_string(&bundle.ca_cert)?,
            child: Some(child),
            _dir: dir,
            log,
        };
        let registration = Registration {
            name_suffix: format!("-{name}"),
            base_url: format!("https://127.0.0.1:{port}"),
            ca_pem: std::fs::read_to_string(&bundle.ca_cert)?,
            namespace_labels: BTreeMap::from([(INSTANCE_LABEL.to_owned(), label.to_owned())]),
            // Writes other than UPDATE are only sent when kreload acts on them.
            source_operations: ["CREATE", "UPDATE", "DELETE"]
                .into_iter()
                .filter(|op| match *op {
                    "CREATE" => flags.contains(&"--reload-on-create"),
                    "DELETE" => flags.contains(&"--reload-on-delete"),
                    _ => true,
                })
                .map(String::from)
                .collect(),
        };
        local::register(client, &registration).await?;
        if extra.csi_webhook || flags.contains(&"--enable-csi-integration") {
            local::register_csi(client, &registration).await?;
        }
        let mut labels = vec![(INSTANCE_LABEL, label)];
        labels.extend_from_slice(canary_labels);
        let canary = match extra.canary_namespace {
            Some(ns) => ns.to_owned(),
            None => namespace(client, &format!("canary-{name}"), &labels).await?,
        };
        if let Err(error) = local::wait_live(client, &canary, admin, Duration::from_secs(60)).await
        {
            let log = instance.log_tail();
            instance.stop();
            return Err(anyhow::Error::new(error).context(format!("kreload {name} log:\n{log}")));
        }
        Ok(instance)
    }

    /// The labels a test namespace needs to be served by this instance.
    pub fn labels(&self) -> [(&str, &str); 1] {
        [(INSTANCE_LABEL, self.label.as_str())]
    }

    /// Sum of a metric's samples whose line contains every `filter`.
    pub async fn metric(&self, name: &str, filters: &[&str]) -> Result<f64> {
        metric_at(self.admin, name, filters).await
    }

    /// Everything the instance logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "[kreload {}]\n{}",
            self.name,
            lines[lines.len().saturating_sub(40)..].join("\n")
        )
    }

    /// Sends SIGTERM (what the kubelet does on a rollout or a drain) and waits for the
    /// process to exit; returns its exit code.
    pub async fn terminate(&mut self, within: Duration) -> Result<Option<i32>> {
        let child = self.child.as_mut().context("already stopped")?;
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Ok(status.code());
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "kreload did not exit within {within:?} of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the process (as a crash or a node loss would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sum of the samples of metric `name` whose line contains every `filter`, from the
/// `/metrics` of the kreload whose admin port is `admin`.
pub async fn metric_at(admin: SocketAddr, name: &str, filters: &[&str]) -> Result<f64> {
    let text = local::admin_get(admin, "/metrics")
        .await
        .context("kreload's /metrics did not answer")?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with(name) && filters.iter().all(|f| l.contains(f)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}
