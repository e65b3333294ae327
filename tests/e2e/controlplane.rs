//! Proof that the harness gives the tests a real control plane: controllers act on what
//! the client creates, and the API server calls admission webhooks over TLS.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, Result};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};

use crate::support::{self, Env, eventually, namespace, recorder::Recorder};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    vec![
        support::trial(
            "controlplane::deployment_gets_a_replicaset",
            deployment_gets_a_replicaset,
        ),
        support::trial(
            "controlplane::webhook_sees_old_and_new_data",
            webhook_sees_old_and_new_data,
        ),
    ]
}

pub fn deployment(name: &str) -> Result<Deployment> {
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}
            }
        }
    }))?)
}

async fn deployment_gets_a_replicaset(env: std::sync::Arc<Env>) -> Result<()> {
    let client = env.client.clone();
    let ns = namespace(&client, "cp-deploy", &[]).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &deployment("web")?)
        .await?;
    let rs: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    let owner = eventually(
        "a ReplicaSet owned by web",
        Duration::from_secs(60),
        || async {
            let list = rs.list(&ListParams::default()).await?;
            Ok(list.items.into_iter().find_map(|r| {
                r.metadata
                    .owner_references
                    .unwrap_or_default()
                    .into_iter()
                    .find(|o| o.kind == "Deployment" && o.name == "web")
            }))
        },
    )
    .await?;
    assert_eq!(owner.controller, Some(true));
    Ok(())
}

async fn webhook_sees_old_and_new_data(env: std::sync::Arc<Env>) -> Result<()> {
    let client = env.client.clone();
    let ns = namespace(&client, "cp-webhook", &[]).await?;
    let mut recorder = Recorder::start().await?;
    let name = format!("recorder-{ns}");
    recorder.register(&client, &name, &ns, None).await?;
    let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("settings".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("mode".to_owned(), "old".to_owned())])),
        ..Default::default()
    };
    cms.create(&PostParams::default(), &cm).await?;
    // The API server picks up new webhook configurations asynchronously; keep updating
    // until one update has been seen by the webhook.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let review = loop {
        let patch = serde_json::json!({"data": {"mode": "new"}});
        cms.patch("settings", &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        if let Ok(Some(review)) =
            tokio::time::timeout(Duration::from_millis(500), recorder.reviews.recv()).await
        {
            break review;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the webhook received no ConfigMap UPDATE within 30s"
        );
    };
    configs.delete(&name, &DeleteParams::default()).await?;
    let request = &review["request"];
    assert_eq!(request["operation"], "UPDATE");
    assert_eq!(request["kind"]["kind"], "ConfigMap");
    assert_eq!(
        request["oldObject"]["data"]["mode"], "old",
        "review: {request}"
    );
    assert_eq!(request["object"]["data"]["mode"], "new");
    let uid = request["uid"].as_str().context("uid")?;
    assert!(!uid.is_empty());
    Ok(())
}
