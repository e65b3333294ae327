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
