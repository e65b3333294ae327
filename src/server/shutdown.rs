//! Process signals: the first SIGTERM or SIGINT starts a graceful shutdown, a second one
//! exits at once (an operator pressing Ctrl-C twice does not want to wait for the drain).
//! [`Drain`] gives everything that drains one deadline.

use std::io;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// Exit status after a second signal (128 + SIGINT, what shells report for Ctrl-C).
pub const ABORT_EXIT_CODE: i32 = 130;

#[derive(Debug, thiserror::Error)]
pub enum ShutdownError {
    #[error("installing the {signal} handler")]
    Install {
        signal: &'static str,
        #[source]
        source: io::Error,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Term,
    Int,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Term => "SIGTERM",
            Self::Int => "SIGINT",
        }
    }
}

/// Installs the SIGTERM and SIGINT handlers and returns the token the first signal
/// cancels. Must be called inside a Tokio runtime.
pub fn signals() -> Result<CancellationToken, ShutdownError> {
    let install = |kind: SignalKind, name: &'static str| {
        signal(kind).map_err(|source| ShutdownError::Install {
            signal: name,
            source,
        })
    };
    let term = install(SignalKind::terminate(), Signal::Term.as_str())?;
    let int = install(SignalKind::interrupt(), Signal::Int.as_str())?;
    let received = futures::stream::unfold((term, int), |(mut term, mut int)| async move {
        let next = tokio::select! {
            Some(()) = term.recv() => Signal::Term,
            Some(()) = int.recv() => Signal::Int,
            else => return None,
        };
        Some((next, (term, int)))
    });
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        if let Some(second) = watch(received, cancel).await {
            error!(
                signal = second.as_str(),
                "second signal, exiting without draining"
            );
            std::process::exit(ABORT_EXIT_CODE);
        }
    });
    Ok(token)
}

/// Cancels `token` at the first signal and returns the second one, or `None` if the
/// signals end first.
pub async fn watch(
    signals: impl Stream<Item = Signal>,
    token: CancellationToken,
) -> Option<Signal> {
    let mut signals = std::pin::pin!(signals);
    let first = signals.next().await?;
    info!(signal = first.as_str(), "shutting down");
    token.cancel();
    signals.next().await
}

/// The one deadline of a graceful shutdown: the moment it begins plus the grace period.
/// The webhook listener and then the worker drain against the same deadline, so the whole
/// shutdown stays within the grace period (and the pod's terminationGracePeriodSeconds).
#[derive(Clone, Debug)]
pub struct Drain {
    token: CancellationToken,
    grace: Duration,
    began: Arc<OnceLock<Instant>>,
}

impl Drain {
    /// Shutdown begins when `token` is cancelled. Must be called inside a Tokio runtime: a
    /// task notes the moment, so the deadline does not depend on who asks first.
    pub fn new(token: CancellationToken, grace: Duration) -> Self {
        let drain = Self {
            token,
            grace,
            began: Arc::default(),
        };
        let first = drain.clone();
        tokio::spawn(async move {
            first.deadline().await;
        });
        drain
    }

    /// Starts the shutdown (idempotent).
    pub fn begin(&self) {
        self.token.cancel();
    }

    /// Waits until shutdown begins, then returns the deadline.
    pub async fn deadline(&self) -> Instant {
        self.token.cancelled().await;
        *self.began.get_or_init(Instant::now) + self.grace
    }
}

#[cfg(test)]
mod tests {
    use futures::channel::mpsc;

    use super::*;

    #[tokio::test]
    async fn first_signal_cancels_and_the_second_is_returned() {
        let (tx, rx) = mpsc::unbounded();
        let token = CancellationToken::new();
        let watcher = tokio::spawn(watch(rx, token.clone()));

        tx.unbounded_send(Signal::Term).expect("send");
        token.cancelled().await;
        // Only a second signal or the end of the stream can finish the watcher.
        assert!(!watcher.is_finished());

        tx.unbounded_send(Signal::Int).expect("send");
        assert_eq!(watcher.await.expect("join"), Some(Signal::Int));
    }

    #[tokio::test]
    async fn no_signal_no_shutdown() {
        let (tx, rx) = mpsc::unbounded::<Signal>();
        let token = CancellationToken::new();
        drop(tx);
        assert_eq!(watch(rx, token.clone()).await, None);
        assert!(!token.is_cancelled());
    }

    #[tokio::test]
    async fn a_real_sigterm_cancels_the_token() {
        let token = signals().expect("install");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        tokio::time::timeout(std::time::Duration::from_secs(10), token.cancelled())
            .await
            .expect("token cancelled by SIGTERM");
    }

    #[tokio::test(start_paused = true)]
    async fn the_drain_deadline_is_fixed_when_shutdown_begins() {
        let token = CancellationToken::new();
        let drain = Drain::new(token.clone(), Duration::from_secs(20));
        tokio::time::sleep(Duration::from_secs(5)).await;
        let began = Instant::now();
        token.cancel();
        tokio::task::yield_now().await;
        // Asked later (as the worker drain is, after the listener's), it is the same.
        tokio::time::sleep(Duration::from_secs(12)).await;
        let later = drain.clone();
        assert_eq!(later.deadline().await, began + Duration::from_secs(20));
        assert_eq!(drain.deadline().await, began + Duration::from_secs(20));
    }

    #[tokio::test(start_paused = true)]
    async fn no_deadline_before_shutdown() {
        let drain = Drain::new(CancellationToken::new(), Duration::from_secs(1));
        let waiting = tokio::time::timeout(Duration::from_secs(3600), drain.deadline()).await;
        assert!(waiting.is_err());
        drain.begin();
        let deadline = drain.deadline().await;
        assert_eq!(deadline, Instant::now() + Duration::from_secs(1));
    }
}
