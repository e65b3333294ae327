//! Exactly one rollout per change, and none when nothing changed: a burst inside the
//! coalescing window, two replicas acting on the same write, content going back to what
//! the pods already have; and writes that still succeed while kreload is down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::apps::v1::ReplicaSet;
use kreload::reload::model::{SourceKind, SourceRef};
use kube::api::{Api, ListParams};
use serde_json::json;

use crate::guards::{D, auto, cm, deployment, sentinel};
use crate::reload::{env_instance, wait_indexed};
use crate::support::instance::Instance;
use crate::support::workloads::secret;
use crate::support::workloads::{
    self as w, Form, configmap, create, create_source, data, expected_hash, generation, get,
    reload_env, update_source,
};
use crate::support::workloads::{update_configmap, update_secret};
use crate::support::{Env, eventually, namespace, trial};

mod stopping;

pub fn tests() -> Vec<libtest_mimic::Trial> {
    vec![
        trial(
            "once::burst_in_window_rolls_once_with_final_hash",
            burst_in_window_rolls_once,
        ),
        trial("once::two_replicas_roll_once", two_replicas_roll_once),
        trial(
            "once::a_revert_after_a_template_change_rolls",
            revert_after_template_change,
        ),
        trial(
            "once::sigterm_applies_pending_changes_before_exit",
            stopping::sigterm_drains,
        ),
        trial(
            "once::reapply_with_replace_does_not_roll",
            reapply_with_replace,
        ),
        trial(
            "once::back_to_the_same_content_rolls_nothing",
            back_to_same_content,
        ),
        trial(
            "once::writes_succeed_while_kreload_is_down",
            stopping::writes_succeed_while_down,
        ),
    ]
}

async fn replica_sets(client: &kube::Client, ns: &str, app: &str) -> Result<usize> {
    let rs: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    Ok(rs
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await?
        .items
        .len())
}

async fn burst_in_window_rolls_once(env: Arc<Env>) -> Result<()> {
    let inst = env_instance(&env).await?;
    let client = env.client.clone();
    let ns = namespace(&client, "burst", &inst.labels()).await?;
    secret(&client, &ns, "rotating", &[("key", "v0")]).await?;
    configmap(&client, &ns, "control", &[("round", "0")]).await?;
    create(
        &client,
        &ns,
        &w::workload(
            D,
            "api",
            auto(),
            json!({}),
            w::pod_spec(Form::Volume, SourceKind::Secret, "rotating"),
        ),
    )
    .await?;
    deployment(&client, &ns, "control", auto(), "control").await?;
    wait_indexed(&inst, 2).await?;
    eventually("the first ReplicaSet", Duration::from_secs(60), || async {
        Ok((replica_sets(&client, &ns, "api").await? == 1).then_some(()))
    })
    .await?;
    let g0 = generation(&get(&client, &ns, D, "api").await?);
    // Three writes well inside the 2 s window.
    let started = Instant::now();
    for v in ["v1", "v2", "v3"] {
        update_secret(&client, &ns, "rotating", &[("key", v)]).await?;
    }
    eprintln!("guards: three secret updates took {:?}", started.elapsed());
    let secret = SourceRef {
        kind: SourceKind::Secret,
        name: "rotating".into(),
    };
    let want = expected_hash(SourceKind::Secret, &data(&[("key", "v3")]));
    eventually(
        "the reload with the final hash",
        Duration::from_secs(60),
        || async {
            Ok(
                (reload_env(D, &get(&client, &ns, D, "api").await?, &secret) == Some(want.clone()))
                    .then_some(()),
            )
        },
    )
    .await?;
    sentinel(&inst, &client, &ns, "control", "1").await?;
    let g1 = generation(&get(&client, &ns, D, "api").await?);
    ensure!(
        g1 == g0 + 1,
        "expected one rollout, generation went {g0} → {g1}"
    );
    eventually("the second ReplicaSet", Duration::from_secs(60), || async {
        Ok((replica_sets(&client, &ns, "api").await? == 2).then_some(()))
    })
    .await?;
    ensure!(replica_sets(&client, &ns, "api").await? == 2);
    Ok(())
}

