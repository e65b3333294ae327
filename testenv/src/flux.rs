//! Flux's real `source-controller` and `helm-controller` (built by `hack/flux.sh` from their Go
//! modules) as child processes against the test API server. Each [`Flux`] watches one
//! namespace only (`--watch-all-namespaces=false` with `RUNTIME_NAMESPACE`), so tests that
//! run at the same time never reconcile each other's HelmReleases. Dropping it stops both.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::controlplane::free_port;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("creating the working directory")]
    Dir(#[source] std::io::Error),
    #[error("finding a free port")]
    Port(#[source] crate::controlplane::Error),
    #[error("starting {part}")]
    Spawn {
        part: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{part} was not ready within {within:?}:\n{log}")]
    NotReady {
        part: &'static str,
        within: Duration,
        log: String,
    },
}

pub const PARTS: [&str; 2] = ["source-controller", "helm-controller"];

pub struct Flux {
    children: Vec<(&'static str, Child)>,
    dir: tempfile::TempDir,
}

impl Flux {
    /// Starts both controllers from `install` (the directory `hack/flux.sh` prints), acting
    /// in `namespace`, and waits until both answer `/readyz`.
    pub async fn start(install: &Path, kubeconfig: &Path, namespace: &str) -> Result<Self, Error> {
        let dir = crate::controlplane::owned_tempdir("kreload-flux-").map_err(Error::Dir)?;
        let mut flux = Self {
            children: Vec::new(),
            dir,
        };
        let mut health = Vec::new();
        for part in PARTS {
            let port = || free_port().map_err(Error::Port);
            let healthz = format!("127.0.0.1:{}", port()?);
            // Every listener on loopback: the defaults (:8080, :9440) are on all interfaces
            // and the two controllers would collide.
            let mut args = vec![
                "--enable-leader-election=false".to_owned(),
                "--watch-all-namespaces=false".to_owned(),
                format!("--metrics-addr=127.0.0.1:{}", port()?),
                format!("--health-addr={healthz}"),
                "--events-addr=".to_owned(),
                "--log-encoding=console".to_owned(),
                "--log-level=debug".to_owned(),
            ];
            if part == "source-controller" {
                // helm-controller downloads charts from the advertised address.
                let storage = format!("127.0.0.1:{}", port()?);
                let path = flux.dir.path().join("storage");
                std::fs::create_dir(&path).map_err(Error::Dir)?;
                args.push(format!("--storage-path={}", path.display()));
                args.push(format!("--storage-addr={storage}"));
                args.push(format!("--storage-adv-addr={storage}"));
            }
            let log = File::create(flux.log(part)).map_err(Error::Dir)?;
            let err = log.try_clone().map_err(Error::Dir)?;
            // Neither has a --kubeconfig flag (controller-runtime registers it on Go's flag
            // set, they parse pflag only), so the environment carries it.
            let child = Command::new("/usr/bin/setpriv")
                .args(["--pdeathsig", "SIGKILL", "--"])
                .arg(install.join(part))
                .args(&args)
                .env("KUBECONFIG", kubeconfig)
                .env("RUNTIME_NAMESPACE", namespace)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err)
                .spawn()
                .map_err(|source| Error::Spawn { part, source })?;
            flux.children.push((part, child));
            health.push((part, healthz));
        }
        for (part, addr) in health {
            flux.wait_ready(part, &addr, Duration::from_secs(60))
                .await?;
        }
        Ok(flux)
    }

    async fn wait_ready(
        &self,
        part: &'static str,
        addr: &str,
        within: Duration,
    ) -> Result<(), Error> {
        let deadline = Instant::now() + within;
        loop {
            if crate::helmrepo::get(addr, "/readyz")
                .await
                .is_ok_and(|(s, _)| s == 200)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::NotReady {
                    part,
                    within,
                    log: self.log_tail(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log(&self, part: &str) -> PathBuf {
        self.dir.path().join(format!("{part}.log"))
    }

    /// The whole log of one controller.
    pub fn log_text(&self, part: &str) -> String {
        std::fs::read_to_string(self.log(part)).unwrap_or_default()
    }

    /// The last lines of both logs, for a failing test's message.
    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        for part in PARTS {
            let text = self.log_text(part);
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!(
                "[{part}]\n{}\n",
                lines[lines.len().saturating_sub(20)..].join("\n")
            ));
        }
        out
    }
}

impl Drop for Flux {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
