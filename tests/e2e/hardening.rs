//! What the admission and reload paths let out: Events that name each reload's own source,
//! and no Secret value anywhere in kreload's output or Events, even at trace level.

use std::time::Duration;

use anyhow::{Result, ensure};
use k8s_openapi::api::events::v1::Event;
use kreload::reload::model::{SourceKind, SourceRef, WorkloadKind};
use kube::api::{Api, ListParams};
use serde_json::json;

use crate::reload::{env_instance, wait_indexed};
use crate::support::workloads::{self as w, create, create_source, data, get, reload_env};
use crate::support::workloads::{configmap, secret};
use crate::support::{Env, eventually, namespace, trial};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    vec![
        trial(
            "hardening::events_name_each_reload_source",
            events_name_each_reload_source,
        ),
        trial(
            "hardening::secret_values_never_leave",
            secret_values_never_leave,
        ),
        trial(
            "hardening::client_certificates_admit_only_the_api_server",
            client_certificates_admit_only_the_api_server,
        ),
    ]
}

/// A Deployment `name` with `auto` that reads ConfigMap `cm` and Secret `secret` by envFrom.
fn app(name: &str, cm: &str, secret: &str) -> serde_json::Value {
    let spec = json!({"containers": [{
        "name": "app", "image": w::IMAGE,
        "envFrom": [{"configMapRef": {"name": cm}}, {"secretRef": {"name": secret}}],
    }]});
    w::workload(
        WorkloadKind::Deployment,
        name,
        json!({"kreload.dev/auto": "true"}),
        json!({}),
        spec,
    )
}

/// Waits until `source`'s env var on Deployment `name` is the hash of `pairs`.
async fn wait_reloaded(
    client: &kube::Client,
    ns: &str,
    name: &str,
    source: &SourceRef,
    pairs: &[(&str, &str)],
) -> Result<()> {
    let want = w::expected_hash(source.kind, &data(pairs));
    eventually("the reload", Duration::from_secs(60), || async {
        let obj = get(client, ns, WorkloadKind::Deployment, name).await?;
        Ok(
            (reload_env(WorkloadKind::Deployment, &obj, source).as_deref() == Some(&*want))
                .then_some(()),
        )
    })
    .await
}

async fn reloaded_notes(client: &kube::Client, ns: &str, name: &str) -> Result<Vec<String>> {
    let events = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?;
    Ok(events
        .items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some("Reloaded")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
        })
        .filter_map(|e| e.note)
        .collect())
}

/// Secret `a`, ConfigMap `b` and Deployment `web` using both, indexed by `inst`.
async fn web_with_a_and_b(
    client: &kube::Client,
    ns: &str,
    inst: &crate::support::instance::Instance,
) -> Result<()> {
    let one = data(&[("k", "1")]);
    create_source(client, ns, SourceKind::Secret, "a", &one, &[]).await?;
    create_source(client, ns, SourceKind::ConfigMap, "b", &one, &[]).await?;
    create(client, ns, &app("web", "b", "a")).await?;
    wait_indexed(inst, 1).await
}

async fn events_name_each_reload_source(env: std::sync::Arc<Env>) -> Result<()> {
    let inst = env_instance(&env).await?;
    let client = env.client.clone();
    let ns = namespace(&client, "event-notes", &inst.labels()).await?;
    web_with_a_and_b(&client, &ns, &inst).await?;
    let (a, b) = (
        SourceRef {
            kind: SourceKind::Secret,
            name: "a".into(),
        },
        SourceRef {
            kind: SourceKind::ConfigMap,
            name: "b".into(),
        },
    );
    w::update_source(&client, &ns, SourceKind::Secret, "a", &data(&[("k", "2")])).await?;
    wait_reloaded(&client, &ns, "web", &a, &[("k", "2")]).await?;
    w::update_configmap(&client, &ns, "b", &[("k", "2")]).await?;
    wait_reloaded(&client, &ns, "web", &b, &[("k", "2")]).await?;
    let notes = eventually("both Reloaded events", Duration::from_secs(30), || async {
        let notes = reloaded_notes(&client, &ns, "web").await?;
        let named = |what: &str| notes.iter().any(|n| n.contains(what));
        Ok((named("secret/a") && named("configmap/b")).then_some(notes))
    })
    .await?;
    ensure!(
        !notes
            .iter()
            .any(|n| n.contains("secret/a") && n.contains("configmap/b")),
        "one Event names both reloads: {notes:?}"
    );
    Ok(())
}

