//! What admissions may hold at once, and reading a body within it.
//!
//! Two bounds: review slots (reviews being decided at once) and body bytes (bytes of request
//! bodies held in memory at once, counted as they arrive). A body is read before its review
//! takes a slot, under a deadline, so a client that sends headers and then stalls holds no
//! slot and only the bytes it actually sent, and only until the deadline. When either bound
//! stays exhausted for [`Limits::stall_after`], [`Load::stalled`] says so and readiness
//! drops: the API server then sends its calls to another replica.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The bounds of the admission endpoints.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest request body read.
    pub body_limit: usize,
    /// A body must arrive in full within this long of the request's headers. The API
    /// server sends the whole body at once; only a stalled or malicious client is slower.
    pub body_timeout: Duration,
    /// Reviews decided at once.
    pub slots: usize,
    /// Bytes of request bodies held at once (at least `body_limit`).
    pub body_bytes: usize,
    /// Bounds exhausted this long make the replica not ready.
    pub stall_after: Duration,
    /// After an over-limit body, up to this many more bytes are read and thrown away so
    /// the client, still sending, is able to read its 413.
    pub drain_limit: usize,
}

/// See [`Limits::body_limit`] and [`super::review::DEFAULT_BODY_LIMIT`].
pub const DEFAULT_SLOTS: usize = 32;
/// Four of the largest bodies, or thousands of ordinary ones.
pub const DEFAULT_BODY_BYTES: usize = 4 * super::review::DEFAULT_BODY_LIMIT;
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(5);

impl Default for Limits {
    fn default() -> Self {
        Self::with_body_limit(super::review::DEFAULT_BODY_LIMIT)
    }
}

impl Limits {
    /// The defaults around another body limit.
    pub fn with_body_limit(body_limit: usize) -> Self {
        Self {
            body_limit,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            slots: DEFAULT_SLOTS,
            body_bytes: DEFAULT_BODY_BYTES.max(body_limit),
            stall_after: DEFAULT_STALL_AFTER,
            drain_limit: 2 * body_limit,
        }
    }
}

/// Why a body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the request body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the request body did not arrive within {0:?}")]
    TimedOut(Duration),
    #[error("no room for the request body: admissions are holding their limit of body bytes")]
    NoRoom,
    #[error("reading the request body")]
    Read(#[source] axum::Error),
}

/// The admission endpoints' shared bounds and their metrics.
#[derive(Debug)]
pub struct Load {
    limits: Limits,
    slots: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    /// Requests waiting for a slot or for bytes.
    waiting: Mutex<usize>,
    /// When the bounds became exhausted (every slot taken, or someone waiting).
    saturated_since: Mutex<Option<Instant>>,
    gauges: Gauges,
}

#[derive(Debug, Default)]
struct Gauges {
    in_flight: Gauge,
    body_bytes: Gauge,
    saturated: Gauge,
    body_timeouts: Counter,
}

/// A body read in full, holding its share of the byte bound until dropped.
pub struct HeldBody {
    pub bytes: Vec<u8>,
    /// Waiting for room in the byte bound (so a deadline passed then is not the client's).
    starved: bool,
    /// Bytes of the bound `_permit` holds.
    reserved: usize,
    _permit: Option<OwnedSemaphorePermit>,
    load: Arc<Load>,
}

impl Drop for HeldBody {
    fn drop(&mut self) {
        self._permit.take();
        self.load.changed();
    }
}

/// A review slot, freed when dropped.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    load: Arc<Load>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // The permit is freed after this body runs; count it as freed already.
        self.load.changed_with(1);
    }
}

