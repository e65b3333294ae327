//! Serving: the TLS webhook port (HTTP/1.1 and h2, with a cap on connections and timeouts
//! for idle or silent clients) and the plain admin port, both with graceful shutdown.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use super::activity::Activity;
use super::shutdown::Drain;

/// A client gets this long to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once. The API server multiplexes its calls over a few h2
/// connections per replica, so this leaves room for many replicas and for other clients,
/// while one client opening connections cannot exhaust file descriptors or memory.
pub const MAX_CONNECTIONS: usize = 1024;

/// An HTTP/1 client gets this long to send a request's headers, and an idle keep-alive
/// connection is closed after it.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// An h2 connection quiet this long is pinged, and closed if the ping is not answered
/// within [`KEEP_ALIVE_TIMEOUT`], so a peer that vanished does not hold its slot.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
pub const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection with no request in flight for this long, counted from accept, is closed
/// (h2 with a GOAWAY), so silent clients cannot fill [`MAX_CONNECTIONS`].
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Streams one h2 connection may have open at once: half the review slots, so one
/// connection cannot take them all. Go's HTTP/2 client, the API server's, opens another
/// connection when it needs more.
pub const MAX_STREAMS: u32 = 16;

/// What one client may hold of the webhook listener.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Beyond this many open connections, new ones wait in the listen backlog, not
    /// accepted, until one closes.
    pub max_connections: usize,
    pub handshake_timeout: Duration,
    pub header_read_timeout: Duration,
    pub keep_alive_interval: Duration,
    pub keep_alive_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_streams: u32,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            header_read_timeout: HEADER_READ_TIMEOUT,
            keep_alive_interval: KEEP_ALIVE_INTERVAL,
            keep_alive_timeout: KEEP_ALIVE_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            max_streams: MAX_STREAMS,
        }
    }
}

/// Pause after an accept error that is not about one connection (out of file
/// descriptors), so the loop does not spin; axum::serve does the same.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("reading the listener's address")]
    LocalAddr(#[source] io::Error),
    #[error("serving the admin port")]
    Admin(#[source] io::Error),
}

/// Serves `app` over TLS on `listener` until shutdown begins, then stops accepting, lets
/// in-flight requests finish until the drain deadline, and returns.
///
/// Each connection's handshake runs in its own task, so a slow or silent client cannot
/// hold up the accept loop; at most `limits.max_connections` such tasks run at once.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    limits: ConnectionLimits,
    shutdown: Drain,
) -> Result<(), ServerError> {
    let addr = listener.local_addr().map_err(ServerError::LocalAddr)?;
    info!(%addr, max_connections = limits.max_connections, "webhook listener serving");
    let acceptor = TlsAcceptor::from(tls);
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    http.http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.keep_alive_interval)
        .keep_alive_timeout(limits.keep_alive_timeout)
        .max_concurrent_streams(limits.max_streams);
    // Cancelled when draining begins: every connection then finishes what it serves.
    let graceful = CancellationToken::new();
    // One task per open connection: its length is the number of connections, so the cap
    // needs no separate counter.
    let mut connections = JoinSet::new();

    let deadline = loop {
        let room = connections.len() < limits.max_connections;
        tokio::select! {
            deadline = shutdown.deadline() => break deadline,
            // Reap finished connection tasks, which also frees their slots.
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                if let Err(error) = joined {
                    warn!(%error, "connection task failed");
                }
            }
            accepted = listener.accept(), if room => match accepted {
                Ok((stream, peer)) => {
                    no_delay(&stream);
                    let conn = serve_connection(
                        stream,
                        acceptor.clone(),
                        limits,
                        http.clone(),
                        app.clone(),
                        graceful.clone(),
                    );
                    connections.spawn(conn.instrument(info_span!("connection", %peer)));
                    if connections.len() == limits.max_connections {
                        // The API server needs a few; this many means a client is misbehaving.
                        warn!(
                            %addr,
                            max_connections = limits.max_connections,
                            "connection limit reached; new connections wait"
                        );
                    }
                }
                Err(error) if is_per_connection(&error) => {
                    debug!(%error, "accept failed");
                }
                Err(error) => {
                    warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    };

    // Stop accepting: new connections are refused from here on.
    drop(listener);
    info!(%addr, in_flight = connections.len(), "webhook listener draining");
    graceful.cancel();
    let signal = async { while connections.join_next().await.is_some() {} };
    match tokio::time::timeout_at(deadline, signal).await {
        Ok(()) => info!(%addr, "webhook listener stopped"),
        Err(_) => warn!(%addr, "drain deadline passed, closing remaining connections"),
    }
    // Dropping the set aborts whatever is still running.
    Ok(())
}

async fn serve_connection(
    stream: TcpStream,
    acceptor: TlsAcceptor,
    limits: ConnectionLimits,
    http: auto::Builder<TokioExecutor>,
    app: Router,
    draining: CancellationToken,
) {
    // The idle deadline starts at accept, so it also bounds a client silent before or
    // during the handshake.
    let activity = Activity::new();
    let handshake = limits.handshake_timeout.min(limits.idle_timeout);
    let tls = match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            debug!(%error, "tls handshake failed");
            return;
        }
        Err(_) => {
            debug!("tls handshake timed out");
            return;
        }
    };
    let service = activity.track(app);
    let conn = http.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    let closing = tokio::select! {
        ended = conn.as_mut() => return log_end(ended),
        () = draining.cancelled() => "draining",
        () = activity.idle(limits.idle_timeout) => "idle",
    };
    debug!(reason = closing, "closing connection");
    conn.as_mut().graceful_shutdown();
    // A peer that does not take part in a graceful close (no GOAWAY ack, no read) is
    // dropped after the keep-alive timeout; a drain is bounded by its own deadline.
    if closing == "idle" {
        if let Ok(ended) = tokio::time::timeout(limits.keep_alive_timeout, conn).await {
            log_end(ended);
        }
    } else {
        log_end(conn.await);
    }
}

fn log_end<E: std::fmt::Display>(ended: Result<(), E>) {
    if let Err(error) = ended {
        debug!(%error, "connection ended with an error");
    }
}

/// Errors that concern only the connection being accepted, not the listener.
fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Answers are small and written at once: without TCP_NODELAY, Nagle's algorithm held the
/// end of a response back until the API server's delayed ACK (about 40 ms), which was the
/// admission p99 at every body size.
fn no_delay(stream: &TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        debug!(%error, "cannot set TCP_NODELAY");
    }
}

/// Serves `app` over plain HTTP (the admin port) until `shutdown` is cancelled and the
/// open requests have finished.
pub async fn serve_plain(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let addr: SocketAddr = listener.local_addr().map_err(ServerError::LocalAddr)?;
    info!(%addr, "admin listener serving");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(ServerError::Admin)?;
    info!(%addr, "admin listener stopped");
    Ok(())
}
