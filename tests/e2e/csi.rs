//! CSI Secrets Store (`--enable-csi-integration`), against the Secrets Store CSI Driver's
//! real CRDs (v1.5.3, from its Go module by hack/csi.sh). No driver runs here (there is no
//! kubelet): the tests write the SecretProviderClassPodStatus objects the way the driver
//! does (pkg/secrets-store/utils.go: name `<pod>-<namespace>-<class>`, the node label, an
//! owner reference to the pod, status with podName, secretProviderClassName, mounted,
//! targetPath, objects) and rotate them the way its rotation reconciler does (an update of
//! the whole object with new versions in status.objects).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::core::v1::Pod;
use kreload::reload::csi::{GROUP, NODE_LABEL, SPCPS_KIND, SPCPS_PLURAL, VERSION};
use kreload::reload::hash::secret_provider_class_hash;
use kreload::reload::model::{SourceKind, SourceRef, WorkloadKind};
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::core::ObjectMeta;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::reload::wait_indexed;
use crate::support::instance::{Extra, Instance};
use crate::support::rbac::path_str;
use crate::support::workloads::{self as w, Form, create, generation, get, last_reloaded};
use crate::support::{Env, eventually, namespace, trial};
use kreload_testenv::tools;

pub fn tests() -> Vec<libtest_mimic::Trial> {
    vec![
        trial("csi::rotation_reloads_what_opted_in", rotation),
        trial("csi::annotations_strategy_records_the_class", annotations),
        trial("csi::without_the_flag_nothing_reloads", flag_off),
    ]
}

const CLASS: &str = "vault-db";
/// What the workloads' env var is called (Reloader's name for class `vault-db`).
const VAR: &str = "STAKATER_VAULT_DB_SECRETPROVIDERCLASS";
/// Reloader v1.4.21's GetSHAfromSecretProviderClassPodStatus for class `vault-db` with
/// objects secret/db-password=2, secret/api-key=1, computed by its code (restated in Go).
const ROTATED: &str = "2aa210f2537c6a37a6d999f4824d6d544e0530c8";

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: GROUP.into(),
        version: VERSION.into(),
        api_version: format!("{GROUP}/{VERSION}"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn statuses(env: &Env, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(env.client.clone(), ns, &resource(SPCPS_KIND, SPCPS_PLURAL))
}

/// The driver's CRDs and the access `manifests/components/csi` grants, once per run.
async fn setup(env: &Env) -> Result<()> {
    static DONE: OnceCell<()> = OnceCell::const_new();
    DONE.get_or_try_init(|| async {
        let kubectl = env.cp.kubectl().context("kubectl")?;
        let kc = env.cp.kubeconfig();
        let crds = tools::csi_crds()?;
        let dir = path_str(&crds)?;
        tools::kubectl(kubectl, kc, &["apply", "--server-side", "-f", dir], None)?;
        let wait = [
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "-f",
            dir,
        ];
        tools::kubectl(kubectl, kc, &wait, None)?;
        let rbac = tools::repo_root().join("manifests/components/csi/rbac.yaml");
        let apply = ["apply", "--server-side", "-f", path_str(&rbac)?];
        tools::kubectl(kubectl, kc, &apply, None)?;
        Ok::<(), anyhow::Error>(())
    })
    .await?;
    Ok(())
}

/// A SecretProviderClass as a user writes one (the Vault provider's shape).
async fn class(env: &Env, ns: &str, annotations: Value) -> Result<()> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        ns,
        &resource("SecretProviderClass", "secretproviderclasses"),
    );
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "SecretProviderClass",
        "metadata": {"name": CLASS, "annotations": annotations},
        "spec": {"provider": "vault", "parameters": {
            "roleName": "app", "vaultAddress": "https://vault:8200",
            "objects": "- objectName: db-password\n  secretPath: secret/data/db\n  secretKey: password\n"
        }}
    }))?;
    api.create(&PostParams::default(), &obj).await?;
    Ok(())
}

