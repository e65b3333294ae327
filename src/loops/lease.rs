//! Leader election on a `coordination.k8s.io` Lease, through `kube-lease-manager`. Every
//! replica serves admissions and applies patches (they are idempotent); only the leader
//! runs the resync and the pause resumer's scan. Without `--enable-ha` there is no Lease
//! and this replica is always the leader.

use std::future::Future;
use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "--lease-duration ({duration:?}) must be longer than --lease-grace ({grace:?}), both at least 1s"
    )]
    Durations { duration: Duration, grace: Duration },
    #[error("setting up the lease {namespace}/{name}")]
    Setup {
        namespace: String,
        name: String,
        #[source]
        source: LeaseManagerError,
    },
}

/// The lease settings (`--lease-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// How long a lease is held without renewal.
    pub duration: Duration,
    /// How long before expiry the holder renews it.
    pub grace: Duration,
    /// This replica's identity in the lease (the pod name).
    pub identity: String,
}

/// Whether this replica leads, now and as it changes.
#[derive(Debug, Clone)]
pub struct Leadership {
    rx: watch::Receiver<bool>,
    /// Keeps the channel of a single replica open (its value never changes).
    _fixed: Option<std::sync::Arc<watch::Sender<bool>>>,
}

impl Leadership {
    /// A single replica: always the leader.
    pub fn always() -> Self {
        let (tx, rx) = watch::channel(true);
        Leadership {
            rx,
            _fixed: Some(std::sync::Arc::new(tx)),
        }
    }

    pub fn is_leader(&self) -> bool {
        *self.rx.borrow()
    }

    /// Waits until this replica's leadership is `leading` (at once if it already is).
    /// Never returns when the election has stopped in the other state.
    pub async fn until(&mut self, leading: bool) {
        if self.rx.wait_for(|l| *l == leading).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Runs the future `make` returns while this replica leads: it is dropped when the
    /// lease is lost and made anew when it is won again. Runs until dropped.
    pub async fn while_leading<F, Fut>(mut self, mut make: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        loop {
            self.until(true).await;
            tracing::info!("leading; starting the leader's loops");
            let mut lost = self.clone();
            tokio::select! {
                () = make() => return,
                () = lost.until(false) => tracing::warn!("lease lost; leader's loops stopped"),
            }
        }
    }
}

/// Joins the election; the task keeps the lease renewed while the returned [`Leadership`]
/// is alive, and releases it when it is dropped.
pub async fn elect(client: Client, config: &LeaseConfig) -> Result<Leadership, Error> {
    let secs = |d: Duration| d.as_secs();
    if secs(config.grace) == 0 || secs(config.duration) <= secs(config.grace) {
        return Err(Error::Durations {
            duration: config.duration,
            grace: config.grace,
        });
    }
    let manager = LeaseManagerBuilder::new(client, &config.name)
        .with_namespace(&config.namespace)
        .with_identity(&config.identity)
        .with_duration(secs(config.duration))
        .with_grace(secs(config.grace))
        .build()
        .await
        .map_err(|source| Error::Setup {
            namespace: config.namespace.clone(),
            name: config.name.clone(),
            source,
        })?;
    let (rx, task) = manager.watch().await;
    let identity = config.identity.clone();
    tokio::spawn(async move {
        match task.await {
            Ok(Ok(_)) => tracing::info!(identity, "lease released"),
            Ok(Err(error)) => tracing::warn!(%error, identity, "lease election ended"),
            Err(error) => tracing::warn!(%error, identity, "lease task failed"),
        }
    });
    Ok(Leadership { rx, _fixed: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_leaders_loop_stops_on_loss_and_starts_again_on_a_new_win() {
        let (tx, rx) = watch::channel(false);
        let starts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = starts.clone();
        let task = tokio::spawn(Leadership { rx, _fixed: None }.while_leading(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::future::pending::<()>()
        }));
        tokio::task::yield_now().await;
        assert_eq!(starts.load(std::sync::atomic::Ordering::SeqCst), 0);
        for expected in 1..=2 {
            tx.send(true).expect("send");
            tokio::time::sleep(Duration::from_millis(1)).await;
            assert_eq!(starts.load(std::sync::atomic::Ordering::SeqCst), expected);
            tx.send(false).expect("send");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        task.abort();
    }

    #[test]
    fn a_single_replica_always_leads() {
        assert!(Leadership::always().is_leader());
    }
}
