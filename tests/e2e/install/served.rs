//! kreload as it runs in a cluster, reached the way the API server reaches it there: through
//! the chart's Service. The process runs in a network namespace of the test's own (its
//! "pod IP" is that namespace's veth address), an EndpointSlice of the Service points at it,
//! and the API server (started with `--enable-aggregator-routing`) calls that address with
//! the TLS server name `<service>.<namespace>.svc`. kreload reads its certificate from a
//! directory laid out as the kubelet writes a Secret volume, and its API access is the
//! chart's ServiceAccount, impersonated.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use k8s_openapi::api::core::v1::Secret;
use kreload_testenv::kubeconfig::{self, Derive};
use kreload_testenv::netns::{self, NetNs};
use kreload_testenv::registration as local;
use kube::api::Api;
use serde_json::{Value, json};

use super::apply;
use crate::support::{Env, eventually};

/// A Secret volume as the kubelet writes it: the files live in a timestamped directory,
/// `..data` points at it, and each key is a symlink through `..data`. An update writes a new
/// directory and renames a new `..data` link over the old one, so readers see the old or
/// the new set, never a mix.
pub struct SecretVolume {
    tmp: tempfile::TempDir,
    generation: std::sync::atomic::AtomicU32,
}

impl SecretVolume {
    /// An empty volume in a temporary directory (removed on drop).
    pub fn new() -> Result<Self> {
        let tmp = kreload_testenv::controlplane::owned_tempdir("kreload-certs-")?;
        Ok(Self {
            tmp,
            generation: Default::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    pub fn write(&self, files: &BTreeMap<String, Vec<u8>>) -> Result<()> {
        use std::os::unix::fs::symlink;
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stamp = format!("..2026_12_01_00_00_{generation:02}.{}", std::process::id());
        let new = self.dir().join(&stamp);
        std::fs::create_dir(&new)?;
        for (key, value) in files {
            std::fs::write(new.join(key), value)?;
        }
        let tmp = self.dir().join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        symlink(&stamp, &tmp)?;
        let data = self.dir().join("..data");
        let old = std::fs::read_link(&data).ok();
        std::fs::rename(&tmp, &data)?;
        for key in files.keys() {
            let link = self.dir().join(key);
            if std::fs::symlink_metadata(&link).is_err() {
                symlink(Path::new("..data").join(key), &link)?;
            }
        }
        if let Some(old) = old {
            std::fs::remove_dir_all(self.dir().join(old))?;
        }
        Ok(())
    }
}

/// The Secret's data, as the kubelet would write it into the volume.
pub async fn secret_files(env: &Env, ns: &str, name: &str) -> Result<BTreeMap<String, Vec<u8>>> {
    let secret = Api::<Secret>::namespaced(env.client.clone(), ns)
        .get(name)
        .await?;
    Ok(secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect())
}

pub struct Served {
    pub netns: NetNs,
    pub admin: SocketAddr,
    pub webhook: SocketAddr,
    pub certs: SecretVolume,
    child: Option<Child>,
    forward: tokio::task::JoinHandle<()>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// The release a test installs: its namespace and the chart's names in it.
pub struct Release<'a> {
    pub namespace: &'a str,
    pub fullname: &'a str,
    /// The rendered chart's documents.
    pub docs: &'a [Value],
}

impl Served {
    /// Starts kreload with the rendered Deployment's arguments and environment (the
    /// certificate directory moved to `certs`, which must already hold the Secret), and
    /// points the Service at it.
    pub async fn start(env: &Arc<Env>, release: &Release<'_>, certs: SecretVolume) -> Result<Self> {
        let dir = kreload_testenv::controlplane::owned_tempdir("kreload-served-")?;
        let netns = NetNs::create()?;
        let api: SocketAddr = env.cp.server().trim_start_matches("https://").parse()?;
        let way_out = SocketAddr::new(IpAddr::V4(netns.host), api.port());
        let forward = netns::forward(way_out, api).await?;
        let kc = dir.path().join("kubeconfig");
        let user = format!(
            "system:serviceaccount:{}:{}",
            release.namespace, release.fullname
        );
        kubeconfig::derive(
            env.cp.kubeconfig(),
            &kc,
            &Derive {
                impersonate: Some(&user),
                server: Some(&format!("https://{way_out}")),
                tls_server_name: Some("localhost"),
            },
        )?;
        let deployment = super::find(release.docs, "Deployment", release.fullname)?;
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        let certs_dir = certs.dir().display().to_string();
        let args: Vec<String> = container["args"]
            .as_array()
            .context("the Deployment has no args")?
            .iter()
            .filter_map(Value::as_str)
            .map(|a| a.replace("=/certs/", &format!("={certs_dir}/")))
            .collect();
        let log = dir.path().join("kreload.log");
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        let mut cmd = netns.command(Path::new("/usr/bin/setpriv"));
        cmd.args([
            "--pdeathsig",
            "SIGKILL",
            "--",
            env!("CARGO_BIN_EXE_kreload"),
        ])
        .args(&args)
        .arg(format!("--kubeconfig={}", kc.display()))
        // What the Deployment's downward-API variable says.
        .env("POD_NAMESPACE", release.namespace)
        .env_remove("KUBEBUILDER_ASSETS")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
        let child = cmd
            .spawn()
            .context("starting kreload in the network namespace")?;
        // The binary's default ports, in the namespace.
        let admin = SocketAddr::new(IpAddr::V4(netns.inner), 9090);
        let webhook = SocketAddr::new(IpAddr::V4(netns.inner), 9443);
        let served = Self {
            netns,
            admin,
            webhook,
            certs,
            child: Some(child),
            forward,
            log,
            _dir: dir,
        };
        apply(
            env,
            &endpoint_slice(release, served.netns.inner).to_string(),
            false,
        )?;
        eventually("kreload /readyz", Duration::from_secs(60), || async {
            Ok(local::admin_get(served.admin, "/readyz")
                .await
                .filter(|b| b.trim() == "ok"))
        })
        .await
        .with_context(|| served.log_tail())?;
        Ok(served)
    }

    /// Sum of a metric's samples whose line contains every `filter`.
    pub async fn metric(&self, name: &str, filters: &[&str]) -> Result<f64> {
        crate::support::instance::metric_at(self.admin, name, filters).await
    }

    /// kreload's peak resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "[kreload]\n{}",
            lines[lines.len().saturating_sub(40)..].join("\n")
        )
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.forward.abort();
    }
}

/// What an endpoints controller would write for a ready pod at `ip` behind the Service.
fn endpoint_slice(release: &Release<'_>, ip: Ipv4Addr) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{}-e2e", release.fullname),
            "namespace": release.namespace,
            "labels": {
                "kubernetes.io/service-name": release.fullname,
                "endpointslice.kubernetes.io/managed-by": "kreload-e2e",
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip.to_string()], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": 9443, "protocol": "TCP"}],
    })
}

/// The leaf certificate kreload serves at `addr` for `server_name`, verified against `ca`.
pub async fn served_cert(addr: SocketAddr, server_name: &str, ca: &[u8]) -> Result<Vec<u8>> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from(server_name.to_owned())?;
    let tls = tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp)).await??;
    let (_, conn) = tls.get_ref();
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .context("no certificate served")?;
    Ok(leaf.as_ref().to_vec())
}

/// The DER of the first certificate in `pem`.
pub fn der(pem: &[u8]) -> Result<Vec<u8>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    Ok(CertificateDer::from_pem_slice(pem)?.as_ref().to_vec())
}
