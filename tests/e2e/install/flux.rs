//! The README's Flux example is valid: its `platform/kreload/` files, rendered by
//! `kubectl kustomize` as Flux's kustomize-controller would, are accepted by a server-side
//! dry run against Flux's CRDs (from the helm-controller and source-controller modules).

use std::sync::Arc;

use anyhow::{Context as _, Result, ensure};
use kreload_testenv::tools;

use super::{apply, crds, docs, kubectl};
use crate::support::{Env, named_namespace, trial};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    vec![trial("install::readme_flux_example", readme_flux_example)]
}

/// The ```yaml blocks of the README's "### With Flux" section that start with
/// `# platform/kreload/<file>`, as (file, contents).
pub fn platform_files(readme: &str) -> Result<Vec<(String, String)>> {
    let start = readme
        .find("### With Flux")
        .context("no \"### With Flux\" section")?;
    let section = &readme[start..];
    let section = &section[..section[4..].find("\n### ").map_or(section.len(), |e| e + 4)];
    let mut files = Vec::new();
    for block in section.split("```yaml\n").skip(1) {
        let body = block.split("```").next().unwrap_or_default();
        if let Some(file) = body
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# platform/kreload/"))
        {
            files.push((file.trim().to_owned(), body.to_owned()));
        }
    }
    Ok(files)
}

async fn readme_flux_example(env: Arc<Env>) -> Result<()> {
    crds(&env).await?;
    named_namespace(&env.client, "flux-system", &[]).await?;
    let readme = std::fs::read_to_string(tools::repo_root().join("README.md"))?;
    let files = platform_files(&readme)?;
    let names: Vec<&str> = files.iter().map(|(f, _)| f.as_str()).collect();
    ensure!(
        names == ["kustomization.yaml", "repository.yaml", "release.yaml"],
        "the README's platform/kreload/ files: {names:?}"
    );
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("platform/kreload");
    std::fs::create_dir_all(&dir)?;
    for (file, body) in &files {
        std::fs::write(dir.join(file), body)?;
    }
    let rendered = kubectl(&env, &["kustomize", dir.to_str().context("path")?], None)?;
    let objects = docs(&rendered)?;
    let kinds: Vec<&str> = objects.iter().filter_map(|d| d["kind"].as_str()).collect();
    ensure!(
        kinds.contains(&"HelmRelease") && kinds.contains(&"HelmRepository"),
        "rendered {kinds:?}"
    );
    let out = apply(&env, &rendered, true)?;
    ensure!(
        out.lines()
            .filter(|l| l.contains("(server dry run)"))
            .count()
            == objects.len(),
        "kubectl said\n{out}"
    );
    Ok(())
}
