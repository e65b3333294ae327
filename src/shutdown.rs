//! Process signals: the first SIGTERM or SIGINT starts a graceful shutdown, a second one
//! exits at once (an operator pressing Ctrl-C twice does not want to wait for the drain).

use std::io;

use futures::{Stream, StreamExt};
use tokio::signal::unix::{SignalKind, signal};
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
}
