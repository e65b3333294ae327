//! Reloader's alerts (`ALERT_*`) and `--webhook-url`, posted to a local receiver.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use kreload::reload::model::{SourceKind, SourceRef, WorkloadKind};
use serde_json::json;

use super::receiver::{Proxy, Received, Receiver};
use crate::reload::wait_indexed;
use crate::support::instance::{Extra, Instance};
use crate::support::workloads::update_configmap;
use crate::support::workloads::{
    self as w, Form, configmap, create, data, expected_hash, get, reload_env, update_source,
};
use crate::support::{Env, eventually, namespace};

const D: WorkloadKind = WorkloadKind::Deployment;

/// An instance with `envs` and `flags`, a namespace it serves, and Deployment `web`
/// (Reloader-annotated) reading ConfigMap `cfg`.
async fn setup(
    env: &Env,
    name: &str,
    flags: &[&str],
    envs: &[(&str, &str)],
) -> Result<(Instance, String)> {
    let client = env.client.clone();
    let mut all = vec!["--coalesce-window=1s"];
    all.extend_from_slice(flags);
    let extra = Extra {
        envs,
        ..Extra::default()
    };
    let inst =
        Instance::start_extra(&client, env.cp.kubeconfig(), name, name, &all, &extra).await?;
    let ns = namespace(&client, name, &inst.labels()).await?;
    configmap(&client, &ns, "cfg", &[("k", "0")]).await?;
    let spec = w::pod_spec(Form::EnvFrom, SourceKind::ConfigMap, "cfg");
    let web = w::workload(
        D,
        "web",
        json!({"reloader.stakater.com/auto": "true"}),
        json!({}),
        spec,
    );
    create(&client, &ns, &web).await?;
    wait_indexed(&inst, 1).await?;
    Ok((inst, ns))
}

/// Changes `cfg` to `value` and waits for `web` to carry it.
async fn change_and_reload(env: &Env, ns: &str, value: &str) -> Result<()> {
    let v = data(&[("k", value)]);
    update_source(&env.client, ns, SourceKind::ConfigMap, "cfg", &v).await?;
    let want = expected_hash(SourceKind::ConfigMap, &v);
    eventually("the reload", Duration::from_secs(60), || async {
        let obj = get(&env.client, ns, D, "web").await?;
        Ok((reload_env(D, &obj, &SourceRef::configmap("cfg")) == Some(want.clone())).then_some(()))
    })
    .await
}

async fn received(receiver: &Receiver, count: usize) -> Result<Vec<Received>> {
    eventually(
        "the receiver to get the post",
        Duration::from_secs(60),
        || async {
            let all = receiver.log.all();
            Ok((all.len() >= count).then_some(all))
        },
    )
    .await
}

/// Every sink gets Reloader's payload for a reload, the Slack one through the proxy.
pub async fn alerts_reach_each_sink(env: Arc<Env>) -> Result<()> {
    let proxy = Proxy::start().await?;
    let proxy_url = format!("http://{}", proxy.addr);
    for sink in ["slack", "teams", "gchat", "webhook"] {
        let receiver = Receiver::start(false).await?;
        let url = receiver.url(&format!("/{sink}"));
        let mut envs = vec![
            ("ALERT_ON_RELOAD", "true"),
            ("ALERT_SINK", sink),
            ("ALERT_WEBHOOK_URL", url.as_str()),
            ("ALERT_ADDITIONAL_INFO", "cluster-e2e"),
        ];
        if sink == "slack" {
            envs.push(("ALERT_WEBHOOK_PROXY", proxy_url.as_str()));
        }
        let (inst, ns) = setup(&env, &format!("alert-{sink}"), &[], &envs).await?;
        change_and_reload(&env, &ns, "1")
            .await
            .with_context(|| inst.log_tail())?;
        let got = received(&receiver, 1)
            .await
            .with_context(|| inst.log_tail())?;
        let text = format!(
            "cluster-e2e : kreload detected changes in *cfg* of type *CONFIGMAP* in namespace *{ns}*. Hence reloaded *web* of type *Deployment* in namespace *{ns}*"
        );
        let (content_type, body) = match sink {
            // Reloader's field order (Go's struct order), not sorted.
            "slack" => (
                "application/json",
                format!(
                    r#"{{"attachments":[{{"color":"good","author_name":"Reloader","text":{}}}]}}"#,
                    json!(text)
                ),
            ),
            "teams" | "gchat" => ("application/json", json!({ "text": text }).to_string()),
            _ => ("text/plain", text.replace('*', "")),
        };
        let first = &got[0];
        ensure!(
            first.path == format!("/{sink}")
                && first.content_type == content_type
                && first.body == body,
            "{sink}: got {first:?}, want {content_type} {body}"
        );
    }
    let targets = proxy.targets.lock().map(|t| t.clone()).unwrap_or_default();
    ensure!(targets.len() == 1, "the proxy tunnelled {targets:?}");
    Ok(())
}

/// A sink that never answers holds up no reload: two reloads in a row go through while
/// the first alert is still unanswered.
pub async fn a_stuck_sink_never_delays_a_reload(env: Arc<Env>) -> Result<()> {
    let receiver = Receiver::start(true).await?;
    let url = receiver.url("/stuck");
    let envs = [
        ("ALERT_ON_RELOAD", "true"),
        ("ALERT_WEBHOOK_URL", url.as_str()),
    ];
    let (inst, ns) = setup(&env, "alert-stuck", &[], &envs).await?;
    change_and_reload(&env, &ns, "1").await?;
    received(&receiver, 1).await?;
    change_and_reload(&env, &ns, "2").await?;
    // The first post has not even given up yet (it would log this after its timeout): the
    // second reload did not wait for it.
    ensure!(
        !inst.log_text().contains("cannot post the report"),
        "the stuck post ended before the second reload:\n{}",
        inst.log_tail()
    );
    Ok(())
}

/// `--webhook-url`: Reloader's post for the change, and no reload.
pub async fn webhook_url_posts_instead_of_reloading(env: Arc<Env>) -> Result<()> {
    let receiver = Receiver::start(false).await?;
    let url = receiver.url("/hook");
    let (inst, ns) = setup(&env, "webhook-url", &["--webhook-url", url.as_str()], &[]).await?;
    update_configmap(&env.client, &ns, "cfg", &[("k", "1")]).await?;
    // The kreload log says where a lost post went (never confirmed, dropped, refused).
    let got = received(&receiver, 1)
        .await
        .with_context(|| inst.log_tail())?;
    ensure!(
        got[0].body == r#"{"webhook":"update successful"}"#
            && got[0].content_type == "application/json",
        "got {:?}",
        got[0]
    );
    let obj = get(&env.client, &ns, D, "web").await?;
    ensure!(
        reload_env(D, &obj, &SourceRef::configmap("cfg")).is_none(),
        "--webhook-url must not reload"
    );
    Ok(())
}
