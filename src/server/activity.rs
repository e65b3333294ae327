//! What one connection is doing: requests in flight and when the last one ended, so the
//! listener can close a connection that has been idle (from accept on) too long.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use hyper::body::Incoming;
use tokio::sync::Notify;
use tokio::time::Instant;
use tower::ServiceExt as _;

#[derive(Clone)]
pub struct Activity {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// Told when the last request in flight ends.
    ended: Notify,
}

struct State {
    in_flight: usize,
    since: Instant,
}

/// One request in flight; ends it when dropped (also when the request is cancelled).
struct InFlight(Arc<Inner>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.in_flight = state.in_flight.saturating_sub(1);
        state.since = Instant::now();
        if state.in_flight == 0 {
            self.0.ended.notify_one();
        }
    }
}

impl Activity {
    /// A connection accepted now, with nothing in flight.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    in_flight: 0,
                    since: Instant::now(),
                }),
                ended: Notify::new(),
            }),
        }
    }

    fn begin(&self) -> InFlight {
        let mut state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        state.in_flight += 1;
        InFlight(self.inner.clone())
    }

    /// `app` as a hyper service whose requests count as this connection's activity.
    pub fn track(
        &self,
        app: Router,
    ) -> impl hyper::service::Service<
        Request<Incoming>,
        Response = Response<Body>,
        Error = Infallible,
        Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
    > + Clone
    + 'static {
        let activity = self.clone();
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let in_flight = activity.begin();
            let served = app.clone().oneshot(request);
            async move {
                let response = served.await;
                drop(in_flight);
                response
            }
        })
    }

    /// Resolves once no request has been in flight for `timeout`.
    pub async fn idle(&self, timeout: Duration) {
        loop {
            let idle_at = {
                let state = self
                    .inner
                    .state
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                (state.in_flight == 0).then(|| state.since + timeout)
            };
            match idle_at {
                Some(at) if at <= Instant::now() => return,
                Some(at) => tokio::time::sleep_until(at).await,
                None => self.inner.ended.notified().await,
            }
        }
    }
}
