//! The opt-in CronJob Job mode (`--cronjob-create-job`): a reload also starts a Job from
//! the CronJob at once, as Reloader does, but never for a suspended CronJob.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, ensure};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::events::v1::Event;
use kreload::reload::model::{SourceKind, WorkloadKind};
use kube::api::{Api, ListParams};
use serde_json::json;

use crate::reload::wait_indexed;
use crate::support::instance::Instance;
use crate::support::workloads::{
    self as w, Form, configmap, create, data, expected_hash, update_source,
};
use crate::support::{Env, eventually, namespace};

pub async fn starts_a_job_unless_suspended(env: Arc<Env>) -> Result<()> {
    let client = env.client.clone();
    let flags = ["--coalesce-window=1s", "--cronjob-create-job"];
    let inst = Instance::start(
        &client,
        env.cp.kubeconfig(),
        "cron-jobs",
        "cron-jobs",
        &flags,
    )
    .await?;
    let ns = namespace(&client, "cron-jobs", &inst.labels()).await?;
    configmap(&client, &ns, "cfg", &[("k", "1")]).await?;
    let auto = json!({"reloader.stakater.com/auto": "true"});
    for (name, suspend) in [("active", false), ("suspended", true)] {
        let spec = w::pod_spec(Form::EnvFrom, SourceKind::ConfigMap, "cfg");
        let mut cron = w::workload(WorkloadKind::CronJob, name, auto.clone(), json!({}), spec);
        cron["spec"]["suspend"] = json!(suspend);
        create(&client, &ns, &cron).await?;
    }
    wait_indexed(&inst, 2).await?;
    let v2 = data(&[("k", "2")]);
    update_source(&client, &ns, SourceKind::ConfigMap, "cfg", &v2).await?;
    // The Reloaded Event is recorded after the Job was (or was not) started.
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    eventually(
        "both CronJobs to be reloaded",
        Duration::from_secs(60),
        || async {
            let list = events.list(&ListParams::default()).await?;
            let reloaded = |name: &str| {
                list.items.iter().any(|e| {
                    e.reason.as_deref() == Some("Reloaded")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                })
            };
            Ok((reloaded("active") && reloaded("suspended")).then_some(()))
        },
    )
    .await?;
    let jobs = Api::<Job>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await?
        .items;
    let owner = |j: &Job| {
        j.metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.kind == "CronJob" && o.controller == Some(true))
            .map(|o| o.name.clone())
    };
    let owners: Vec<Option<String>> = jobs.iter().map(owner).collect();
    ensure!(
        owners == [Some("active".to_owned())],
        "jobs owned by {owners:?}"
    );
    let job = &jobs[0];
    ensure!(
        job.metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with("active-"))
            && job
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("cronjob.kubernetes.io/instantiate"))
                .map(String::as_str)
                == Some("manual"),
        "not Reloader's job: {:?}",
        job.metadata
    );
    let job_json = serde_json::to_value(job)?;
    let env_value = job_json["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .and_then(|e| e.iter().find(|v| v["name"] == "STAKATER_CFG_CONFIGMAP"))
        .and_then(|v| v["value"].as_str().map(str::to_owned));
    ensure!(
        env_value == Some(expected_hash(SourceKind::ConfigMap, &v2)),
        "the job does not run the new configuration: {env_value:?}"
    );
    Ok(())
}