/// A pod mounting the class (it never runs: no kubelet), and the status the driver writes
/// for it on mount; returns the status's name.
async fn mounted(env: &Env, ns: &str, pod: &str, objects: &[(&str, &str)]) -> Result<String> {
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), ns);
    let mut spec = w::pod_spec(Form::Volume, SourceKind::SecretProviderClass, CLASS);
    spec["automountServiceAccountToken"] = json!(false);
    let body: Pod = serde_json::from_value(json!({"metadata": {"name": pod}, "spec": spec}))?;
    // The namespace's default ServiceAccount appears a moment after the namespace.
    let created = eventually("the pod to be created", Duration::from_secs(30), || async {
        Ok(pods.create(&PostParams::default(), &body).await.ok())
    })
    .await?;
    let name = format!("{pod}-{ns}-{CLASS}");
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": SPCPS_KIND,
        "metadata": {
            "name": name,
            "labels": {NODE_LABEL: "node-1"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": pod,
                "uid": created.metadata.uid.clone().unwrap_or_default()}],
        },
        "status": status(pod, ns, objects),
    }))?;
    statuses(env, ns)
        .create(&PostParams::default(), &obj)
        .await?;
    Ok(name)
}

fn status(pod: &str, ns: &str, objects: &[(&str, &str)]) -> Value {
    let objects: Vec<Value> = objects
        .iter()
        .map(|(id, version)| json!({"id": id, "version": version}))
        .collect();
    json!({
        "podName": pod,
        "secretProviderClassName": CLASS,
        "mounted": true,
        "targetPath": format!("/var/lib/kubelet/pods/{ns}-{pod}/volumes/kubernetes.io~csi/secrets/mount"),
        "objects": objects,
    })
}