impl Load {
    pub fn new(limits: Limits) -> Arc<Self> {
        let limits = Limits {
            slots: limits.slots.max(1),
            body_bytes: limits.body_bytes.max(limits.body_limit).max(1),
            ..limits
        };
        Arc::new(Self {
            slots: Arc::new(Semaphore::new(limits.slots)),
            bytes: Arc::new(Semaphore::new(limits.body_bytes)),
            limits,
            waiting: Mutex::new(0),
            saturated_since: Mutex::new(None),
            gauges: Gauges::default(),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Adds the admission bounds' metrics to `registry` (prefix `kreload`).
    pub fn register(&self, registry: &mut Registry) {
        let g = &self.gauges;
        let gauges = [
            (
                "admission_in_flight",
                "Admission reviews being decided",
                &g.in_flight,
            ),
            (
                "admission_body_bytes",
                "Bytes of admission request bodies held in memory",
                &g.body_bytes,
            ),
            (
                "admission_saturated",
                "1 while every review slot is taken or a request waits for room",
                &g.saturated,
            ),
        ];
        for (name, help, gauge) in gauges {
            registry.register(name, help, gauge.clone());
        }
        registry.register(
            "admission_body_timeouts",
            "Admission requests whose body did not arrive in time",
            g.body_timeouts.clone(),
        );
    }

    /// How long the bounds have been exhausted, once that is at least `stall_after`.
    pub fn stalled(&self) -> Option<Duration> {
        let since = *self
            .saturated_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        since
            .map(|since| since.elapsed())
            .filter(|held| *held >= self.limits.stall_after)
    }

    fn changed(&self) {
        self.changed_with(0);
    }

    /// Refreshes the gauges and the saturation clock; `freeing` slots are being released.
    fn changed_with(&self, freeing: usize) {
        let waiting = *self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let free_slots = self.slots.available_permits() + freeing;
        let taken = self.limits.slots.saturating_sub(free_slots);
        let bytes = self
            .limits
            .body_bytes
            .saturating_sub(self.bytes.available_permits());
        let saturated = waiting > 0 || free_slots == 0;
        let mut since = self
            .saturated_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match (saturated, *since) {
            (true, None) => *since = Some(Instant::now()),
            (false, Some(_)) => *since = None,
            _ => {}
        }
        self.gauges.in_flight.set(to_i64(taken));
        self.gauges.body_bytes.set(to_i64(bytes));
        self.gauges.saturated.set(i64::from(saturated));
    }

    /// Waits for `acquire`, counted as waiting while it does.
    async fn wait<T>(&self, acquire: impl Future<Output = T>) -> T {
        *self.waiting.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.changed();
        let waited = acquire.await;
        {
            let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
            *waiting = waiting.saturating_sub(1);
        }
        waited
    }

    /// A review slot; waits while all are taken, at most `patience`.
    pub async fn slot(self: &Arc<Self>, patience: Duration) -> Option<Slot> {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                let acquire = self.slots.clone().acquire_owned();
                self.wait(tokio::time::timeout(patience, acquire))
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
        };
        let slot = permit.map(|permit| Slot {
            _permit: permit,
            load: self.clone(),
        });
        self.changed();
        slot
    }

    /// Reads `body` in full within the body deadline. With a Content-Length (`declared`;
    /// the API server always sends one) its room is reserved whole before anything is read,
    /// so bodies never each hold part of the bound while waiting for the rest (which would
    /// leave none able to finish); memory still grows only with the bytes received. A body
    /// of unknown length reserves as it arrives.
    pub async fn read(
        self: &Arc<Self>,
        body: Body,
        declared: Option<u64>,
    ) -> Result<HeldBody, BodyError> {
        let limits = self.limits;
        let deadline = Instant::now() + limits.body_timeout;
        let too_large = BodyError::TooLarge {
            limit: limits.body_limit,
        };
        let mut body = body.into_data_stream();
        if declared.is_some_and(|len| len > limits.body_limit as u64) {
            drain(&mut body, limits.drain_limit, deadline).await;
            return Err(too_large);
        }
        let mut held = HeldBody {
            bytes: Vec::new(),
            starved: false,
            reserved: 0,
            _permit: None,
            load: self.clone(),
        };
        let ceiling = declared.map_or(limits.body_limit, |len| len as usize);
        let read = tokio::time::timeout_at(deadline, async {
            if declared.is_some() {
                self.reserve(&mut held, ceiling).await?;
            }
            self.fill(&mut held, &mut body, ceiling).await
        });
        match read.await {
            Ok(Ok(())) => Ok(held),
            Ok(Err(BodyError::TooLarge { .. })) => {
                drop(held);
                drain(&mut body, limits.drain_limit, deadline).await;
                Err(too_large)
            }
            Ok(Err(error)) => Err(error),
            Err(_) if held.starved => {
                // Read the rest (thrown away) so the client, still sending, gets the 503.
                drop(held);
                let deadline = Instant::now() + limits.body_timeout;
                drain(&mut body, limits.drain_limit, deadline).await;
                Err(BodyError::NoRoom)
            }
            Err(_) => {
                self.gauges.body_timeouts.inc();
                Err(BodyError::TimedOut(limits.body_timeout))
            }
        }
    }

    async fn fill(
        self: &Arc<Self>,
        held: &mut HeldBody,
        body: &mut axum::body::BodyDataStream,
        ceiling: usize,
    ) -> Result<(), BodyError> {
        use futures::StreamExt as _;
        let limit = self.limits.body_limit;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(BodyError::Read)?;
            let needed = held.bytes.len() + chunk.len();
            if needed > limit {
                return Err(BodyError::TooLarge { limit });
            }
            let capacity = held.bytes.capacity();
            if needed > capacity {
                // Grow by doubling, as Vec would, but count every byte of capacity.
                let grown = needed.max(capacity.saturating_mul(2).min(ceiling));
                self.reserve(held, grown).await?;
                held.bytes.reserve_exact(grown - held.bytes.len());
            }
            held.bytes.extend_from_slice(&chunk);
        }
        Ok(())
    }

    /// Makes `held`'s share of the byte bound at least `total` bytes.
    async fn reserve(self: &Arc<Self>, held: &mut HeldBody, total: usize) -> Result<(), BodyError> {
        let Some(more) = total.checked_sub(held.reserved).filter(|more| *more > 0) else {
            return Ok(());
        };
        let permits = u32::try_from(more).map_err(|_| BodyError::NoRoom)?;
        let permit = match self.bytes.clone().try_acquire_many_owned(permits) {
            Ok(permit) => permit,
            Err(_) => {
                held.starved = true;
                let acquire = self.bytes.clone().acquire_many_owned(permits);
                let permit = self.wait(acquire).await.map_err(|_| BodyError::NoRoom)?;
                held.starved = false;
                permit
            }
        };
        match held._permit.as_mut() {
            Some(all) => all.merge(permit),
            None => held._permit = Some(permit),
        }
        held.reserved = total;
        self.changed();
        Ok(())
    }
}

/// Reads and throws away up to `limit` more bytes of `body`, until `deadline`.
async fn drain(body: &mut axum::body::BodyDataStream, limit: usize, deadline: Instant) {
    use futures::StreamExt as _;
    let mut drained = 0usize;
    let _ = tokio::time::timeout_at(deadline, async {
        while let Some(Ok(chunk)) = body.next().await {
            drained += chunk.len();
            if drained > limit {
                break;
            }
        }
    })
    .await;
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
