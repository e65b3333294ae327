//! At most one pending timer per key, on tokio time (so tests drive it with paused time).
//! Asking again for the same deadline is a no-op, which lets a periodic scan re-announce
//! every deadline it sees without piling up timers; a different deadline replaces the
//! pending one.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use jiff::Timestamp;
use tokio::task::AbortHandle;

/// What tokio itself uses for "never": 30 years.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

struct Slot {
    until: Timestamp,
    id: u64,
    task: AbortHandle,
    /// Past its sleep and running: not aborted when replaced, so the work in hand (which
    /// may itself schedule the next deadline) finishes.
    firing: bool,
}

pub struct Timers<K> {
    slots: Mutex<HashMap<K, Slot>>,
    next_id: AtomicU64,
}

impl<K> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            slots: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        }
    }
}

/// How long from `now` until `until` (zero when it has passed).
pub fn delay(until: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(until.duration_since(now)).unwrap_or(Duration::ZERO)
}

impl<K> Timers<K>
where
    K: Clone + Eq + Hash + Send + 'static,
{
    fn slots(&self) -> MutexGuard<'_, HashMap<K, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `fire` at `until` (`now` is the current wall-clock time), unless a timer for
    /// `key` already targets `until`. Returns whether a timer was started.
    pub fn schedule<F>(self: &Arc<Self>, key: K, until: Timestamp, now: Timestamp, fire: F) -> bool
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut slots = self.slots();
        if let Some(slot) = slots.get(&key) {
            if slot.until == until {
                return false;
            }
            if !slot.firing {
                slot.task.abort();
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // Fixed now, not when the task first runs; a pause of centuries waits "for ever".
        let start = tokio::time::Instant::now();
        let deadline = start
            .checked_add(delay(until, now))
            .unwrap_or_else(|| start + FAR_FUTURE);
        let this = Arc::downgrade(self);
        let task_key = key.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep_until(deadline).await;
            let Some(timers) = this.upgrade() else { return };
            {
                let mut slots = timers.slots();
                match slots.get_mut(&task_key) {
                    Some(slot) if slot.id == id => slot.firing = true,
                    // Replaced while waking up.
                    _ => return,
                }
            }
            fire.await;
            let mut slots = timers.slots();
            if slots.get(&task_key).is_some_and(|s| s.id == id) {
                slots.remove(&task_key);
            }
        });
        slots.insert(
            key,
            Slot {
                until,
                id,
                task: task.abort_handle(),
                firing: false,
            },
        );
        true
    }

    /// Pending (or firing) timers.
    pub fn len(&self) -> usize {
        self.slots().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Aborts every timer (at shutdown; the state they act on lives on the objects).
    pub fn cancel_all(&self) {
        for (_, slot) in self.slots().drain() {
            slot.task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;
    use tokio::time::Instant;

    fn t(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    const NOW: &str = "2025-03-01T12:00:00Z";

    async fn settle() {
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
    }

    type Fired<T> = (
        Arc<Timers<&'static str>>,
        mpsc::UnboundedSender<T>,
        mpsc::UnboundedReceiver<T>,
    );

    /// Timers, and a channel their futures report on.
    fn setup<T>() -> Fired<T> {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::default(), tx, rx)
    }

    #[tokio::test(start_paused = true)]
    async fn fires_once_at_the_deadline() {
        let (timers, tx, mut rx) = setup();
        let started = Instant::now();
        let sent = tx.clone();
        assert!(
            timers.schedule("a", t("2025-03-01T12:00:05Z"), t(NOW), async move {
                let _ = sent.send(Instant::now());
            })
        );
        tokio::time::advance(Duration::from_millis(4_999)).await;
        settle().await;
        assert!(rx.try_recv().is_err(), "fired early");
        let fired = rx.recv().await.expect("fired");
        assert_eq!(fired - started, Duration::from_secs(5));
        settle().await;
        assert!(timers.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn same_deadline_is_not_scheduled_twice() {
        let (timers, tx, mut rx) = setup();
        for _ in 0..3 {
            let sent = tx.clone();
            timers.schedule("a", t("2025-03-01T12:00:05Z"), t(NOW), async move {
                let _ = sent.send(());
            });
        }
        assert_eq!(timers.len(), 1);
        drop(tx);
        assert_eq!(rx.recv().await, Some(()));
        assert_eq!(rx.recv().await, None, "fired more than once");
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_deadline_replaces_the_pending_one() {
        let (timers, tx, mut rx) = setup();
        let started = Instant::now();
        for (until, label) in [
            ("2025-03-01T12:00:05Z", "first"),
            ("2025-03-01T12:00:09Z", "second"),
        ] {
            let sent = tx.clone();
            timers.schedule("a", t(until), t(NOW), async move {
                let _ = sent.send((label, Instant::now()));
            });
        }
        // Another key is independent.
        let sent = tx.clone();
        timers.schedule("b", t("2025-03-01T12:00:01Z"), t(NOW), async move {
            let _ = sent.send(("b", Instant::now()));
        });
        drop(tx);
        let mut got = Vec::new();
        while let Some((label, at)) = rx.recv().await {
            got.push((label, at - started));
        }
        assert_eq!(
            got,
            [
                ("b", Duration::from_secs(1)),
                ("second", Duration::from_secs(9))
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_past_deadline_fires_now_and_cancel_all_stops_the_rest() {
        let (timers, tx, mut rx) = setup();
        let sent = tx.clone();
        timers.schedule("late", t("2025-03-01T11:00:00Z"), t(NOW), async move {
            let _ = sent.send("late");
        });
        let sent = tx.clone();
        timers.schedule("later", t("2025-03-01T13:00:00Z"), t(NOW), async move {
            let _ = sent.send("later");
        });
        assert_eq!(rx.recv().await, Some("late"));
        timers.cancel_all();
        drop(tx);
        assert_eq!(rx.recv().await, None);
        assert!(timers.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_firing_timer_may_schedule_its_successor() {
        let (timers, tx, mut rx) = setup();
        let started = Instant::now();
        let again = timers.clone();
        let sent = tx.clone();
        timers.schedule("a", t("2025-03-01T12:00:02Z"), t(NOW), async move {
            let _ = sent.send(Instant::now());
            let sent = sent.clone();
            // Rescheduled from inside, as the resumer does when the window moved.
            again.schedule(
                "a",
                t("2025-03-01T12:00:05Z"),
                t("2025-03-01T12:00:02Z"),
                async move {
                    let _ = sent.send(Instant::now());
                },
            );
        });
        drop(tx);
        let first = rx.recv().await.expect("first");
        let second = rx.recv().await.expect("second");
        assert_eq!(first - started, Duration::from_secs(2));
        assert_eq!(second - started, Duration::from_secs(5));
        assert_eq!(rx.recv().await, None);
        assert!(timers.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn the_end_of_time_does_not_overflow() {
        let timers: Arc<Timers<&str>> = Arc::default();
        assert!(timers.schedule("a", Timestamp::MAX, Timestamp::MIN, async {}));
        tokio::time::advance(Duration::from_secs(86_400 * 365)).await;
        assert_eq!(timers.len(), 1);
        timers.cancel_all();
    }

    #[test]
    fn delay_is_never_negative() {
        assert_eq!(
            delay(t("2025-03-01T12:00:05Z"), t(NOW)),
            Duration::from_secs(5)
        );
        assert_eq!(delay(t("2025-03-01T11:00:00Z"), t(NOW)), Duration::ZERO);
    }
}