/// What the rotation reconciler does: read the status, set new versions, update it whole.
async fn rotate(env: &Env, ns: &str, name: &str, objects: &[(&str, &str)]) -> Result<()> {
    let api = statuses(env, ns);
    let mut obj = api.get(name).await?;
    let pod = obj.data["status"]["podName"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    obj.data["status"] = status(&pod, ns, objects);
    api.replace(name, &PostParams::default(), &obj).await?;
    Ok(())
}

fn annotated(annotations: Value) -> Value {
    let spec = w::pod_spec(Form::Volume, SourceKind::SecretProviderClass, CLASS);
    json!({"annotations": annotations, "spec": spec})
}

/// The fixture: one workload per way to opt in, one excluded and one not opted in.
fn fixture() -> Vec<(&'static str, Value)> {
    vec![
        (
            "typed",
            annotated(json!({"secretproviderclass.reloader.stakater.com/auto": "true"})),
        ),
        (
            "auto",
            annotated(json!({"reloader.stakater.com/auto": "true"})),
        ),
        (
            "named",
            annotated(json!({"secretproviderclass.reloader.stakater.com/reload": CLASS})),
        ),
        (
            "ours",
            annotated(json!({"secretproviderclass.kreload.dev/auto": "true"})),
        ),
        (
            "excluded",
            annotated(json!({
                "reloader.stakater.com/auto": "true",
                "secretproviderclasses.exclude.reloader.stakater.com/reload": CLASS,
            })),
        ),
        ("plain", annotated(json!({}))),
    ]
}

async fn deploy(env: &Env, ns: &str, name: &str, f: &Value) -> Result<()> {
    let d = w::workload(
        WorkloadKind::Deployment,
        name,
        f["annotations"].clone(),
        json!({}),
        f["spec"].clone(),
    );
    create(&env.client, ns, &d).await
}

fn var(obj: &Value) -> Option<String> {
    w::env_value(WorkloadKind::Deployment, obj, VAR)
}

/// Runs `kreload explain TARGET -n NS -o json`.
fn explain(env: &Env, ns: &str, target: &str) -> Result<Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kreload"))
        .args(["explain", target, "-n", ns, "-o", "json"])
        .arg(format!("--kubeconfig={}", env.cp.kubeconfig().display()))
        .output()?;
    ensure!(
        out.status.success(),
        "explain: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn verdicts(report: &Value, list: &str) -> Vec<(String, String)> {
    let rows = report[list].as_array().cloned().unwrap_or_default();
    rows.iter()
        .map(|v| {
            (
                v["workload"].as_str().unwrap_or("").to_owned(),
                v["rule"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

async fn rotation(env: Arc<Env>) -> Result<()> {
    setup(&env).await?;
    let flags = ["--coalesce-window=1s", "--enable-csi-integration"];
    let inst = Instance::start(&env.client, &env.kreload_kubeconfig, "csi", "csi", &flags).await?;
    let ns = namespace(&env.client, "csi", &inst.labels()).await?;
    class(&env, &ns, json!({})).await?;
    for (name, f) in fixture() {
        deploy(&env, &ns, name, &f).await?;
    }
    wait_indexed(&inst, 5).await?;
    let report = explain(&env, &ns, &format!("secretproviderclass/{CLASS}"))?;
    let d = |n: &str, rule: &str| (format!("Deployment/{n}"), rule.to_owned());
    ensure!(
        verdicts(&report, "reloads")
            == [
                d("auto", "auto"),
                d("named", "named"),
                d("ours", "auto"),
                d("typed", "auto")
            ],
        "explain reloads: {report:#}"
    );
    let skips = verdicts(&report, "skips");
    ensure!(
        skips.contains(&d("excluded", "excluded")) && skips.contains(&d("plain", "not-opted-in")),
        "explain skips: {report:#}"
    );
    let v1 = [("secret/db-password", "1"), ("secret/api-key", "1")];
    let status = mounted(&env, &ns, "web-0", &v1).await?;
    let before = generations(&env, &ns).await?;
    // The rotation: db-password's version moves on.
    let v2 = [("secret/db-password", "2"), ("secret/api-key", "1")];
    ensure!(
        secret_provider_class_hash(CLASS, v2) == ROTATED,
        "kreload's hash is not Reloader's"
    );
    rotate(&env, &ns, &status, &v2).await?;
    for name in ["typed", "auto", "named", "ours"] {
        let obj = eventually(
            &format!("{name} to reload"),
            Duration::from_secs(60),
            || async {
                let obj = get(&env.client, &ns, WorkloadKind::Deployment, name).await?;
                Ok((var(&obj).as_deref() == Some(ROTATED)).then_some(obj))
            },
        )
        .await
        .with_context(|| inst.log_tail())?;
        let c = &obj["spec"]["template"]["spec"]["containers"][0];
        ensure!(
            c["name"] == "app",
            "{name}: the variable is not on the mounting container"
        );
    }
    let reloaded = generations(&env, &ns).await?;
    // The same versions again (the reconciler writes the objects in another order): the
    // write reaches kreload, whose hash is unchanged, and nothing rolls.
    let unchanged = r#"reloader_skipped_total{reason="no_data_change"}"#;
    let skipped = inst.metric(unchanged, &[]).await?;
    rotate(
        &env,
        &ns,
        &status,
        &[("secret/api-key", "1"), ("secret/db-password", "2")],
    )
    .await?;
    eventually(
        "kreload to see the rewrite",
        Duration::from_secs(30),
        || async { Ok((inst.metric(unchanged, &[]).await? > skipped).then_some(())) },
    )
    .await
    .with_context(|| inst.log_tail())?;
    // A second pod mounting the class: a status create, which reloads nothing either.
    mounted(&env, &ns, "web-1", &v2).await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = generations(&env, &ns).await?;
    ensure!(
        after == reloaded,
        "a rewrite of the same versions rolled: {reloaded:?} -> {after:?}"
    );
    for name in ["excluded", "plain"] {
        let obj = get(&env.client, &ns, WorkloadKind::Deployment, name).await?;
        ensure!(var(&obj).is_none(), "{name} was reloaded");
        let (b, a) = (
            before.iter().find(|g| g.0 == name),
            after.iter().find(|g| g.0 == name),
        );
        ensure!(b == a, "{name}: generation {b:?} -> {a:?}");
    }
    Ok(())
}

async fn generations(env: &Env, ns: &str) -> Result<Vec<(&'static str, i64)>> {
    let mut out = Vec::new();
    for (name, _) in fixture() {
        out.push((
            name,
            generation(&get(&env.client, ns, WorkloadKind::Deployment, name).await?),
        ));
    }
    Ok(out)
}

async fn annotations(env: Arc<Env>) -> Result<()> {
    setup(&env).await?;
    let flags = [
        "--coalesce-window=1s",
        "--enable-csi-integration",
        "--reload-strategy=annotations",
    ];
    let inst = Instance::start(
        &env.client,
        &env.kreload_kubeconfig,
        "csi-ann",
        "csi-ann",
        &flags,
    )
    .await?;
    let ns = namespace(&env.client, "csi-ann", &inst.labels()).await?;
    class(&env, &ns, json!({})).await?;
    let f = annotated(json!({"secretproviderclass.reloader.stakater.com/auto": "true"}));
    deploy(&env, &ns, "web", &f).await?;
    wait_indexed(&inst, 1).await?;
    let status = mounted(
        &env,
        &ns,
        "web-0",
        &[("secret/db-password", "1"), ("secret/api-key", "1")],
    )
    .await?;
    rotate(
        &env,
        &ns,
        &status,
        &[("secret/db-password", "2"), ("secret/api-key", "1")],
    )
    .await?;
    let record = eventually("the record", Duration::from_secs(60), || async {
        let obj = get(&env.client, &ns, WorkloadKind::Deployment, "web").await?;
        Ok(last_reloaded(
            WorkloadKind::Deployment,
            &obj,
            "reloader.stakater.com",
        ))
    })
    .await
    .with_context(|| inst.log_tail())?;
    ensure!(
        record.kind == "SECRETPROVIDERCLASS"
            && record.name == CLASS
            && record.hash == ROTATED
            && record.container_refs == ["app"],
        "Reloader's record: {record:?}"
    );
    let source = SourceRef::secret_provider_class(CLASS);
    ensure!(
        record.records(&source, ROTATED),
        "{record:?} does not record {source}"
    );
    Ok(())
}

async fn flag_off(env: Arc<Env>) -> Result<()> {
    setup(&env).await?;
    // The trigger is registered, so the API server calls kreload; without the flag it
    // ignores the kind.
    let extra = Extra {
        csi_webhook: true,
        ..Extra::default()
    };
    let flags = ["--coalesce-window=1s"];
    let inst = Instance::start_extra(
        &env.client,
        &env.kreload_kubeconfig,
        "csi-off",
        "csi-off",
        &flags,
        &extra,
    )
    .await?;
    let ns = namespace(&env.client, "csi-off", &inst.labels()).await?;
    class(&env, &ns, json!({})).await?;
    let f = annotated(json!({"secretproviderclass.reloader.stakater.com/auto": "true"}));
    deploy(&env, &ns, "web", &f).await?;
    wait_indexed(&inst, 1).await?;
    let status = mounted(&env, &ns, "web-0", &[("secret/db-password", "1")]).await?;
    let before = generation(&get(&env.client, &ns, WorkloadKind::Deployment, "web").await?);
    let ignored = r#"reloader_skipped_total{reason="ignored_or_not_selected"}"#;
    let skipped = inst.metric(ignored, &[]).await?;
    rotate(&env, &ns, &status, &[("secret/db-password", "2")]).await?;
    eventually(
        "kreload to ignore the rotation",
        Duration::from_secs(30),
        || async { Ok((inst.metric(ignored, &[]).await? > skipped).then_some(())) },
    )
    .await
    .with_context(|| inst.log_tail())?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let obj = get(&env.client, &ns, WorkloadKind::Deployment, "web").await?;
    ensure!(
        var(&obj).is_none() && generation(&obj) == before,
        "reloaded without the flag: {obj:#}"
    );
    let meta: &ObjectMeta = &serde_json::from_value(obj["metadata"].clone())?;
    let observed = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(kreload::reload::keys::OBSERVED));
    ensure!(
        observed.is_none_or(|o| !o.contains("secretproviderclass")),
        "a baseline for the class without the flag: {observed:?}"
    );
    Ok(())
}