async fn secret_values_never_leave(env: std::sync::Arc<Env>) -> Result<()> {
    let flags = [
        "--coalesce-window=1s",
        "--log-level=trace",
        "--reload-on-create",
    ];
    let inst = env.kreload("trace", &flags).await?;
    let client = env.client.clone();
    let ns = namespace(&client, "no-leak", &inst.labels()).await?;
    let values = [
        "kreload-canary-7d1e6c0a-first",
        "kreload-canary-7d1e6c0a-second",
        "kreload-canary-7d1e6c0a-third",
    ];
    configmap(&client, &ns, "cfg", &[("k", "1")]).await?;
    // CREATE of a referenced Secret (admission with --reload-on-create), then the workload
    // (the mutation reads the Secret live), then UPDATEs (admission, confirm, patch).
    secret(&client, &ns, "creds", &[("password", values[0])]).await?;
    create(&client, &ns, &app("web", "cfg", "creds")).await?;
    wait_indexed(&inst, 1).await?;
    let creds = SourceRef {
        kind: SourceKind::Secret,
        name: "creds".into(),
    };
    for value in &values[1..] {
        let pairs = [("password", *value)];
        w::update_source(&client, &ns, SourceKind::Secret, "creds", &data(&pairs)).await?;
        wait_reloaded(&client, &ns, "web", &creds, &pairs).await?;
    }
    let log = inst.log_text();
    let text = &log;
    ensure!(
        text.contains("TRACE") || text.contains("DEBUG"),
        "kreload logged at trace"
    );
    let events = Api::<Event>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await?;
    let events = serde_json::to_string(&events.items)?;
    for value in values {
        let b64 = base64_of(value);
        for (form, needle) in [("plain", value.to_owned()), ("base64", b64)] {
            ensure!(
                !text.contains(&needle),
                "kreload's output has the {form} value"
            );
            ensure!(!events.contains(&needle), "an Event has the {form} value");
        }
    }
    ensure!(
        !log.contains('\u{1b}'),
        "colour codes in a log that is not a terminal"
    );
    Ok(())
}

fn base64_of(value: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(value)
}

/// A TLS client that trusts `ca_pem` and presents no certificate.
async fn anonymous_post(addr: std::net::SocketAddr, ca_pem: &str) -> Result<String> {
    use rustls::pki_types::pem::PemObject as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from_pem_slice(
        ca_pem.as_bytes(),
    )?)?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let mut tls = connector.connect(name, tcp).await?;
    let body = include_str!("../fixtures/configmap_update.json");
    let head = format!(
        "POST /validate/sources HTTP/1.1\r\nHost: kreload\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await?;
    tls.write_all(body.as_bytes()).await?;
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await?;
    Ok(answer)
}

async fn client_certificates_admit_only_the_api_server(env: std::sync::Arc<Env>) -> Result<()> {
    let flag = format!("--client-ca-file={}", env.cp.webhook_client_ca().display());
    let flags = ["--coalesce-window=1s", flag.as_str()];
    // Starting waits for a canary write that the API server sends through the webhook.
    let inst = env.kreload("client-ca", &flags).await?;
    let client = env.client.clone();
    let ns = namespace(&client, "client-ca", &inst.labels()).await?;
    web_with_a_and_b(&client, &ns, &inst).await?;
    let b = SourceRef {
        kind: SourceKind::ConfigMap,
        name: "b".into(),
    };
    w::update_configmap(&client, &ns, "b", &[("k", "2")]).await?;
    wait_reloaded(&client, &ns, "web", &b, &[("k", "2")]).await?;
    let answered = inst
        .metric("kreload_admission_requests_total", &["sources"])
        .await?;
    ensure!(answered >= 1.0, "no review answered");
    // Anyone else who reaches the port is refused at the handshake.
    if let Ok(answer) = anonymous_post(inst.webhook, &inst.ca_pem).await {
        ensure!(!answer.starts_with("HTTP/1.1 200"), "served: {answer}");
    }
    Ok(())
}
