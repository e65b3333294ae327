//! The flags that narrow or widen what kreload does: --namespace-selector,
//! --resource-label-selector, --resources-to-ignore, --ignored-workload-types,
//! --reload-on-create and --reload-on-delete.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, ensure};
use k8s_openapi::api::core::v1::ConfigMap;
use kreload::reload::model::{SourceKind, SourceRef, WorkloadKind};
use kube::api::{Api, DeleteParams};
use serde_json::json;

use crate::reload::wait_indexed;
use crate::support::instance::{INSTANCE_LABEL, Instance};
use crate::support::workloads::{
    self as w, Form, create, create_source, data, expected_hash, generation, get, reload_env,
    update_source,
};
use crate::support::{Env, eventually, namespace, trial};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    vec![trial(
        "options::narrowing_and_widening_flags",
        narrowing_and_widening_flags,
    )]
}

const D: WorkloadKind = WorkloadKind::Deployment;

async fn narrowing_and_widening_flags(env: Arc<Env>) -> Result<()> {
    let client = env.client.clone();
    let flags = [
        "--coalesce-window=1s",
        "--namespace-selector=team=a",
        "--resource-label-selector=reload:yes",
        "--resources-to-ignore=secrets",
        "--ignored-workload-types=statefulsets",
        "--reload-on-create",
        "--reload-on-delete",
    ];
    let inst = Instance::start_with(
        &client,
        &env.kreload_kubeconfig,
        "options",
        "options",
        &flags,
        &[("team", "a")],
    )
    .await?;
    let a = namespace(
        &client,
        "options-a",
        &[(INSTANCE_LABEL, "options"), ("team", "a")],
    )
    .await?;
    let b = namespace(
        &client,
        "options-b",
        &[(INSTANCE_LABEL, "options"), ("team", "b")],
    )
    .await?;
    let auto = json!({"kreload.dev/auto": "true"});
    let v1 = data(&[("k", "1")]);
    let v2 = data(&[("k", "2")]);

    // Sources carry the label the resource selector wants, except "nolabel".
    for (ns, name) in [(&a, "doomed"), (&a, "c1"), (&a, "control"), (&b, "b-cm")] {
        create_labelled(&client, ns, name, &v1, true).await?;
    }
    create_labelled(&client, &a, "nolabel", &v1, false).await?;
    create_source(&client, &a, SourceKind::Secret, "s", &v1, &[]).await?;
    let cm_user = |name: &str, cm: &str| {
        w::workload(
            D,
            name,
            auto.clone(),
            json!({}),
            w::pod_spec(Form::EnvFrom, SourceKind::ConfigMap, cm),
        )
    };
    create(&client, &a, &cm_user("created", "late")).await?;
    create(&client, &a, &cm_user("deleted", "doomed")).await?;
    create(&client, &a, &cm_user("dep", "c1")).await?;
    create(
        &client,
        &a,
        &w::workload(
            WorkloadKind::StatefulSet,
            "sts",
            auto.clone(),
            json!({}),
            w::pod_spec(Form::EnvFrom, SourceKind::ConfigMap, "c1"),
        ),
    )
    .await?;
    create(&client, &a, &cm_user("unlabelled", "nolabel")).await?;
    create(
        &client,
        &a,
        &w::workload(
            D,
            "secret-user",
            auto.clone(),
            json!({}),
            w::pod_spec(Form::Volume, SourceKind::Secret, "s"),
        ),
    )
    .await?;
    create(&client, &a, &cm_user("control", "control")).await?;
    create(&client, &b, &cm_user("other-team", "b-cm")).await?;
    // StatefulSets are ignored, so the index holds the other seven.
    wait_indexed(&inst, 7).await?;
    let g = |ns: String, name: &'static str, kind: WorkloadKind| {
        let client = client.clone();
        async move { Ok::<_, anyhow::Error>(generation(&get(&client, &ns, kind, name).await?)) }
    };
    let before = [
        g(a.clone(), "sts", WorkloadKind::StatefulSet).await?,
        g(a.clone(), "unlabelled", D).await?,
        g(a.clone(), "secret-user", D).await?,
        g(b.clone(), "other-team", D).await?,
    ];

    let cm = |name: &str| SourceRef {
        kind: SourceKind::ConfigMap,
        name: name.into(),
    };
    // "deleted" first gets its variable through an ordinary reload ...
    update_source(&client, &a, SourceKind::ConfigMap, "doomed", &v2).await?;
    eventually(
        "deleted to reload once",
        Duration::from_secs(60),
        || async {
            let obj = get(&client, &a, D, "deleted").await?;
            Ok(reload_env(D, &obj, &cm("doomed")).map(|_| ()))
        },
    )
    .await?;

    create_labelled(&client, &a, "late", &v1, true).await?;
    // ... and deleting its source removes the variable again, as Reloader does.
    Api::<ConfigMap>::namespaced(client.clone(), &a)
        .delete("doomed", &DeleteParams::default())
        .await?;
    update_source(&client, &a, SourceKind::ConfigMap, "c1", &v2).await?;
    update_source(&client, &a, SourceKind::ConfigMap, "nolabel", &v2).await?;
    update_source(&client, &a, SourceKind::Secret, "s", &v2).await?;
    update_source(&client, &b, SourceKind::ConfigMap, "b-cm", &v2).await?;
    update_source(&client, &a, SourceKind::ConfigMap, "control", &v2).await?;

    let expect = [
        (
            "created",
            cm("late"),
            Some(expected_hash(SourceKind::ConfigMap, &v1)),
        ),
        ("deleted", cm("doomed"), None),
        (
            "dep",
            cm("c1"),
            Some(expected_hash(SourceKind::ConfigMap, &v2)),
        ),
        (
            "control",
            cm("control"),
            Some(expected_hash(SourceKind::ConfigMap, &v2)),
        ),
    ];
    for (name, source, want) in &expect {
        eventually(
            &format!("{name} to reload"),
            Duration::from_secs(60),
            || async {
                Ok(
                    (reload_env(D, &get(&client, &a, D, name).await?, source) == *want)
                        .then_some(()),
                )
            },
        )
        .await
        .map_err(|e| e.context(inst.log_tail()))?;
    }
    let after = [
        g(a.clone(), "sts", WorkloadKind::StatefulSet).await?,
        g(a.clone(), "unlabelled", D).await?,
        g(a.clone(), "secret-user", D).await?,
        g(b.clone(), "other-team", D).await?,
    ];
    ensure!(
        before == after,
        "an excluded workload was reloaded: generations {before:?} → {after:?}"
    );
    Ok(())
}

async fn create_labelled(
    client: &kube::Client,
    ns: &str,
    name: &str,
    data: &std::collections::BTreeMap<String, String>,
    label: bool,
) -> Result<()> {
    let mut cm = ConfigMap {
        data: Some(data.clone()),
        ..Default::default()
    };
    cm.metadata.name = Some(name.into());
    if label {
        cm.metadata.labels = Some([("reload".to_owned(), "yes".to_owned())].into());
    }
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .create(&Default::default(), &cm)
        .await?;
    Ok(())
}
