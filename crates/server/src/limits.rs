//! What one client may hold: time and room for request bodies, a share of
//! the server's connections, and the process's file limit.
//!
//! - Bodies the server reads itself (the REST API, the dashboard's forms)
//!   are read whole by [`bound_body`] before any handler runs: at most
//!   [`BodyLimits::max_size`] bytes (else 413), all of it within
//!   [`BodyLimits::timeout`] from the end of the head (else 408). Both
//!   answers close the connection.
//! - `/run` bodies are streamed to the upstream and may be large or long:
//!   no size limit, and the body timeout is an *inactivity* timeout, reset
//!   by every read that brings bytes (a long upload that keeps moving is
//!   never cut; one that stalls for the timeout is, with a 408 when nothing
//!   was answered yet). The app's own timeout still bounds the whole
//!   exchange on the hand-written path.
//! - [`ConnLimit`] caps the connections of one server across its worker
//!   threads. Beyond the cap a connection is accepted and answered
//!   `503` with our JSON error, `retry-after: 1` and `connection: close`
//!   ([`ConnLimit::refuse`]); over TLS it is closed without a word (a
//!   handshake costs more than the refusal is worth).
//! - [`raise_file_limit`] lifts the soft `RLIMIT_NOFILE` to the hard one at
//!   start, and [`connection_cap`] keeps the cap within what the file limit
//!   can hold (two descriptors per connection: the client's and an
//!   upstream's), so the server refuses politely before `accept` fails.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::ApiError;

/// Descriptors kept aside for everything but client connections (the
/// database, listeners, log files).
const RESERVED_FDS: u64 = 64;
/// Refusals under way at once (each holds its socket up to
/// [`REFUSAL_LINGER`]); beyond, an extra connection is closed at once.
const MAX_REFUSING: usize = 256;
/// How long a refused connection is kept to let the client read the 503.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// How long and how large a request body may be.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// For bodies the server reads: the whole body; for `/run` bodies: the
    /// longest pause between two reads.
    pub timeout: Duration,
    /// The largest body the server reads itself (not `/run` bodies).
    pub max_size: usize,
}

impl BodyLimits {
    /// The bounds in `config`.
    pub fn from_config(config: &crate::Config) -> BodyLimits {
        BodyLimits {
            timeout: config.body_timeout,
            max_size: config.max_body_size,
        }
    }
}

/// The 413 answer.
pub fn too_large(max: usize) -> ApiError {
    ApiError::Status {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: "body_too_large",
        detail: format!("The request body is larger than the {max} bytes this endpoint takes"),
    }
}

/// The 408 answer.
pub fn body_timed_out(timeout: Duration) -> ApiError {
    ApiError::Status {
        status: StatusCode::REQUEST_TIMEOUT,
        code: "body_timeout",
        detail: format!(
            "The request body did not arrive in time (limit: {} ms); send it without pauses",
            timeout.as_millis()
        ),
    }
}

/// The largest input a queued request may have (or `--max-body-size`,
/// when larger).
pub const QUEUE_MAX_BODY: usize = 16 * 1024 * 1024;

