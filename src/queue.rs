//! The bounded, coalescing queue between the admission handler and the worker.
//!
//! Intents are keyed by source (namespace, kind, name). The first intent for a key opens a
//! window; later intents for the same key inside it replace the pending one (the newest
//! admitted content wins) without moving its deadline, so a burst of writes to one Secret
//! becomes one reload carrying the final hash, and the delay stays bounded by the window.
//! When the queue is full a new key is dropped and counted — the admission path never
//! waits. A dropped change is counted (`kreload_intents_dropped_total{reason="queue_full"}`)
//! and logged, and the resync ([`crate::loops::resync`]) applies it on its next pass: the
//! workload's record still differs from the live content.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::reload::model::SourceRef;

/// What kind of write was admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

/// A write the worker should look at: this source now (probably) has this content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intent {
    pub namespace: String,
    pub source: SourceRef,
    /// The admitted content hash; `None` for a delete.
    pub hash: Option<String>,
    /// The content hash before the first write of the window (`None`: the object did not
    /// exist). Coalescing keeps the first one, so the worker can tell "a write in the window
    /// was stored" from "nothing changed" even when the last admitted write was rejected.
    pub base: Option<String>,
    pub operation: Operation,
    /// When the first write of the window was admitted; the queue sets it (admission's
    /// decision stays free of clocks). For the latency from admission to patch.
    pub admitted: Option<Instant>,
}

impl Intent {
    fn key(&self) -> (String, SourceRef) {
        (self.namespace.clone(), self.source.clone())
    }
}

/// The outcome of [`Queue::push`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Push {
    /// A new key, due when its window closes.
    Queued,
    /// Replaced a pending intent for the same source.
    Coalesced,
    /// The queue is at capacity; the intent was dropped.
    Full,
    /// The queue is shutting down.
    Closed,
}

struct Pending {
    intent: Intent,
}

#[derive(Default)]
struct State {
    pending: HashMap<(String, SourceRef), Pending>,
    // Keys in deadline order; the window is the same for every key, so insertion order is
    // deadline order.
    order: VecDeque<(Instant, (String, SourceRef))>,
    closed: bool,
}

pub struct Queue {
    state: Mutex<State>,
    notify: Notify,
    capacity: usize,
    window: Duration,
}

