//! `kreload explain`: reads what [`crate::reload::explain`] needs through [`crate::kube`]
//! (the source, the namespace's workloads, or one workload and its sources) and prints the
//! answer, human-readable or JSON.

use anyhow::{Context as _, Result, bail};
use kube::Client;

use crate::cli::{ExplainArgs, Output};
use crate::kube::{client, sources, workloads::Workloads};
use crate::reload::explain::{self, Target};
use crate::reload::keys::Vocabulary;
use crate::reload::model::{SourceRef, WorkloadKind};
use crate::reload::rules::RuleOptions;
use crate::reload::warnings::{Parts, named};
use crate::reload::workload::WorkloadId;

/// Runs `kreload explain` and returns what to print.
pub async fn run(args: &ExplainArgs) -> Result<String> {
    let target = explain::parse_target(&args.target).with_context(|| {
        format!(
            "{:?} is not KIND/NAME (configmap/app, secret/db, secretproviderclass/vault, deployment/web)",
            args.target
        )
    })?;
    let client = client::connect(args.kubeconfig.as_deref()).await?;
    let opts = RuleOptions {
        vocabulary: Vocabulary::new(args.compat_reloader),
        auto_reload_all: args.auto_reload_all,
        ignored_workload_kinds: args.ignored_workload_types.iter().copied().collect(),
    };
    let ns = args.namespace.as_str();
    match target {
        Target::Source(source) => {
            let Some(annotations) = sources::annotations(&client, ns, &source).await? else {
                bail!("{source} does not exist in namespace {ns}");
            };
            let workloads = list(&client, ns).await?;
            let report = explain::explain_source(&opts, ns, &source, &annotations, &workloads);
            render(args.output, &report, explain::render_source)
        }
        Target::Workload(id) => {
            let Some(obj) = Workloads::new(&client, ns, id.kind).get(&id.name).await? else {
                bail!(
                    "{}/{} does not exist in namespace {ns}",
                    id.kind.api_kind(),
                    id.name
                );
            };
            let obj = serde_json::to_value(&obj)?;
            let parts = Parts::of(id.kind, &obj);
            let subject = parts.subject(id.kind.api_kind());
            let mut wanted: Vec<SourceRef> = parts.refs.sources().into_iter().collect();
            wanted.extend(named(&opts.vocabulary, &subject));
            wanted.sort();
            wanted.dedup();
            let mut found = Vec::new();
            for source in wanted {
                let annotations = sources::annotations(&client, ns, &source).await?;
                found.push((source, annotations));
            }
            let report = explain::explain_workload(&opts, ns, &id, &obj, &found);
            render(args.output, &report, explain::render_workload)
        }
    }
}

/// Every workload of the namespace, of every kind.
async fn list(client: &Client, ns: &str) -> Result<Vec<(WorkloadId, Parts)>> {
    let mut out = Vec::new();
    for kind in WorkloadKind::ALL {
        let items = Workloads::new(client, ns, kind)
            .list()
            .await
            .with_context(|| format!("listing {} in {ns}", kind.plural()))?;
        for obj in items {
            let name = obj.metadata.name.clone().unwrap_or_default();
            let value = serde_json::to_value(&obj)?;
            out.push((WorkloadId { kind, name }, Parts::of(kind, &value)));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn render<T: serde::Serialize>(
    output: Output,
    report: &T,
    text: fn(&T) -> String,
) -> Result<String> {
    Ok(match output {
        Output::Text => text(report),
        Output::Json => {
            let mut s = serde_json::to_string_pretty(report)?;
            s.push('\n');
            s
        }
    })
}
