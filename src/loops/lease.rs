//! Leader election on a `coordination.k8s.io` Lease, through `kube-lease-manager`. Every
//! replica serves admissions and applies patches (they are idempotent); only the leader
//! runs the resync and the pause resumer's scan. Without `--enable-ha` there is no Lease
//! and this replica is always the leader. At shutdown the holder releases the Lease, so a
//! standby takes over at once rather than after `--lease-duration`.

use std::future::Future;
use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
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

/// A replica's part in the election: the task that keeps the Lease renewed, and the
/// manager, to release the Lease at shutdown so a standby takes over at once.
pub struct Election {
    leadership: Leadership,
    manager: std::sync::Arc<LeaseManager>,
    task: tokio::task::JoinHandle<()>,
}

impl Election {
    pub fn leadership(&self) -> Leadership {
        self.leadership.clone()
    }

    /// Stops renewing and releases the Lease if this replica holds it.
    pub async fn release(self) {
        self.task.abort();
        match self.manager.release().await {
            Ok(()) => tracing::info!("lease released"),
            Err(error) => tracing::warn!(%error, "cannot release the lease; it expires"),
        }
    }
}

/// Joins the election: a task acquires the Lease when it is free and keeps it renewed
/// while held (kube-lease-manager's `changed()` loop).
pub async fn elect(client: Client, config: &LeaseConfig) -> Result<Election, Error> {
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
    let manager = std::sync::Arc::new(manager);
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn({
        let manager = manager.clone();
        let identity = config.identity.clone();
        async move {
            loop {
                match manager.changed().await {
                    Ok(leading) => {
                        tracing::info!(identity, leading, "lease state changed");
                        let _ = tx.send(leading);
                    }
                    // The state is kept as it was: a renewal that fails for longer than the
                    // lease lasts ends in a change once the API answers again.
                    Err(error) => {
                        tracing::warn!(%error, identity, "lease call failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }
    });
    let leadership = Leadership { rx, _fixed: None };
    Ok(Election {
        leadership,
        manager,
        task,
    })
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