async fn two_replicas_roll_once(env: Arc<Env>) -> Result<()> {
    let client = env.client.clone();
    let flags = ["--coalesce-window=1s"];
    let a = Instance::start(
        &client,
        &env.kreload_kubeconfig,
        "replica-a",
        "replicas",
        &flags,
    )
    .await?;
    let b = Instance::start(
        &client,
        &env.kreload_kubeconfig,
        "replica-b",
        "replicas",
        &flags,
    )
    .await?;
    let ns = namespace(&client, "replicas", &a.labels()).await?;
    configmap(&client, &ns, "settings", &[("k", "1")]).await?;
    deployment(&client, &ns, "web", auto(), "settings").await?;
    wait_indexed(&a, 1).await?;
    wait_indexed(&b, 1).await?;
    let g0 = generation(&get(&client, &ns, D, "web").await?);
    update_configmap(&client, &ns, "settings", &[("k", "2")]).await?;
    // Both replicas are called by the API server and both act; wait until each has
    // handled the workload once.
    let (reloaded, already) = eventually(
        "both replicas to handle the change",
        Duration::from_secs(60),
        || async {
            let reloaded = outcome(&a, "reloaded").await? + outcome(&b, "reloaded").await?;
            let already =
                outcome(&a, "already_applied").await? + outcome(&b, "already_applied").await?;
            Ok((reloaded + already >= 2.0).then_some((reloaded, already)))
        },
    )
    .await?;
    eprintln!(
        "guards: replicas reloaded {reloaded} time(s), found it already applied {already} time(s)"
    );
    ensure!(
        reloaded == 1.0,
        "both replicas rolled the workload: reloaded={reloaded}"
    );
    let g1 = generation(&get(&client, &ns, D, "web").await?);
    ensure!(g1 == g0 + 1, "generation {g0} → {g1}");
    Ok(())
}

async fn outcome(inst: &Instance, outcome: &str) -> Result<f64> {
    let filter = format!("outcome=\"{outcome}\"");
    inst.metric("kreload_reloads_total", &["kind=\"Deployment\"", &filter])
        .await
}

async fn back_to_same_content(env: Arc<Env>) -> Result<()> {
    let inst = env_instance(&env).await?;
    let client = env.client.clone();
    let ns = namespace(&client, "same", &inst.labels()).await?;
    let a = data(&[("k", "A")]);
    create_source(&client, &ns, SourceKind::ConfigMap, "flip", &a, &[]).await?;
    configmap(&client, &ns, "control", &[("round", "0")]).await?;
    deployment(&client, &ns, "web", auto(), "flip").await?;
    deployment(&client, &ns, "control", auto(), "control").await?;
    let created = get(&client, &ns, D, "web").await?;
    ensure!(
        created["metadata"]["annotations"]["kreload.dev/observed"].is_string(),
        "the workload webhook recorded no baseline: {}",
        created["metadata"]
    );
    wait_indexed(&inst, 2).await?;
    let g0 = generation(&created);
    // A → B → A inside one window: the pods already run with A.
    update_configmap(&client, &ns, "flip", &[("k", "B")]).await?;
    update_source(&client, &ns, SourceKind::ConfigMap, "flip", &a).await?;
    sentinel(&inst, &client, &ns, "control", "1").await?;
    let obj = get(&client, &ns, D, "web").await?;
    ensure!(
        generation(&obj) == g0,
        "rolled although the content is what the pods have"
    );
    // And the same hash applied twice: B, wait for the reload, then B again via a
    // write that changes nothing else — no second rollout.
    update_configmap(&client, &ns, "flip", &[("k", "B")]).await?;
    let want = expected_hash(SourceKind::ConfigMap, &data(&[("k", "B")]));
    eventually("the reload to B", Duration::from_secs(60), || async {
        Ok(
            (reload_env(D, &get(&client, &ns, D, "web").await?, &cm("flip")) == Some(want.clone()))
                .then_some(()),
        )
    })
    .await?;
    let g1 = generation(&get(&client, &ns, D, "web").await?);
    ensure!(g1 == g0 + 1);
    update_configmap(&client, &ns, "flip", &[("k", "C")]).await?;
    update_configmap(&client, &ns, "flip", &[("k", "B")]).await?;
    sentinel(&inst, &client, &ns, "control", "2").await?;
    ensure!(
        generation(&get(&client, &ns, D, "web").await?) == g1,
        "the same hash rolled the workload again"
    );
    Ok(())
}

