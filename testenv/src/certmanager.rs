//! Real cert-manager for the tests: `cert-manager-lite controller` and `cainjector` (built
//! by `hack/certmanager.sh` from cert-manager's Go module) as child processes against the
//! test API server. Dropping [`CertManager`] stops both.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("creating the log directory")]
    Dir(#[source] std::io::Error),
    #[error("starting cert-manager-lite {part}")]
    Spawn {
        part: &'static str,
        #[source]
        source: std::io::Error,
    },
}

pub struct CertManager {
    children: Vec<(&'static str, Child)>,
    dir: tempfile::TempDir,
}

impl CertManager {
    /// Starts the controller and the CA injector from `install` (the directory
    /// `hack/certmanager.sh` prints), watching only `namespace`.
    pub fn start(install: &Path, kubeconfig: &Path, namespace: &str) -> Result<Self, Error> {
        let dir = crate::controlplane::owned_tempdir("kreload-certmanager-").map_err(Error::Dir)?;
        let mut cm = Self {
            children: Vec::new(),
            dir,
        };
        let bin = install.join("cert-manager-lite");
        for part in ["controller", "cainjector"] {
            let log = File::create(cm.log(part)).map_err(Error::Dir)?;
            let err = log.try_clone().map_err(Error::Dir)?;
            // The parent-death signal stops it even if the test process is killed.
            let child = Command::new("/usr/bin/setpriv")
                .args(["--pdeathsig", "SIGKILL", "--"])
                .arg(&bin)
                .arg(part)
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .args(["--namespace", namespace, "-v", "2"])
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err)
                .spawn()
                .map_err(|source| Error::Spawn { part, source })?;
            cm.children.push((part, child));
        }
        Ok(cm)
    }

    fn log(&self, part: &str) -> PathBuf {
        self.dir.path().join(format!("{part}.log"))
    }

    /// The last lines of both logs, for a failing test's message.
    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        for part in ["controller", "cainjector"] {
            let text = std::fs::read_to_string(self.log(part)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!(
                "[cert-manager {part}]\n{}\n",
                lines[lines.len().saturating_sub(15)..].join("\n")
            ));
        }
        out
    }
}

impl Drop for CertManager {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
