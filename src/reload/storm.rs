//! Storm control, decided from values (`now` is passed in): at most `max` rollouts of one
//! workload per `period`; past that, further reloads of the workload are held, merged so
//! the newest content of each source wins, and released as one reload once the sources
//! have been quiet for `quiet`, or once the period has room again — never dropped. And a
//! token bucket for the global limit on patches per second.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

use super::plan::Reload;

/// The per-workload limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Rollouts allowed per `period`; 0 turns the limit off.
    pub max: usize,
    pub period: Duration,
    /// How long held changes wait for their sources to stop changing.
    pub quiet: Duration,
}

/// The answer of [`Storm::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Reload now (and [`Storm::record`] it if it rolled).
    Go,
    /// Held. `tripped`: this is the first hold since the workload was last released (say so
    /// once, with a Warning Event).
    Held { tripped: bool },
}

#[derive(Debug)]
struct Held {
    changes: Vec<Reload>,
    last: Instant,
}

/// Rollout times and held changes per workload. Memory is bounded by the workloads that
/// rolled within one period.
#[derive(Debug)]
pub struct Storm<K> {
    limits: Limits,
    recent: HashMap<K, VecDeque<Instant>>,
    held: HashMap<K, Held>,
}

impl<K: Clone + Eq + Hash> Storm<K> {
    pub fn new(limits: Limits) -> Self {
        Storm {
            limits,
            recent: HashMap::new(),
            held: HashMap::new(),
        }
    }

    fn rolled_within(&mut self, key: &K, now: Instant) -> usize {
        let period = self.limits.period;
        let Some(times) = self.recent.get_mut(key) else {
            return 0;
        };
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= period)
        {
            times.pop_front();
        }
        let n = times.len();
        if n == 0 {
            self.recent.remove(key);
        }
        n
    }

    /// Whether `changes` of `key` may reload now; when not, they are held (merged into
    /// what is already held: the newest hash of each source wins).
    pub fn admit(&mut self, key: &K, changes: &[Reload], now: Instant) -> Admit {
        if self.limits.max == 0 {
            return Admit::Go;
        }
        let over = self.rolled_within(key, now) >= self.limits.max;
        if !over && !self.held.contains_key(key) {
            return Admit::Go;
        }
        let tripped = !self.held.contains_key(key);
        let held = self.held.entry(key.clone()).or_insert_with(|| Held {
            changes: Vec::new(),
            last: now,
        });
        held.last = now;
        for change in changes {
            match held.changes.iter_mut().find(|c| c.source == change.source) {
                Some(c) => *c = change.clone(),
                None => held.changes.push(change.clone()),
            }
        }
        Admit::Held { tripped }
    }

    /// A reload of `key` rolled the workload at `now`.
    pub fn record(&mut self, key: &K, now: Instant) {
        if self.limits.max > 0 {
            self.recent.entry(key.clone()).or_default().push_back(now);
        }
    }

    /// Takes the held changes that may go now: quiet for `quiet`, or the period has room.
    /// The caller reloads them (without asking [`Storm::admit`] again) and records them.
    pub fn due(&mut self, now: Instant) -> Vec<(K, Vec<Reload>)> {
        let quiet = self.limits.quiet;
        let keys: Vec<K> = self.held.keys().cloned().collect();
        let mut out = Vec::new();
        for key in keys {
            let quiet_enough = self
                .held
                .get(&key)
                .is_some_and(|h| now.duration_since(h.last) >= quiet);
            if (quiet_enough || self.rolled_within(&key, now) < self.limits.max)
                && let Some(held) = self.held.remove(&key)
            {
                out.push((key, held.changes));
            }
        }
        out
    }

    /// When [`Storm::due`] will next have something, if anything is held.
    pub fn next_due(&self) -> Option<Instant> {
        self.held
            .iter()
            .map(|(key, held)| {
                let quiet = held.last + self.limits.quiet;
                let room = self
                    .recent
                    .get(key)
                    .and_then(|t| t.front())
                    .map(|t| *t + self.limits.period);
                room.map_or(quiet, |room| room.min(quiet))
            })
            .min()
    }

    /// Workloads with held changes.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

/// A token bucket: `rate` tokens a second, at most `burst` saved; a rate of 0 is no limit.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn new(rate: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Bucket {
            rate: f64::from(rate),
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes a token at `now`, or says how long to wait before asking again.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
    }
}

#[cfg(test)]
mod tests;