/// The router's middleware for request bodies (see the module docs).
pub async fn bound_body(State(limits): State<BodyLimits>, req: Request, next: Next) -> Response {
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    if req.uri().path().starts_with("/run/") {
        let timed_out = Arc::new(AtomicBool::new(false));
        let req = req.map(|b| Body::new(TimedBody::new(b, limits.timeout, timed_out.clone())));
        let response = next.run(req).await;
        // The gateway answers a request body that failed as the client's
        // fault (400, see `gateway::forward`); when the failure was this
        // stall, say so.
        if timed_out.load(Ordering::Relaxed) && response.status() == StatusCode::BAD_REQUEST {
            return body_timed_out(limits.timeout).closing();
        }
        return response;
    }
    // A queued request's input is kept whole, so it is read whole too,
    // under a larger bound than the API's own bodies.
    let limits = if req.uri().path().starts_with("/queue/") {
        BodyLimits {
            max_size: limits.max_size.max(QUEUE_MAX_BODY),
            ..limits
        }
    } else {
        limits
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| crate::h1::headers::content_length(v.as_bytes()));
    if declared.is_some_and(|n| n > limits.max_size as u64) {
        return too_large(limits.max_size).closing();
    }
    let (parts, body) = req.into_parts();
    let read = tokio::time::timeout(
        limits.timeout,
        Limited::new(body, limits.max_size).collect(),
    );
    let bytes = match read.await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<LengthLimitError>() => return too_large(limits.max_size).closing(),
        Ok(Err(_)) => {
            return ApiError::BadRequest("The request body was cut off or badly framed".into())
                .closing();
        }
        Err(_) => return body_timed_out(limits.timeout).closing(),
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// A body that fails when no frame arrives for `timeout`.
pub struct TimedBody<B> {
    /// The body.
    inner: B,
    /// The longest pause.
    timeout: Duration,
    /// Moved on by every frame.
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// Set when the body was cut off.
    timed_out: Arc<AtomicBool>,
}

impl<B> TimedBody<B> {
    /// Wraps `inner`; `timed_out` is set if it stalls.
    pub fn new(inner: B, timeout: Duration, timed_out: Arc<AtomicBool>) -> Self {
        TimedBody {
            inner,
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            timed_out,
        }
    }
}

impl<B> http_body::Body for TimedBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = tokio::time::Instant::now() + this.timeout;
                this.sleep.as_mut().reset(next);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.timed_out.store(true, Ordering::Relaxed);
                    Poll::Ready(Some(Err("the request body stalled".into())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The connections of one server, across its workers.
#[derive(Debug)]
pub struct ConnLimit {
    /// Connections being served.
    active: AtomicUsize,
    /// Refusals under way.
    refusing: AtomicUsize,
    /// The cap.
    max: usize,
}

/// A connection's place under the cap, given back when dropped.
#[derive(Debug)]
pub struct ConnSlot(Arc<ConnLimit>);

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ConnLimit {
    /// At most `max` connections at once (at least one).
    pub fn new(max: usize) -> Arc<ConnLimit> {
        Arc::new(ConnLimit {
            active: AtomicUsize::new(0),
            refusing: AtomicUsize::new(0),
            max: max.max(1),
        })
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// A place for one more connection, if there is room.
    pub fn try_acquire(self: &Arc<Self>) -> Option<ConnSlot> {
        let taken = self
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            });
        taken.ok().map(|_| ConnSlot(self.clone()))
    }

    /// Turns away a connection beyond the cap: a 503 on plain HTTP (read
    /// out for a moment so that closing does not reset it before the
    /// client reads the answer), a bare close over TLS or when too many
    /// refusals are already under way.
    pub fn refuse(self: &Arc<Self>, mut tcp: TcpStream, tls: bool) {
        let busy = self.refusing.fetch_add(1, Ordering::AcqRel) >= MAX_REFUSING;
        if tls || busy {
            self.refusing.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let limit = self.clone();
        tokio::spawn(async move {
            let answer = refusal();
            let linger = async {
                tcp.write_all(&answer).await?;
                tcp.shutdown().await?;
                let mut sink = [0u8; 1024];
                while tcp.read(&mut sink).await? > 0 {}
                Ok::<(), std::io::Error>(())
            };
            let _ = tokio::time::timeout(REFUSAL_LINGER, linger).await;
            limit.refusing.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

/// The whole 503 answer, on the wire.
fn refusal() -> Vec<u8> {
    let body = serde_json::json!({
        "detail": "The server is at its connection limit; retry shortly",
        "code": "too_many_connections",
    })
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Timing bounds and the connection cap for [`crate::front::serve`].
#[derive(Debug, Clone)]
pub struct FrontLimits {
    /// Idle time between requests, and time to send a head.
    pub idle_timeout: Duration,
    /// The longest pause inside a `/run` body on the hand-written path.
    pub body_timeout: Duration,
    /// The server's connections (shared by its workers).
    pub connections: Arc<ConnLimit>,
    /// Whether model calls may take the hand-written path
    /// ([`crate::Config::hand_path`]).
    pub hand_path: bool,
}

impl FrontLimits {
    /// The bounds in `config`, with a new connection cap (to share among
    /// the server's workers) kept within the open-file limit.
    pub fn from_config(config: &crate::Config) -> FrontLimits {
        let files = file_limit();
        let cap = connection_cap(config.max_connections, files);
        if cap < config.max_connections {
            tracing::warn!(
                configured = config.max_connections,
                cap,
                open_file_limit = files,
                "the open-file limit lowers the connection cap"
            );
        }
        tracing::info!(max_connections = cap, "connection cap");
        FrontLimits {
            idle_timeout: config.idle_timeout,
            body_timeout: config.body_timeout,
            connections: ConnLimit::new(cap),
            hand_path: config.hand_path,
        }
    }
}

/// The soft limit on open files, if the platform tells.
pub fn file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, getrlimit};
        getrlimit(Resource::Nofile).current
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Raises the soft limit on open files to the hard one; returns the soft
/// limit in force afterwards (`None`: unlimited or unknown).
pub fn raise_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        if limit.current.is_some() && limit.current != limit.maximum {
            let raised = Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            };
            if let Err(e) = setrlimit(Resource::Nofile, raised) {
                tracing::warn!(error = %e, "cannot raise the open-file limit");
            }
        }
    }
    file_limit()
}

/// `configured`, lowered if the file limit cannot hold that many
/// connections (two descriptors each, plus a reserve).
pub fn connection_cap(configured: usize, file_limit: Option<u64>) -> usize {
    let Some(files) = file_limit else {
        return configured.max(1);
    };
    let fit = usize::try_from(files.saturating_sub(RESERVED_FDS) / 2).unwrap_or(usize::MAX);
    configured.min(fit).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_fits_the_file_limit() {
        assert_eq!(connection_cap(10_000, Some(1024)), 480);
        assert_eq!(connection_cap(100, Some(1024)), 100);
        assert_eq!(connection_cap(100, None), 100);
        assert_eq!(connection_cap(100, Some(10)), 1);
    }

    #[test]
    fn slots_are_given_back() {
        let limit = ConnLimit::new(2);
        let a = limit.try_acquire().unwrap();
        let _b = limit.try_acquire().unwrap();
        assert!(limit.try_acquire().is_none());
        drop(a);
        assert!(limit.try_acquire().is_some());
    }
}
