//! What a connection holds between requests: its socket, not its buffers.
//!
//! A connection's buffers (bytes read from the client, the upstream's head
//! being written, the client's response head) are needed only while a
//! request is under way. A connection that stays quiet for [`GRACE`] after
//! a request gives them back, and a plain TCP connection then waits for
//! readability holding none; the next request allocates them again. A busy
//! keep-alive connection keeps its set from one request to the next, so the
//! hot path allocates nothing. Over TLS the read itself waits (rustls may
//! hold bytes the socket no longer shows), so a quiet TLS connection keeps
//! its read buffer and gives back the rest.

use std::io;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::READ_ROOM;

/// How long a connection may be quiet between requests before it gives
/// its buffers back.
pub(super) const GRACE: Duration = Duration::from_secs(1);

/// A client connection's stream, as [`super::Conn::serve`] waits on it.
pub(crate) trait ClientIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Whether it can wait for the next request without a read buffer.
    const WAITS_BARE: bool;
    /// Ready once a read would not wait (used when `WAITS_BARE`).
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl ClientIo for TcpStream {
    const WAITS_BARE: bool = true;
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_read_ready(cx)
    }
}

impl ClientIo for TlsStream<TcpStream> {
    const WAITS_BARE: bool = false;
    fn poll_readable(&self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A connection's buffers while a request is under way; none (no
/// capacity) once it has been quiet for [`GRACE`].
#[derive(Default)]
pub(super) struct Bufs {
    /// Bytes read from the client not yet used.
    pub(super) read: Vec<u8>,
    /// The upstream's head (and a body in hand).
    pub(super) req_out: Vec<u8>,
    /// The client's response head and body pieces.
    pub(super) resp_out: Vec<u8>,
}

impl Bufs {
    /// Whether it holds the response buffers (a request is under way, or
    /// ended less than [`GRACE`] ago).
    pub(super) fn held(&self) -> bool {
        self.req_out.capacity() != 0
    }

    /// Allocates the response buffers unless they are held. The read
    /// buffer grows as it reads (see [`super::Conn::serve`]).
    pub(super) fn take(&mut self) {
        if self.held() {
            return;
        }
        self.req_out = Vec::with_capacity(4096);
        self.resp_out = Vec::with_capacity(READ_ROOM);
        #[cfg(feature = "testing")]
        HELD.with(|h| h.set(h.get() + 1));
    }

    /// The read buffer, for the hand-off to hyper; the rest is freed.
    pub(super) fn into_read(mut self) -> Vec<u8> {
        self.release(true);
        std::mem::take(&mut self.read)
    }

    /// Frees the buffers, the read buffer too (it must hold nothing
    /// unread) unless `keep_read`.
    pub(super) fn release(&mut self, keep_read: bool) {
        #[cfg(feature = "testing")]
        if self.held() {
            // On a multi-threaded runtime a connection may end on another
            // thread than the one it took its buffers on: the count is then
            // meaningless (tests read it on current-thread runtimes only),
            // but must not overflow.
            HELD.with(|h| h.set(h.get().saturating_sub(1)));
        }
        self.req_out = Vec::new();
        self.resp_out = Vec::new();
        if !keep_read {
            self.read = Vec::new();
        }
    }
}

#[cfg(feature = "testing")]
thread_local! {
    /// Sets held by connections served on this thread.
    static HELD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cfg(feature = "testing")]
impl Drop for Bufs {
    fn drop(&mut self) {
        if self.held() {
            // On a multi-threaded runtime a connection may end on another
            // thread than the one it took its buffers on: the count is then
            // meaningless (tests read it on current-thread runtimes only),
            // but must not overflow.
            HELD.with(|h| h.set(h.get().saturating_sub(1)));
        }
    }
}

/// How many buffer sets the connections served on the calling thread hold
/// (tests: a current-thread runtime serves every connection on its one
/// thread; feature `testing`).
#[cfg(feature = "testing")]
pub fn buffers_held() -> usize {
    HELD.with(|h| h.get())
}