/// A GitOps tool re-applies the manifest with replace (PUT), which has neither kreload's
/// variable nor its record nor its observed annotation: the workload webhook puts them
/// back, so the pod template is unchanged and nothing rolls.
async fn reapply_with_replace(env: Arc<Env>) -> Result<()> {
    for (profile, flags) in [
        ("env", crate::reload::ENV_FLAGS),
        ("annotations", crate::reload::ANNOTATIONS_FLAGS),
    ] {
        let inst = env.kreload(profile, flags).await?;
        let client = env.client.clone();
        let ns = namespace(&client, &format!("replace-{profile}"), &inst.labels()).await?;
        configmap(&client, &ns, "settings", &[("k", "1")]).await?;
        let manifest = w::workload(
            D,
            "web",
            auto(),
            json!({}),
            w::pod_spec(Form::EnvFrom, SourceKind::ConfigMap, "settings"),
        );
        create(&client, &ns, &manifest).await?;
        wait_indexed(&inst, 1).await?;
        update_configmap(&client, &ns, "settings", &[("k", "2")]).await?;
        eventually("the reload", Duration::from_secs(60), || async {
            let obj = get(&client, &ns, D, "web").await?;
            let done = match profile {
                "env" => reload_env(D, &obj, &cm("settings")).is_some(),
                _ => w::last_reloaded(D, &obj, "reloader.stakater.com").is_some(),
            };
            Ok(done.then_some(()))
        })
        .await?;
        // PUT the original manifest at the current resourceVersion (the controller may
        // update the status in between: read again and retry on a conflict).
        let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
            client.clone(),
            &ns,
            &kreload::kube::workloads::api_resource(D),
        );
        let (reloaded, after) = eventually(
            "a replace without conflict",
            Duration::from_secs(30),
            || async {
                let current = get(&client, &ns, D, "web").await?;
                let mut replacement = manifest.clone();
                replacement["metadata"]["resourceVersion"] =
                    current["metadata"]["resourceVersion"].clone();
                let dynamic: kube::api::DynamicObject = serde_json::from_value(replacement)?;
                match api.replace("web", &Default::default(), &dynamic).await {
                    Ok(after) => Ok(Some((current, serde_json::to_value(after)?))),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(None),
                    Err(e) => Err(e.into()),
                }
            },
        )
        .await?;
        ensure!(
            w::template(D, &after) == w::template(D, &reloaded),
            "{profile}: the replace changed the pod template"
        );
        // A Deployment rolls only when its pod template changes (the generation also moves
        // when annotations change, so it is no rollout indicator here).
        ensure!(
            after["metadata"]["annotations"]["kreload.dev/observed"]
                == reloaded["metadata"]["annotations"]["kreload.dev/observed"],
            "{profile}: the replace lost kreload.dev/observed"
        );
    }
    Ok(())
}

/// A sync changes the ConfigMap and, at the same time, the image: the new pods start with
/// the new content, and kreload's variable is brought in line in that same template change.
/// A later revert of the ConfigMap alone must then roll the workload again.
async fn revert_after_template_change(env: Arc<Env>) -> Result<()> {
    let inst = env_instance(&env).await?;
    let client = env.client.clone();
    let ns = namespace(&client, "revert", &inst.labels()).await?;
    let v = |k: &str| data(&[("k", k)]);
    create_source(
        &client,
        &ns,
        SourceKind::ConfigMap,
        "settings",
        &v("1"),
        &[],
    )
    .await?;
    deployment(&client, &ns, "web", auto(), "settings").await?;
    wait_indexed(&inst, 1).await?;
    let var = |obj: &serde_json::Value| reload_env(D, obj, &cm("settings"));
    update_source(&client, &ns, SourceKind::ConfigMap, "settings", &v("2")).await?;
    let h2 = expected_hash(SourceKind::ConfigMap, &v("2"));
    eventually("the reload to 2", Duration::from_secs(60), || async {
        Ok((var(&get(&client, &ns, D, "web").await?) == Some(h2.clone())).then_some(()))
    })
    .await?;
    eventually("two ReplicaSets", Duration::from_secs(60), || async {
        Ok((replica_sets(&client, &ns, "web").await? == 2).then_some(()))
    })
    .await?;
    // The sync: content 3 and a new image.
    update_source(&client, &ns, SourceKind::ConfigMap, "settings", &v("3")).await?;
    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.9"}]}}}});
    Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), &ns)
        .patch(
            "web",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Strategic(image),
        )
        .await?;
    let h3 = expected_hash(SourceKind::ConfigMap, &v("3"));
    let obj = get(&client, &ns, D, "web").await?;
    ensure!(
        var(&obj) == Some(h3.clone()),
        "the template change left a stale variable: {:?}",
        var(&obj)
    );
    eventually("three ReplicaSets", Duration::from_secs(60), || async {
        Ok((replica_sets(&client, &ns, "web").await? == 3).then_some(()))
    })
    .await?;
    // The revert: back to 2, which the variable carried before the sync.
    update_source(&client, &ns, SourceKind::ConfigMap, "settings", &v("2")).await?;
    eventually(
        "a rollout for the revert",
        Duration::from_secs(60),
        || async { Ok((replica_sets(&client, &ns, "web").await? == 4).then_some(())) },
    )
    .await
    .with_context(|| inst.log_tail())?;
    ensure!(var(&get(&client, &ns, D, "web").await?) == Some(h2));
    Ok(())
}
