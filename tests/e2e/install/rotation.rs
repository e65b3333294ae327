//! The serving certificate rotates under load: while the API server keeps calling the
//! webhook for a stream of ConfigMap writes, cert-manager reissues the certificate (new
//! key, same CA) and the new Secret reaches kreload the way the kubelet delivers it (a new
//! timestamped directory, `..data` swapped). Every write's admission call is answered by
//! kreload (its count equals the writes made), and the new certificate is served soon after.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};

use super::certmanager::install;
use super::served::{der, secret_files, served_cert};
use crate::support::{Env, eventually, trial};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    vec![trial("install::certificate_rotation_under_load", rotation)]
}

/// Creates ConfigMaps one after another until `stop` (or 3000 of them); returns how many
/// succeeded and how many failed. Creates, not updates: the API server retries an update
/// whose cached object was stale, calling the webhook again, so only creates give exactly
/// one admission call per write.
async fn load(api: Api<ConfigMap>, stop: Arc<AtomicBool>) -> (u64, u64) {
    let (mut ok, mut failed) = (0, 0);
    for i in 0..3000u64 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(format!("load-{i}")),
                ..Default::default()
            },
            data: Some([("n".to_owned(), i.to_string())].into()),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &cm).await {
            Ok(_) => ok += 1,
            Err(_) => failed += 1,
        }
    }
    (ok, failed)
}

async fn rotation(env: Arc<Env>) -> Result<()> {
    // With reloadOnCreate, creates are sent to the webhook too.
    let inst = install(
        &env,
        "kreload-rot",
        "rot-apps",
        &["reloader.reloadOnCreate=true"],
    )
    .await?;
    let (ns, secret) = (inst.name.clone(), inst.tls_secret());
    let before = secret_files(&env, &ns, &secret).await?;
    let ca = before.get("ca.crt").cloned().context("no ca.crt")?;
    let old_pem = before.get("tls.crt").cloned().context("no tls.crt")?;
    let served = served_cert(inst.served.webhook, &inst.server_name(), &ca).await?;
    ensure!(
        served == der(&old_pem)?,
        "kreload does not serve the issued certificate"
    );

    let answered = || {
        inst.served.metric(
            "kreload_admission_requests_total",
            &["endpoint=\"sources\"", "operation=\"CREATE\""],
        )
    };
    let answered_before = answered().await?;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(load(
        Api::namespaced(env.client.clone(), &inst.apps),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;

    // cert-manager reissues when the Secret goes (rotationPolicy: Always: a new key).
    Api::<Secret>::namespaced(env.client.clone(), &ns)
        .delete(&secret, &DeleteParams::default())
        .await?;
    let after = eventually("the reissued Secret", Duration::from_secs(60), || async {
        let files = secret_files(&env, &ns, &secret).await.ok();
        Ok(files.filter(|f| {
            f.get("tls.crt").is_some_and(|c| *c != old_pem) && f.contains_key("tls.key")
        }))
    })
    .await
    .with_context(|| inst.cert_manager.log_tail())?;
    ensure!(
        after.get("ca.crt") == Some(&ca),
        "the CA changed; the caBundle would not trust it"
    );
    let new_der = der(after.get("tls.crt").context("no tls.crt")?)?;
    let swapped = Instant::now();
    inst.served.certs.write(&after)?;
    eventually(
        "kreload to serve the new certificate",
        Duration::from_secs(10),
        || async {
            let now = served_cert(inst.served.webhook, &inst.server_name(), &ca).await?;
            Ok((now == new_der).then_some(()))
        },
    )
    .await
    .with_context(|| inst.served.log_tail())?;
    let took = swapped.elapsed();
    // Keep the load going on the new certificate for a while.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = writer.await?;
    ensure!(failed == 0, "{failed} of {} writes failed", ok + failed);
    let calls = answered().await? - answered_before;
    eprintln!(
        "install::certificate_rotation_under_load: {ok} writes, {calls} answered by kreload, \
         new certificate served {:.2}s after the swap, kreload (debug build) peak RSS {} KiB",
        took.as_secs_f64(),
        inst.served.peak_rss_kib().unwrap_or_default()
    );
    ensure!(ok >= 50, "only {ok} writes: no load to speak of");
    ensure!(
        calls == ok as f64,
        "{ok} writes but kreload answered {calls} admission calls: some calls failed (and were ignored)\n{}",
        inst.served.log_tail()
    );
    Ok(())
}