impl Queue {
    pub fn new(capacity: usize, window: Duration) -> Self {
        Self {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            capacity: capacity.max(1),
            window,
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps inconsistent in a way that
        // matters more than losing the queue, so keep going with the data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an intent without waiting.
    pub fn push(&self, mut intent: Intent) -> Push {
        let mut state = self.lock();
        if state.closed {
            return Push::Closed;
        }
        let key = intent.key();
        if let Some(pending) = state.pending.get_mut(&key) {
            let base = pending.intent.base.take();
            let admitted = pending.intent.admitted;
            pending.intent = Intent {
                base,
                admitted,
                ..intent
            };
            return Push::Coalesced;
        }
        if state.pending.len() >= self.capacity {
            return Push::Full;
        }
        let now = Instant::now();
        intent.admitted.get_or_insert(now);
        let deadline = now + self.window;
        state.order.push_back((deadline, key.clone()));
        state.pending.insert(key, Pending { intent });
        drop(state);
        self.notify.notify_one();
        Push::Queued
    }

    /// Number of pending intents.
    pub fn len(&self) -> usize {
        self.lock().pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes everything pending due now and refuses new intents; `next_batch` returns the
    /// rest and then `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    /// Waits for the next intents whose window has closed and returns all of them, so the
    /// worker can group changes per workload. `None` once closed and drained.
    pub async fn next_batch(&self) -> Option<Vec<Intent>> {
        loop {
            let wait_until = {
                let mut state = self.lock();
                let now = Instant::now();
                let closed = state.closed;
                let mut due = Vec::new();
                while let Some((deadline, _)) = state.order.front() {
                    if !closed && *deadline > now {
                        break;
                    }
                    if let Some((_, key)) = state.order.pop_front()
                        && let Some(p) = state.pending.remove(&key)
                    {
                        due.push(p.intent);
                    }
                }
                if !due.is_empty() {
                    return Some(due);
                }
                if closed {
                    return None;
                }
                state.order.front().map(|(deadline, _)| *deadline)
            };
            let notified = self.notify.notified();
            match wait_until {
                Some(deadline) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(deadline) => {}
                        _ = notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reload::model::SourceKind;

    fn intent(name: &str, hash: &str) -> Intent {
        Intent {
            namespace: "ns".into(),
            source: SourceRef {
                kind: SourceKind::Secret,
                name: name.into(),
            },
            hash: Some(hash.into()),
            base: Some("h0".into()),
            operation: Operation::Update,
            admitted: None,
        }
    }

    /// `i` as the queue hands it out: stamped with the time its window opened.
    fn at(i: Intent, t: Instant) -> Intent {
        Intent {
            admitted: Some(t),
            ..i
        }
    }

    #[tokio::test(start_paused = true)]
    async fn burst_for_one_source_becomes_one_intent_with_the_last_hash() {
        let q = Queue::new(10, Duration::from_secs(2));
        let first = Instant::now();
        assert_eq!(q.push(intent("s", "h1")), Push::Queued);
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(q.push(intent("s", "h2")), Push::Coalesced);
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(q.push(intent("s", "h3")), Push::Coalesced);
        let started = Instant::now();
        let batch = q.next_batch().await.expect("batch");
        // The last content, admitted when the first write was.
        assert_eq!(batch, vec![at(intent("s", "h3"), first)]);
        // Due one window after the first push, not after the last.
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn coalescing_keeps_the_content_from_before_the_first_write() {
        let q = Queue::new(10, Duration::from_secs(1));
        q.push(intent("s", "h1"));
        let second = Intent {
            base: Some("h1".into()),
            ..intent("s", "h2")
        };
        assert_eq!(q.push(second), Push::Coalesced);
        let batch = q.next_batch().await.expect("batch");
        assert_eq!(batch[0].hash.as_deref(), Some("h2"));
        assert_eq!(batch[0].base.as_deref(), Some("h0"));
    }

    #[tokio::test(start_paused = true)]
    async fn intents_due_together_come_in_one_batch() {
        let q = Queue::new(10, Duration::from_secs(1));
        q.push(intent("a", "1"));
        q.push(intent("b", "1"));
        tokio::time::advance(Duration::from_secs(3)).await;
        let pushed = Instant::now();
        q.push(intent("c", "1"));
        let batch = q.next_batch().await.expect("batch");
        assert_eq!(batch.len(), 2);
        let batch = q.next_batch().await.expect("batch");
        assert_eq!(batch, vec![at(intent("c", "1"), pushed)]);
    }

    #[tokio::test(start_paused = true)]
    async fn full_queue_drops_new_sources_but_still_coalesces_known_ones() {
        let q = Queue::new(2, Duration::from_secs(1));
        assert_eq!(q.push(intent("a", "1")), Push::Queued);
        assert_eq!(q.push(intent("b", "1")), Push::Queued);
        assert_eq!(q.push(intent("c", "1")), Push::Full);
        assert_eq!(q.push(intent("a", "2")), Push::Coalesced);
        assert_eq!(q.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn close_flushes_pending_then_ends() {
        let q = Queue::new(10, Duration::from_secs(60));
        let pushed = Instant::now();
        q.push(intent("a", "1"));
        q.close();
        assert_eq!(q.push(intent("b", "1")), Push::Closed);
        let started = Instant::now();
        assert_eq!(
            q.next_batch().await,
            Some(vec![at(intent("a", "1"), pushed)])
        );
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(q.next_batch().await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_worker_wakes_for_a_new_intent() {
        let q = std::sync::Arc::new(Queue::new(10, Duration::from_millis(100)));
        let waiter = {
            let q = q.clone();
            tokio::spawn(async move { q.next_batch().await })
        };
        tokio::time::advance(Duration::from_secs(5)).await;
        let pushed = Instant::now();
        q.push(intent("a", "1"));
        let batch = waiter.await.expect("join").expect("batch");
        assert_eq!(batch, vec![at(intent("a", "1"), pushed)]);
    }
}
