//! The one control plane of a benchmark run (etcd + kube-apiserver, no
//! kube-controller-manager, so Deployments create no pods), with a user of its own for each
//! controller (static tokens) and an audit log that records only those users' requests, so
//! the API requests each controller made can be counted. `apiserver_request_total` has no
//! user or user-agent label, so the metric cannot tell the controllers apart.

use std::collections::BTreeMap;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use kreload_testenv::controlplane::{Assets, ControlPlane, Options};

/// The users the controllers authenticate as (one static token each).
pub const KRELOAD_USER: &str = "bench-kreload";
pub const RELOADER_USER: &str = "bench-reloader";

pub struct Cluster {
    pub cp: ControlPlane,
    pub client: kube::Client,
    audit_log: PathBuf,
    kubeconfigs: BTreeMap<&'static str, PathBuf>,
}

impl Cluster {
    /// Starts the control plane, writing its extra configuration into `dir`.
    pub async fn start(assets: &Path, dir: &Path) -> Result<Self> {
        let assets = Assets::in_dir(assets).context("control-plane binaries")?;
        let policy = dir.join("audit-policy.yaml");
        std::fs::write(
            &policy,
            format!(
                "apiVersion: audit.k8s.io/v1\nkind: Policy\n\
                 omitStages: [ResponseStarted, ResponseComplete, Panic]\nrules:\n\
                 - level: Metadata\n  users: [{KRELOAD_USER}, {RELOADER_USER}]\n- level: None\n"
            ),
        )
        .context("writing the audit policy")?;
        let tokens = dir.join("tokens.csv");
        let token = |user: &str| format!("token-{user}");
        std::fs::write(
            &tokens,
            format!(
                "{},{KRELOAD_USER},{KRELOAD_USER},system:masters\n{},{RELOADER_USER},{RELOADER_USER},system:masters\n",
                token(KRELOAD_USER),
                token(RELOADER_USER)
            ),
        )
        .context("writing the token file")?;
        let audit_log = dir.join("audit.log");
        let opts = Options {
            controller_manager: false,
            apiserver_args: vec![
                format!("--token-auth-file={}", tokens.display()),
                format!("--audit-policy-file={}", policy.display()),
                format!("--audit-log-path={}", audit_log.display()),
                "--audit-log-format=json".to_owned(),
                "--audit-log-maxbackup=0".to_owned(),
            ],
            ..Options::default()
        };
        let cp = ControlPlane::start(&assets, &opts)
            .await
            .context("starting etcd and kube-apiserver")?;
        let client = cp.client().await.context("admin client")?;
        let mut kubeconfigs = BTreeMap::new();
        for user in [KRELOAD_USER, RELOADER_USER] {
            let path = dir.join(format!("{user}.kubeconfig"));
            let yaml = format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: bench\n  cluster:\n    \
                 server: {server}\n    certificate-authority: {ca}\nusers:\n- name: {user}\n  \
                 user:\n    token: {token}\ncontexts:\n- name: bench\n  context:\n    \
                 cluster: bench\n    user: {user}\ncurrent-context: bench\n",
                server = cp.server(),
                ca = cp.dir().join("ca.crt").display(),
                token = token(user),
            );
            kreload::certs::write_file(&path, &yaml, true).context("writing a kubeconfig")?;
            kubeconfigs.insert(user, path);
        }
        Ok(Self {
            cp,
            client,
            audit_log,
            kubeconfigs,
        })
    }

    pub fn kubeconfig(&self, user: &str) -> &Path {
        self.kubeconfigs
            .get(user)
            .map_or_else(|| self.cp.kubeconfig(), PathBuf::as_path)
    }

    /// Where the audit log ends now.
    pub fn audit_offset(&self) -> u64 {
        std::fs::metadata(&self.audit_log).map_or(0, |m| m.len())
    }

    /// The requests `user` made after `from` (an [`Self::audit_offset`]).
    pub fn requests_since(&self, user: &str, from: u64) -> Result<Requests> {
        let mut file = std::fs::File::open(&self.audit_log).context("opening the audit log")?;
        file.seek(SeekFrom::Start(from))
            .context("seeking the audit log")?;
        let mut text = String::new();
        file.read_to_string(&mut text)
            .context("reading the audit log")?;
        let mut out = Requests::default();
        for line in text.lines() {
            let Ok(event) = serde_json::from_str::<AuditEvent>(line) else {
                continue;
            };
            if event.user.username != user {
                continue;
            }
            out.total += 1;
            *out.by_verb.entry(event.verb).or_default() += 1;
            if let Some(agent) = event.user_agent {
                *out.user_agents.entry(agent).or_default() += 1;
            }
        }
        Ok(out)
    }

    /// `kube-apiserver --version`, as the server reports it.
    pub async fn kubernetes_version(&self) -> String {
        self.client
            .apiserver_version()
            .await
            .map_or_else(|e| format!("unknown ({e})"), |v| v.git_version)
    }
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Requests {
    pub total: u64,
    pub by_verb: BTreeMap<String, u64>,
    pub user_agents: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuditEvent {
    verb: String,
    user: AuditUser,
    user_agent: Option<String>,
}

#[derive(Deserialize)]
struct AuditUser {
    username: String,
}
