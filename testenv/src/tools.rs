//! The install tools the tests drive as child processes: real Helm, real cert-manager, Flux's
//! CRDs, the Secrets Store CSI Driver's CRDs and kubectl. `hack/test.sh` builds them from Go
//! modules and exports where they are (`KRELOAD_HELM`, `KRELOAD_CERTMANAGER_DIR`,
//! `KRELOAD_FLUX_CRDS`, `KRELOAD_FLUX_DIR`, `KRELOAD_CSI_CRDS`); without those, the hack
//! script is run here, which builds on the first run and prints the cached directory.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("running {what}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} failed ({status}):\n{stderr}")]
    Failed {
        what: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("{what} printed no directory")]
    NoDirectory { what: String },
    #[error("{0} is not there")]
    Missing(PathBuf),
}

/// The repository root (this crate lives in `testenv/`).
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_owned()
}

/// `$var` when set, else the last line `hack/<script> <args>` prints.
fn located(var: &str, script: &str, args: &[&str]) -> Result<PathBuf, Error> {
    if let Some(v) = std::env::var_os(var) {
        return Ok(PathBuf::from(v));
    }
    let path = repo_root().join("hack").join(script);
    let mut cmd = Command::new("bash");
    cmd.arg(&path).args(args);
    // The script's progress (a first build takes minutes) shows in the test output.
    let out = output(&mut cmd, None, Stdio::inherit())?;
    out.lines()
        .last()
        .map(|l| PathBuf::from(l.trim()))
        .ok_or_else(|| Error::NoDirectory {
            what: path.display().to_string(),
        })
}

/// The `helm` binary.
pub fn helm() -> Result<PathBuf, Error> {
    if let Some(v) = std::env::var_os("KRELOAD_HELM") {
        return existing(PathBuf::from(v));
    }
    existing(located("KRELOAD_HELM_DIR", "helm.sh", &[])?.join("helm"))
}

/// The directory holding `cert-manager-lite` and `crds/`.
pub fn certmanager_dir() -> Result<PathBuf, Error> {
    existing(located("KRELOAD_CERTMANAGER_DIR", "certmanager.sh", &[])?)
}

/// Flux's CRDs (helm-controller and source-controller).
pub fn flux_crds() -> Result<PathBuf, Error> {
    if let Some(v) = std::env::var_os("KRELOAD_FLUX_CRDS") {
        return existing(PathBuf::from(v));
    }
    existing(located("KRELOAD_FLUX_DIR", "flux.sh", &["--crds-only"])?.join("crds"))
}

/// The Secrets Store CSI Driver's CRDs (`KRELOAD_CSI_CRDS`, else `hack/csi.sh`, which
/// fetches them from the driver's Go module on the first run).
pub fn csi_crds() -> Result<PathBuf, Error> {
    if let Some(v) = std::env::var_os("KRELOAD_CSI_CRDS") {
        return existing(PathBuf::from(v));
    }
    existing(located("KRELOAD_CSI_DIR", "csi.sh", &[])?.join("crds"))
}

/// The directory holding Flux's `source-controller`, `helm-controller` and `crds/`
/// (`KRELOAD_FLUX_DIR`, else `hack/flux.sh`, which builds them on the first run).
pub fn flux_dir() -> Result<PathBuf, Error> {
    existing(located("KRELOAD_FLUX_DIR", "flux.sh", &[])?)
}

fn existing(path: PathBuf) -> Result<PathBuf, Error> {
    if path.exists() {
        Ok(path)
    } else {
        Err(Error::Missing(path))
    }
}

/// Runs `cmd` (with `stdin` fed to it when given) and returns its standard output; a
/// failure carries the command's standard error.
pub fn run(cmd: &mut Command, stdin: Option<&str>) -> Result<String, Error> {
    output(cmd, stdin, Stdio::piped())
}

fn output(cmd: &mut Command, stdin: Option<&str>, stderr: Stdio) -> Result<String, Error> {
    let what = format!("{cmd:?}");
    cmd.stdout(Stdio::piped()).stderr(stderr);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let spawn = |source| Error::Spawn {
        what: what.clone(),
        source,
    };
    let mut child = cmd.spawn().map_err(spawn)?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).map_err(spawn)?;
    }
    let out = child.wait_with_output().map_err(spawn)?;
    if !out.status.success() {
        return Err(Error::Failed {
            what,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `helm template <release> charts/kreload -n <namespace> <args>`.
pub fn helm_template(release: &str, namespace: &str, args: &[&str]) -> Result<String, Error> {
    let chart = repo_root().join("charts/kreload");
    let mut cmd = Command::new(helm()?);
    cmd.arg("template")
        .arg(release)
        .arg(&chart)
        .args(["-n", namespace])
        .args(args);
    run(&mut cmd, None)
}

/// `kubectl --kubeconfig <kc> <args>`, with `stdin` as `-f -` input when given.
pub fn kubectl(
    kubectl: &Path,
    kubeconfig: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, Error> {
    let mut cmd = Command::new(kubectl);
    cmd.arg("--kubeconfig").arg(kubeconfig).args(args);
    run(&mut cmd, stdin)
}

/// Every non-empty document of a multi-document YAML stream, as JSON values.
pub fn yaml_docs(text: &str) -> Result<Vec<serde_json::Value>, serde_yaml_ng::Error> {
    use serde::Deserialize as _;
    let mut docs = Vec::new();
    for de in serde_yaml_ng::Deserializer::from_str(text) {
        let doc = serde_json::Value::deserialize(de)?;
        if !doc.is_null() {
            docs.push(doc);
        }
    }
    Ok(docs)
}
