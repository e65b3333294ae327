//! The image, built without a container engine: `hack/image.sh` assembles the OCI layout
//! around this test run's kreload binary (the release build is the same assembly around
//! another binary, and costs minutes per change on two cores). Its config says what the
//! manifests assume, and the binary runs from the image's root filesystem under runc.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context as _, Result, ensure};
use kreload_testenv::tools::{self, run};
use serde_json::{Value, json};

use crate::support::{Env, trial};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    vec![trial("install::image_config_and_run", image)]
}

fn blob(layout: &Path, digest: &str) -> Result<Value> {
    let hex = digest
        .strip_prefix("sha256:")
        .context("digest is not sha256")?;
    let text = std::fs::read_to_string(layout.join("blobs/sha256").join(hex))?;
    Ok(serde_json::from_str(&text)?)
}

async fn image(_env: Arc<Env>) -> Result<()> {
    let work = tempfile::tempdir()?;
    let layout = work.path().join("image");
    let bin = env!("CARGO_BIN_EXE_kreload");
    run(
        Command::new("bash")
            .arg(tools::repo_root().join("hack/image.sh"))
            .arg(&layout)
            .env("KRELOAD_IMAGE_BINARY", bin),
        None,
    )?;
    let index: Value = serde_json::from_str(&std::fs::read_to_string(layout.join("index.json"))?)?;
    let manifest = index["manifests"]
        .as_array()
        .and_then(|m| {
            m.iter()
                .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "latest")
        })
        .context("no image tagged latest")?;
    let manifest = blob(&layout, manifest["digest"].as_str().context("no digest")?)?;
    let config = blob(
        &layout,
        manifest["config"]["digest"].as_str().context("no config")?,
    )?;
    let c = &config["config"];
    ensure!(c["User"] == "65532:65532", "user {}", c["User"]);
    ensure!(
        c["Entrypoint"] == json!(["/kreload"]),
        "entrypoint {}",
        c["Entrypoint"]
    );
    ensure!(c["Cmd"] == json!(["serve"]), "cmd {}", c["Cmd"]);
    ensure!(
        c["ExposedPorts"] == json!({"9443/tcp": {}, "9090/tcp": {}}),
        "exposed ports {}",
        c["ExposedPorts"]
    );
    ensure!(
        manifest["layers"].as_array().map(Vec::len) == Some(1),
        "expected one layer"
    );

    let bundle = work.path().join("bundle");
    let image_ref = format!("{}:latest", layout.display());
    run(
        Command::new("umoci")
            .args(["unpack", "--image", &image_ref])
            .arg(&bundle),
        None,
    )?;
    let rootfs = bundle.join("rootfs");
    let mut files: Vec<String> = walk(&rootfs, &rootfs)?;
    files.sort();
    ensure!(
        files
            .iter()
            .all(|f| f == "/kreload" || f.starts_with("/etc/") || f.starts_with("/lib")),
        "the image holds more than the binary, its libraries and /etc: {files:?}"
    );
    // runc runs the image's own process (user 65532, the image's entrypoint) with
    // `--version` as the command.
    let spec_path = bundle.join("config.json");
    let mut spec: Value = serde_json::from_str(&std::fs::read_to_string(&spec_path)?)?;
    ensure!(
        spec["process"]["user"]["uid"] == 65532,
        "runtime user {}",
        spec["process"]["user"]
    );
    spec["process"]["args"] = json!(["/kreload", "--version"]);
    spec["process"]["terminal"] = json!(false);
    std::fs::write(&spec_path, serde_json::to_vec(&spec)?)?;
    let id = format!("kreload-e2e-{}", std::process::id());
    let out = run(
        Command::new("runc")
            .args(["run", "-b"])
            .arg(&bundle)
            .arg(&id),
        None,
    )?;
    let version = env!("CARGO_PKG_VERSION");
    ensure!(
        out.trim() == format!("kreload {version}"),
        "runc run printed {out:?}"
    );
    Ok(())
}

/// Regular files under `dir`, as paths inside the image.
fn walk(root: &Path, dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(walk(root, &path)?);
        } else {
            out.push(format!("/{}", path.strip_prefix(root)?.display()));
        }
    }
    Ok(out)
}
