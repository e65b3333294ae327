//! A local Kubernetes control plane made of the real binaries: etcd, kube-apiserver and
//! (optionally) kube-controller-manager, on free loopback ports, with certificates from
//! [`kreload::certs`]. The tests and the demo run against it; nothing here fakes the API.
//!
//! The binaries come from `hack/controlplane.sh` (built from Go modules) or, following the
//! controller-runtime envtest convention, from `KUBEBUILDER_ASSETS` and `TEST_ASSET_*`.

use std::fs::{self, File};
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use kreload::certs::{self, Ca};

mod dirs;
mod restart;

use dirs::DIR_PREFIX;
pub use dirs::owned_tempdir;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no control-plane binaries: set KUBEBUILDER_ASSETS to a directory holding etcd and \
         kube-apiserver (hack/controlplane.sh builds them and prints that directory)"
    )]
    NoAssets,
    #[error("{name} not found or not executable at {path}")]
    Missing { name: &'static str, path: PathBuf },
    #[error("creating the working directory")]
    TempDir(#[source] io::Error),
    #[error("certificates")]
    Certs(#[from] certs::Error),
    #[error("finding a free loopback port")]
    Port(#[source] io::Error),
    #[error("starting {name}")]
    Spawn {
        name: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{name} exited during start-up; last lines of its log:\n{log}")]
    Exited { name: &'static str, log: String },
    #[error("{name} was not ready within {timeout:?}; last lines of its log:\n{log}")]
    NotReady {
        name: &'static str,
        timeout: Duration,
        log: String,
    },
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("building a client from the kubeconfig")]
    Client(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Where the binaries are.
#[derive(Debug, Clone)]
pub struct Assets {
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
    pub kube_controller_manager: Option<PathBuf>,
    pub kubectl: Option<PathBuf>,
}

impl Assets {
    /// `TEST_ASSET_<NAME>` for each binary, else `<KUBEBUILDER_ASSETS>/<name>`.
    pub fn from_env() -> Result<Self, Error> {
        let dir = std::env::var_os("KUBEBUILDER_ASSETS").map(PathBuf::from);
        let find = |var: &str, name: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .or_else(|| dir.as_ref().map(|d| d.join(name)))
        };
        let etcd = find("TEST_ASSET_ETCD", "etcd").ok_or(Error::NoAssets)?;
        let kube_apiserver =
            find("TEST_ASSET_KUBE_APISERVER", "kube-apiserver").ok_or(Error::NoAssets)?;
        let assets = Self {
            etcd,
            kube_apiserver,
            kube_controller_manager: find(
                "TEST_ASSET_KUBE_CONTROLLER_MANAGER",
                "kube-controller-manager",
            )
            .filter(|p| p.is_file()),
            kubectl: find("TEST_ASSET_KUBECTL", "kubectl").filter(|p| p.is_file()),
        };
        executable("etcd", &assets.etcd)?;
        executable("kube-apiserver", &assets.kube_apiserver)?;
        Ok(assets)
    }

    /// Uses `dir` as if it were `KUBEBUILDER_ASSETS`.
    pub fn in_dir(dir: &Path) -> Result<Self, Error> {
        let opt = |n: &str| Some(dir.join(n)).filter(|p| p.is_file());
        let assets = Self {
            etcd: dir.join("etcd"),
            kube_apiserver: dir.join("kube-apiserver"),
            kube_controller_manager: opt("kube-controller-manager"),
            kubectl: opt("kubectl"),
        };
        executable("etcd", &assets.etcd)?;
        executable("kube-apiserver", &assets.kube_apiserver)?;
        Ok(assets)
    }
}

fn executable(name: &'static str, path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    match fs::metadata(path) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(()),
        _ => Err(Error::Missing {
            name,
            path: path.to_owned(),
        }),
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct Options {
    /// Start kube-controller-manager too (needed to see Deployments roll).
    pub controller_manager: bool,
    /// How long to wait for each component.
    pub ready_timeout: Duration,
    /// `--enable-aggregator-routing`: the API server reaches a Service-referenced webhook
    /// at an address of the Service's EndpointSlices instead of its cluster IP, so a test can
    /// route `<svc>.<ns>.svc` to a process it runs (there is no kube-proxy here).
    pub aggregator_routing: bool,
    /// More kube-apiserver flags (the benchmark's audit log and token users).
    pub apiserver_args: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            controller_manager: true,
            ready_timeout: Duration::from_secs(60),
            aggregator_routing: false,
            apiserver_args: Vec::new(),
        }
    }
}

struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
    /// How it was started, for [`ControlPlane::restart`].
    command: (PathBuf, Vec<String>),
}

/// A running control plane. Dropping it stops every process and removes its directory.
pub struct ControlPlane {
    // Declared before `dir` so processes stop before their files go.
    processes: Vec<Process>,
    dir: tempfile::TempDir,
    server: String,
    kubeconfig: PathBuf,
    kubectl: Option<PathBuf>,
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver (and kube-controller-manager when asked and present)
    /// and returns once the API server answers `/readyz`.
    pub async fn start(assets: &Assets, opts: &Options) -> Result<Self, Error> {
        let dir = owned_tempdir(DIR_PREFIX).map_err(Error::TempDir)?;
        let mut cp = Self {
            processes: Vec::new(),
            server: String::new(),
            kubeconfig: dir.path().join("kubeconfig"),
            kubectl: assets.kubectl.clone(),
            dir,
        };
        let root = cp.dir.path().to_owned();
        let write = |name: &str, contents: &str, private: bool| -> Result<PathBuf, Error> {
            let path = root.join(name);
            certs::write_file(&path, contents, private)?;
            Ok(path)
        };

        let ca = Ca::new("kreload-test-ca")?;
        let serving = ca.issue_server(
            &["localhost".to_owned(), "kubernetes.default.svc".to_owned()],
            &[Ipv4Addr::LOCALHOST.into()],
        )?;
        let admin = ca.issue_client("kreload-admin", &["system:masters"])?;
        let webhook_client = ca.issue_client("kube-apiserver-webhook-client", &[])?;
        let admission = crate::webhook_client::write(&root, &webhook_client)?;
        let ca_path = write("ca.crt", ca.cert_pem(), false)?;
        let ca_key_path = write("ca.key", &ca.pair().key_pem, true)?;
        let tls_cert = write("apiserver.crt", &serving.cert_pem, false)?;
        let tls_key = write("apiserver.key", &serving.key_pem, true)?;
        let (sa_private, sa_public) = certs::new_key_pair_pem()?;
        let sa_key = write("sa.key", &sa_private, true)?;
        let sa_pub = write("sa.pub", &sa_public, false)?;

        let etcd_client = free_port()?;
        let etcd_peer = free_port()?;
        let etcd_url = format!("http://127.0.0.1:{etcd_client}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer}");
        let etcd_data = root.join("etcd");
        cp.spawn(
            "etcd",
            &assets.etcd,
            &[
                "--name=default".to_owned(),
                format!("--data-dir={}", etcd_data.display()),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=default={peer_url}"),
                // A throw-away store: durability costs seconds per test run on slow disks.
                "--unsafe-no-fsync=true".to_owned(),
                "--log-level=warn".to_owned(),
            ],
        )?;

        let port = free_port()?;
        cp.server = format!("https://127.0.0.1:{port}");
        let mut apiserver_args = vec![
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".to_owned(),
            "--advertise-address=127.0.0.1".to_owned(),
            format!("--secure-port={port}"),
            format!("--cert-dir={}", root.display()),
            format!("--tls-cert-file={}", tls_cert.display()),
            format!("--tls-private-key-file={}", tls_key.display()),
            format!("--client-ca-file={}", ca_path.display()),
            format!("--service-account-key-file={}", sa_pub.display()),
            format!("--service-account-signing-key-file={}", sa_key.display()),
            "--service-account-issuer=https://kubernetes.default.svc".to_owned(),
            "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
            "--authorization-mode=RBAC".to_owned(),
            "--allow-privileged=true".to_owned(),
            // No kubelet runs pods here; the ServiceAccount plugin would only make
            // ReplicaSets wait for the default ServiceAccount.
            "--disable-admission-plugins=ServiceAccount".to_owned(),
            format!("--admission-control-config-file={}", admission.display()),
            "--enable-priority-and-fairness=false".to_owned(),
            "--profiling=false".to_owned(),
            "--v=1".to_owned(),
            format!("--enable-aggregator-routing={}", opts.aggregator_routing),
        ];
        apiserver_args.extend(opts.apiserver_args.iter().cloned());
        cp.spawn("kube-apiserver", &assets.kube_apiserver, &apiserver_args)?;
        cp.write_kubeconfig(&ca, &admin)?;
        cp.wait_ready("kube-apiserver", opts.ready_timeout).await?;

        if opts.controller_manager
            && let Some(kcm) = &assets.kube_controller_manager
        {
            let kcm_port = free_port()?;
            cp.spawn(
                "kube-controller-manager",
                kcm,
                &[
                    format!("--kubeconfig={}", cp.kubeconfig.display()),
                    "--leader-elect=false".to_owned(),
                    "--bind-address=127.0.0.1".to_owned(),
                    format!("--secure-port={kcm_port}"),
                    format!("--cert-dir={}", root.join("kcm").display()),
                    "--controllers=deployment-controller,replicaset-controller,\
                         statefulset-controller,daemonset-controller,job-controller,\
                         cronjob-controller,garbage-collector-controller,\
                         serviceaccount-controller"
                        .to_owned(),
                    format!("--root-ca-file={}", ca_path.display()),
                    format!("--service-account-private-key-file={}", sa_key.display()),
                    format!("--cluster-signing-cert-file={}", ca_path.display()),
                    format!("--cluster-signing-key-file={}", ca_key_path.display()),
                    // Its client's default 20 requests/s (burst 30) is for one of several
                    // managers of a real cluster; every test of a suite shares this one, and
                    // a burst of workloads in one test held up another's rollout past a
                    // minute.
                    "--kube-api-qps=500".to_owned(),
                    "--kube-api-burst=1000".to_owned(),
                    "--v=1".to_owned(),
                ],
            )?;
            cp.check_alive("kube-controller-manager")?;
        }
        Ok(cp)
    }

    /// `https://127.0.0.1:<port>`.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The CA of the client certificate the API server presents to webhooks (see
    /// [`crate::webhook_client`]), for kreload's `--client-ca-file`.
    pub fn webhook_client_ca(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// An admin kubeconfig for this control plane.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The working directory (certificates, logs, etcd data).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn kubectl(&self) -> Option<&Path> {
        self.kubectl.as_deref()
    }

    /// Whether kube-controller-manager runs.
    pub fn has_controller_manager(&self) -> bool {
        self.processes
            .iter()
            .any(|p| p.name == "kube-controller-manager")
    }

    /// A client with admin rights.
    pub async fn client(&self) -> Result<kube::Client, Error> {
        kreload::kube::client::from_kubeconfig(&self.kubeconfig)
            .await
            .map_err(|e| Error::Client(Box::new(e)))
    }

    fn spawn(&mut self, name: &'static str, bin: &Path, args: &[String]) -> Result<(), Error> {
        let log = self.dir.path().join(format!("{name}.log"));
        let out = File::create(&log).map_err(|source| Error::Spawn { name, source })?;
        let err = out
            .try_clone()
            .map_err(|source| Error::Spawn { name, source })?;
        // setpriv's parent-death signal kills the child if this process dies without
        // running Drop (SIGKILL, abort), so no control plane outlives its test run.
        let mut cmd = if Path::new("/usr/bin/setpriv").is_file() {
            let mut c = Command::new("/usr/bin/setpriv");
            c.arg("--pdeathsig").arg("SIGKILL").arg("--").arg(bin);
            c
        } else {
            Command::new(bin)
        };
        let child = cmd
            .args(args)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| Error::Spawn { name, source })?;
        let command = (bin.to_owned(), args.to_vec());
        self.processes.push(Process {
            name,
            child,
            log,
            command,
        });
        Ok(())
    }

    fn check_alive(&mut self, name: &'static str) -> Result<(), Error> {
        for p in &mut self.processes {
            if let Ok(Some(_)) = p.child.try_wait() {
                return Err(Error::Exited {
                    name: p.name,
                    log: tail(&p.log),
                });
            }
        }
        let _ = name;
        Ok(())
    }

    async fn wait_ready(&mut self, name: &'static str, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let client = self.client().await?;
        loop {
            self.check_alive(name)?;
            let req = http::Request::get("/readyz")
                .body(Vec::new())
                .map_err(|e| Error::Client(Box::new(e)))?;
            if let Ok(body) = client.request_text(req).await
                && body.trim() == "ok"
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = self
                    .processes
                    .iter()
                    .find(|p| p.name == name)
                    .map(|p| tail(&p.log))
                    .unwrap_or_default();
                return Err(Error::NotReady { name, timeout, log });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn write_kubeconfig(&self, ca: &Ca, admin: &certs::CertPair) -> Result<(), Error> {
        let yaml = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kreload-local\n  cluster:\n    \
             server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: admin\n  \
             user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\n\
             contexts:\n- name: kreload-local\n  context:\n    cluster: kreload-local\n    \
             user: admin\n    namespace: default\ncurrent-context: kreload-local\n",
            server = self.server,
            ca = B64.encode(ca.cert_pem()),
            cert = B64.encode(&admin.cert_pem),
            key = B64.encode(&admin.key_pem),
        );
        certs::write_file(&self.kubeconfig, &yaml, true)?;
        Ok(())
    }

    /// Stops every process (the directory goes when `self` drops).
    pub fn stop(&mut self) {
        // Reverse order: controller manager, API server, then etcd.
        while let Some(mut p) = self.processes.pop() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> Result<u16, Error> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(Error::Port)?;
    Ok(l.local_addr().map_err(Error::Port)?.port())
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
