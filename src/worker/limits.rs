//! The shell around [`crate::reload::storm`]: the per-workload rollout limit and the global
//! patch rate, shared by the worker, the held-change releaser and the resync.

use std::sync::Mutex;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::reload::plan::{Reload, WorkloadKey};
use crate::reload::storm::{Admit, Bucket, Limits, Storm};

/// The storm settings (`--storm-*`, `--max-patches-per-second`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StormConfig {
    pub limits: Limits,
    /// Patches a second over all workloads; 0: no limit.
    pub patches_per_second: u32,
}

pub struct Limiter {
    limits: Limits,
    storm: Mutex<Storm<WorkloadKey>>,
    bucket: Mutex<Bucket>,
    /// Woken when something is held, so the releaser recomputes its deadline.
    held: Notify,
}

impl Limiter {
    pub fn new(config: StormConfig) -> Self {
        let rate = config.patches_per_second;
        Limiter {
            limits: config.limits,
            storm: Mutex::new(Storm::new(config.limits)),
            bucket: Mutex::new(Bucket::new(rate, rate, Instant::now())),
            held: Notify::new(),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn storm(&self) -> std::sync::MutexGuard<'_, Storm<WorkloadKey>> {
        self.storm.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `changes` may reload `key` now (else they are held).
    pub fn admit(&self, key: &WorkloadKey, changes: &[Reload]) -> Admit {
        let admit = self.storm().admit(key, changes, Instant::now());
        if matches!(admit, Admit::Held { .. }) {
            self.held.notify_one();
        }
        admit
    }

    /// `key` rolled now.
    pub fn record(&self, key: &WorkloadKey) {
        self.storm().record(key, Instant::now());
    }

    /// Workloads with held changes.
    pub fn held(&self) -> usize {
        self.storm().held()
    }

    /// Waits for a patch slot under the global rate.
    pub async fn throttle(&self) {
        loop {
            let wait = {
                let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
                match bucket.take(Instant::now()) {
                    Ok(()) => return,
                    Err(wait) => wait,
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Waits until some held changes may go, and takes them.
    pub async fn released(&self) -> Vec<(WorkloadKey, Vec<Reload>)> {
        loop {
            let notified = self.held.notified();
            let next = {
                let mut storm = self.storm();
                let due = storm.due(Instant::now());
                if !due.is_empty() {
                    return due;
                }
                storm.next_due()
            };
            match next {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::reload::model::{SourceRef, WorkloadKind};
    use crate::reload::workload::WorkloadId;

    fn key() -> WorkloadKey {
        let id = WorkloadId {
            kind: WorkloadKind::Deployment,
            name: "web".into(),
        };
        ("ns".into(), id)
    }

    fn change(hash: &str) -> Reload {
        Reload {
            source: SourceRef::secret("tls"),
            hash: hash.into(),
            auto: true,
            deleted: false,
        }
    }

    fn config(max: usize, rate: u32) -> StormConfig {
        StormConfig {
            limits: Limits {
                max,
                period: Duration::from_secs(600),
                quiet: Duration::from_secs(30),
            },
            patches_per_second: rate,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn held_changes_come_back_with_the_newest_hash_once_quiet() {
        let limiter = std::sync::Arc::new(Limiter::new(config(1, 0)));
        assert_eq!(limiter.admit(&key(), &[change("1")]), Admit::Go);
        limiter.record(&key());
        let waiter = tokio::spawn({
            let limiter = limiter.clone();
            async move { limiter.released().await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            limiter.admit(&key(), &[change("2")]),
            Admit::Held { tripped: true }
        );
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(
            limiter.admit(&key(), &[change("3")]),
            Admit::Held { tripped: false }
        );
        let started = Instant::now();
        let released = waiter.await.expect("join");
        assert_eq!(released, vec![(key(), vec![change("3")])]);
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        assert_eq!(limiter.held(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_patch_rate_makes_patches_wait_and_drops_none() {
        let limiter = Limiter::new(config(0, 10));
        let started = Instant::now();
        for _ in 0..30 {
            limiter.throttle().await;
        }
        // A burst of 10, then 10 a second.
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }
}
