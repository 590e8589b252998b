//! The front door: every accepted connection starts here.
//!
//! Model calls are the hot path, so a plain HTTP/1.1 request for `/run/…`
//! with an `Authorization` header is forwarded by hand on the connection's
//! own task: its head is parsed in place (httparse), the caller is
//! authenticated and the app found exactly as the router would, and the
//! rewritten head goes to a kept-alive connection to the upstream
//! ([`crate::gateway::pool::UpConn`]). Bodies are copied through the connection's
//! buffers as they arrive, never held whole; a chunked body passes through
//! as it is but for its trailers, its framing checked strictly so that both
//! ends agree where it stops. The rules both paths share (which paths,
//! headers, cookies, lengths and upstream framings pass) are in
//! [`crate::h1::headers`] and [`crate::h1::target`].
//!
//! Everything else (other paths, HTTP/1.0, `Expect`, `Upgrade`, no
//! `Authorization` header, an `https` upstream, a head httparse refuses)
//! hands the connection, with the bytes already read, to hyper and the axum
//! router for the rest of its life. Both paths give the same answers: the
//! same [`crate::ApiError`]s, the same header rules (see [`crate::gateway`]).
//!
//! # Layout
//! - this file: [`serve`] accepts (and does TLS) and drains on shutdown;
//!   the connection's parts and its one timer.
//! - `conn`: the per-connection loop: read heads, pick a path, hand the
//!   rest to hyper.
//! - `forward`: check a `/run` request, write the upstream's head, run
//!   the exchange with the upstream.
//! - `body`: bodies pumped both ways; our own answers written whole.
//! - `idle`: a quiet connection gives its buffers back and waits for the
//!   next request holding none.
//! - `rewind`: replays the bytes already read to hyper.
//!
//! Pure HTTP/1.1 (parsing, rewriting, writing) is in [`crate::h1`]; the
//! kept upstream connections in [`crate::gateway::pool`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::limits::{ConnSlot, FrontLimits};
use crate::state::AppState;

mod body;
mod conn;
mod forward;
mod idle;
mod rewind;

#[cfg(feature = "testing")]
pub use idle::buffers_held;

/// Room kept free in a buffer before each read.
const READ_ROOM: usize = 16 * 1024;
/// How long a TLS handshake may take.
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);
/// How long connections may take to finish after shutdown begins.
const DRAIN: Duration = Duration::from_secs(30);

/// Serves `listener` until `shutdown` completes: over TLS when an acceptor
/// is given, the fast path and `router` both over `state`. Then stops
/// accepting, lets requests under way finish (up to 30 s) and closes idle
/// connections.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    router: Router,
    tls: Option<TlsAcceptor>,
    limits: FrontLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a sender; when all are gone, all are done.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, do not spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Beyond the cap: refused politely (see `crate::limits`).
                let Some(slot) = limits.connections.try_acquire() else {
                    limits.connections.refuse(tcp, tls.is_some());
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let conn = Conn {
                    state: state.clone(),
                    router: router.clone(),
                    peer,
                    stop: stop_rx.clone(),
                    idle_timeout: limits.idle_timeout,
                    body_timeout: limits.body_timeout,
                    hand_path: limits.hand_path,
                    _slot: slot,
                    _alive: alive_tx.clone(),
                };
                // Each kind in a task of its own: a task's memory is its
                // largest future, and a plain connection's is the smaller.
                match tls.clone() {
                    None => {
                        tokio::spawn(conn.serve(tcp));
                    }
                    Some(acceptor) => {
                        tokio::spawn(async move {
                            match tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(tcp)).await {
                                Ok(Ok(stream)) => conn.serve(stream).await,
                                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                                Err(_) => tracing::debug!("TLS handshake timed out"),
                            }
                        });
                    }
                }
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive_tx);
    if tokio::time::timeout(DRAIN, alive_rx.recv()).await.is_err() {
        tracing::warn!("connections still open after 30 s; closing them");
    }
    Ok(())
}

/// One client connection.
pub(crate) struct Conn {
    /// What the fast path authenticates and forwards with.
    state: AppState,
    /// Everything else.
    router: Router,
    /// The TCP peer: the client, or a proxy in front of it (see
    /// [`crate::throttle`]); given to the router as `ConnectInfo`.
    peer: SocketAddr,
    /// Turns true when the server shuts down.
    stop: watch::Receiver<bool>,
    /// How long to wait for the next request head, idle time included.
    idle_timeout: Duration,
    /// The longest pause inside a request body being forwarded.
    body_timeout: Duration,
    /// Whether `/run` requests may be forwarded by hand (else hyper takes
    /// every connection).
    hand_path: bool,
    /// Its place under the connection cap.
    _slot: ConnSlot,
    /// Held for as long as the connection lives (see [`serve`]).
    _alive: mpsc::Sender<()>,
}

/// The connection's one timer, for the wait for each request head and each
/// upstream exchange. A deadline that falls after the timer's current one
/// leaves it alone (firing early, it is moved on), so back-to-back requests
/// with the same timeouts register no timer.
#[derive(Default)]
pub(crate) struct ConnTimer {
    /// Made at first use, then only moved.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl ConnTimer {
    /// Completes once `deadline` has passed.
    async fn reached(&mut self, deadline: tokio::time::Instant) {
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() > deadline || sleep.is_elapsed() {
            sleep.as_mut().reset(deadline);
        }
        loop {
            sleep.as_mut().await;
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            sleep.as_mut().reset(deadline);
        }
    }
}
