//! The front door: every accepted connection starts here.
//!
//! Model calls are the hot path, so a plain HTTP/1.1 request for `/run/…`
//! with an `Authorization` header is forwarded by hand on the connection's
//! own task: its head is parsed in place (httparse), the caller is
//! authenticated and the app found exactly as the router would, and the
//! rewritten head goes to a kept-alive connection to the upstream
//! ([`crate::gateway::UpConn`]). Bodies are copied through the connection's
//! buffers as they arrive, never held whole; a chunked body passes through
//! as it is but for its trailers, its framing checked strictly so that both
//! ends agree where it stops. The rules both paths share (which paths,
//! cookies, lengths and upstream framings pass) are in
//! [`crate::forward_rules`].
//!
//! Everything else (other paths, HTTP/1.0, `Expect`, `Upgrade`, no
//! `Authorization` header, an `https` upstream, a head httparse refuses)
//! hands the connection, with the bytes already read, to hyper and the axum
//! router for the rest of its life. Both paths give the same answers: the
//! same [`ApiError`]s, the same header rules (see [`crate::gateway`]).
//!
//! Layout: [`serve`] accepts (and does TLS); [`Conn::serve`] reads request
//! heads and picks a path; [`Conn::prepare`] checks a `/run` request and
//! writes the upstream's head; [`Conn::forward`] runs the exchange with the
//! upstream ([`crate::chunked`] follows chunked framing); [`Rewind`] replays the
//! bytes already read to hyper.

use std::future::Future;
use std::io::{self, Write as _};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::response::{IntoResponse, Response};
use fal_core::Principal;
use fal_store::AppRecord;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::auth::AppState;
use crate::chunked::Chunked;
use crate::error::ApiError;
use crate::forward_rules as rules;
use crate::gateway::{
    GatewayError, HOP_BY_HOP, UpConn, X_FAL_KEY_ID, X_FAL_REQUEST_ID, X_FAL_USER_ID,
    split_run_path, split_upstream,
};

/// The longest request or response head read before giving up on it.
const MAX_HEAD: usize = 64 * 1024;
/// Header lines parsed per head; more, and hyper takes the request.
const MAX_HEADERS: usize = 64;
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
    limits: crate::limits::FrontLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a sender; when all are gone, all are done.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let tcp = match accepted {
                    Ok((tcp, _)) => tcp,
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
                    stop: stop_rx.clone(),
                    idle_timeout: limits.idle_timeout,
                    body_timeout: limits.body_timeout,
                    hand_path: limits.hand_path,
                    _slot: slot,
                    _alive: alive_tx.clone(),
                };
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => conn.serve(tcp).await,
                        Some(acceptor) => {
                            match tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(tcp)).await {
                                Ok(Ok(stream)) => conn.serve(stream).await,
                                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                                Err(_) => tracing::debug!("TLS handshake timed out"),
                            }
                        }
                    }
                });
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
struct Conn {
    /// What the fast path authenticates and forwards with.
    state: AppState,
    /// Everything else.
    router: Router,
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
    _slot: crate::limits::ConnSlot,
    /// Held for as long as the connection lives (see [`serve`]).
    _alive: mpsc::Sender<()>,
}

/// The connection's one timer, for the wait for each request head and each
/// upstream exchange. A deadline that falls after the timer's current one
/// leaves it alone (firing early, it is moved on), so back-to-back requests
/// with the same timeouts register no timer.
#[derive(Default)]
struct ConnTimer {
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

/// How a request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body.
    Empty,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the sender closes (responses only).
    UntilClose,
}

impl Framing {
    /// The body's length if all of it is among the `available` bytes
    /// that follow its head (`Some(0)` for no body); `None` if not, or if
    /// only reading it through would tell.
    fn all_in(self, available: usize) -> Option<usize> {
        match self {
            Framing::Empty => Some(0),
            Framing::Length(n) => usize::try_from(n).ok().filter(|n| *n <= available),
            Framing::Chunked | Framing::UntilClose => None,
        }
    }
}

/// What [`Conn::prepare`] decided about a request head.
enum Prepared {
    /// Let hyper and the router take the connection.
    HandOff,
    /// Answer without asking an upstream (an error).
    Answer {
        /// The answer.
        response: Response,
        /// Bytes of the request head.
        head_len: usize,
        /// The request body's framing (to skip it, or to close).
        body: Framing,
        /// Method and path, for the log line.
        log: Option<LogLine>,
        /// Close after the answer (the client asked, or the request's
        /// framing cannot be trusted).
        close: bool,
    },
    /// Forward: the upstream's head is ready in `req_out`.
    Forward(Forward),
}

/// A request on its way to an upstream.
struct Forward {
    /// Bytes of the request head in the client buffer.
    head_len: usize,
    /// The request body's framing.
    body: Framing,
    /// The app (its upstream URL and timeout).
    app: Arc<AppRecord>,
    /// The request id, sent both ways.
    request_id: [u8; 36],
    /// `HEAD`: the response has no body whatever its headers say.
    head_method: bool,
    /// Safe to send twice (RFC 9110): may be resent when a kept connection
    /// closes without answering.
    idempotent: bool,
    /// The client asked to close after this response.
    close: bool,
    /// Method and path, for the log line.
    log: Option<LogLine>,
}

/// How an exchange with an upstream failed.
enum Failure {
    /// The client went away: close, no answer.
    Client,
    /// The client broke its body's chunked framing: 400, then close.
    BadBody,
    /// The client's body stalled longer than the body timeout (408, close).
    BodyTimeout,
    /// The upstream could not be reached or broke off (502).
    Upstream(String),
    /// The upstream's address is one this app may not use (502 saying why).
    Refused(String),
}

/// The response head an upstream sent, rewritten for the client.
struct ResponseHead {
    /// Bytes of the upstream's head in its buffer.
    head_len: usize,
    /// The body's framing as the upstream sent it.
    framing: Framing,
    /// The upstream connection may be kept once the body has been read.
    reusable: bool,
    /// The status, for the log line.
    status: u16,
}

impl Conn {
    /// Serves requests on `io` until the client closes, asks to close, the
    /// server stops, or the connection is handed to hyper.
    async fn serve<IO>(self, mut io: IO)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut buf: Vec<u8> = Vec::with_capacity(READ_ROOM);
        let mut req_out: Vec<u8> = Vec::with_capacity(4096);
        let mut resp_out: Vec<u8> = Vec::with_capacity(READ_ROOM);
        // Times the wait for each request head and each upstream exchange.
        let mut timer = ConnTimer::default();
        // Ends an idle wait when the server stops. Made once: registering
        // a fresh waiter for every request head costs more than polling
        // the same one again.
        let mut stop = self.stop.clone();
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        tokio::pin!(stopped);
        loop {
            // The next head must be here by then (it shares the timer with
            // upstream exchanges; see `forward`).
            let head_deadline = tokio::time::Instant::now() + self.idle_timeout;
            let prepared = loop {
                if !buf.is_empty() {
                    match self.prepare(&buf, &mut req_out).await {
                        Some(p) => break p,
                        None if buf.len() > MAX_HEAD => break Prepared::HandOff,
                        None => {}
                    }
                }
                if buf.capacity() - buf.len() < READ_ROOM / 4 {
                    buf.reserve(READ_ROOM);
                }
                let idle = buf.is_empty();
                let read = tokio::select! {
                    biased;
                    read = io.read_buf(&mut buf) => read,
                    () = &mut stopped, if idle => return,
                    // Idle too long, or too slow a head.
                    () = timer.reached(head_deadline) => return,
                };
                match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            };
            let next = match prepared {
                Prepared::HandOff => return self.hand_off(io, buf).await,
                Prepared::Answer {
                    response,
                    head_len,
                    body,
                    log,
                    close,
                } => {
                    // The body can be skipped only if it is all here.
                    let skip = body.all_in(buf.len() - head_len);
                    let close = close || skip.is_none() || *self.stop.borrow();
                    let status = response.status().as_u16();
                    if write_response(&mut io, &mut resp_out, response, close)
                        .await
                        .is_err()
                    {
                        return;
                    }
                    log_request(&log, status);
                    if let Some(n) = skip {
                        buf.drain(..head_len + n);
                    }
                    !close
                }
                Prepared::Forward(f) => {
                    self.forward(
                        &mut io,
                        &mut buf,
                        &mut req_out,
                        &mut resp_out,
                        &mut timer,
                        f,
                    )
                    .await
                }
            };
            if !next {
                return;
            }
        }
    }

    /// Looks at the request head at the start of `buf`. `None`: not all of
    /// it is here yet. Otherwise decides its path; for a request to
    /// forward, writes the upstream's head into `out`.
    async fn prepare(&self, buf: &[u8], out: &mut Vec<u8>) -> Option<Prepared> {
        if !self.hand_path {
            return Some(Prepared::HandOff);
        }
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let head_len = match req.parse_with_uninit_headers(buf, &mut headers) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return None,
            Err(_) => return Some(Prepared::HandOff),
        };
        let (Some(method), Some(target), Some(1)) = (req.method, req.path, req.version) else {
            return Some(Prepared::HandOff);
        };
        if method == "CONNECT" {
            return Some(refusal(rules::connect_refused(), head_len));
        }
        if !target.starts_with("/run/") {
            return Some(Prepared::HandOff);
        }
        let mut authorization = None;
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut close = false;
        for h in req.headers.iter() {
            let name = h.name.as_bytes();
            if name.eq_ignore_ascii_case(b"authorization") {
                if authorization.is_some() {
                    return Some(Prepared::HandOff);
                }
                authorization = Some(h.value);
            } else if name.eq_ignore_ascii_case(b"content-length") {
                match (rules::content_length(h.value), length) {
                    (Some(n), None) => length = Some(n),
                    (Some(n), Some(m)) if n == m => {}
                    _ => return Some(refusal(rules::bad_length(), head_len)),
                }
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                if chunked || !h.value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                    return Some(Prepared::HandOff);
                }
                chunked = true;
            } else if name.eq_ignore_ascii_case(b"expect") || name.eq_ignore_ascii_case(b"upgrade")
            {
                return Some(Prepared::HandOff);
            } else if name.eq_ignore_ascii_case(b"connection") {
                close |= tokens(h.value).any(|t| t.eq_ignore_ascii_case(b"close"));
            }
        }
        let body = match (length, chunked) {
            (Some(_), true) => return Some(Prepared::HandOff),
            (Some(0), false) | (None, false) => Framing::Empty,
            (Some(n), false) => Framing::Length(n),
            (None, true) => Framing::Chunked,
        };
        let Some(authorization) = authorization else {
            // A dashboard cookie, or nothing: the router decides.
            return Some(Prepared::HandOff);
        };
        let path = target.split_once('?').map_or(target, |(p, _)| p);
        let log = tracing::enabled!(tracing::Level::INFO).then(|| LogLine {
            method: method.to_owned(),
            path: path.to_owned(),
            started: Instant::now(),
        });
        let answer = |e: ApiError, log| {
            Some(Prepared::Answer {
                response: e.into_response(),
                head_len,
                body,
                log,
                close,
            })
        };

        let principal = match self.authenticate(authorization).await {
            Ok(p) => p,
            Err(e) => return answer(e, log),
        };
        let Some(run) = split_run_path(path) else {
            return answer(GatewayError::BadPath.into(), log);
        };
        let tail = run.tail;
        if !rules::tail_is_safe(tail) {
            return answer(rules::escaping_path(), log);
        }
        let found = self.state.apps().find_keyed(run.app, run.owner, run.name);
        let app = match found.await {
            Ok(Some(app)) => app,
            Ok(None) => return answer(GatewayError::UnknownApp(run.app.to_owned()).into(), log),
            Err(e) => return answer(e.into(), log),
        };
        let Some(upstream) = split_upstream(&app.upstream) else {
            return Some(Prepared::HandOff); // https: hyper's client with rustls
        };
        let request_id = self.state.request_ids().next_bytes();

        // The upstream's head: request line, Host, the client's end-to-end
        // headers, who is calling, and the body's framing.
        out.clear();
        out.extend_from_slice(method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(upstream.base.as_bytes());
        let query = &target[path.len()..];
        if upstream.base.is_empty() && tail.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(tail.as_bytes());
        out.extend_from_slice(query.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        out.extend_from_slice(upstream.authority.as_bytes());
        out.extend_from_slice(b"\r\n");
        let connection_named = ConnectionNamed::of(req.headers);
        for h in req.headers.iter() {
            let name = h.name.as_bytes();
            if name.eq_ignore_ascii_case(b"cookie") {
                // Our own cookies stay here; others pass as they are.
                if let Some(kept) = crate::cookies::without_ours(h.value) {
                    put_header(out, name, &kept);
                }
                continue;
            }
            if is_hop_by_hop(name)
                || connection_named.names(name)
                || [
                    "authorization",
                    "host",
                    "content-length",
                    X_FAL_USER_ID,
                    X_FAL_KEY_ID,
                    X_FAL_REQUEST_ID,
                ]
                .iter()
                .any(|n| n.as_bytes().eq_ignore_ascii_case(name))
            {
                continue;
            }
            put_header(out, name, h.value);
        }
        put_identity(out, &principal, &request_id);
        put_framing(out, body);
        out.extend_from_slice(b"\r\n");
        Some(Prepared::Forward(Forward {
            head_len,
            body,
            app,
            request_id,
            head_method: method == "HEAD",
            idempotent: matches!(
                method,
                "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE"
            ),
            close,
            log,
        }))
    }

    /// The caller behind an `Authorization` header, as the router's
    /// [`crate::auth::Caller`] would find it.
    async fn authenticate(&self, value: &[u8]) -> Result<Principal, ApiError> {
        // What `HeaderValue::to_str` accepts: visible ASCII, space and tab.
        // Folded without stopping early, so that it runs as vector code.
        let visible = value.iter().fold(true, |ok, &b| {
            ok & ((b == b'\t') | (b' '..0x7f).contains(&b))
        });
        if !visible {
            return Err(ApiError::MalformedKey);
        }
        let value = std::str::from_utf8(value).map_err(|_| ApiError::MalformedKey)?;
        Ok(self.state.verifier().authenticate(Some(value)).await?)
    }

    /// Forwards one request and its answer. Returns whether the client
    /// connection can take another request.
    async fn forward<IO>(
        &self,
        io: &mut IO,
        buf: &mut Vec<u8>,
        req_out: &mut Vec<u8>,
        resp_out: &mut Vec<u8>,
        timer: &mut ConnTimer,
        f: Forward,
    ) -> bool
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let Some(upstream) = split_upstream(&f.app.upstream) else {
            return false;
        };
        buf.drain(..f.head_len);
        // Chunks already broken in the bytes that came with the head are
        // refused before the upstream sees any of the request.
        if f.body == Framing::Chunked && Chunked::default().scan(buf).is_err() {
            let response = rules::bad_chunked().into_response();
            return self.answer_failure(io, resp_out, response, &f, true).await;
        }
        // A body that is all here goes out with the head, and can be sent
        // again on a fresh connection if a kept one turns out closed.
        let in_hand = f.body.all_in(buf.len());
        let whole = in_hand.is_some();
        if let Some(n) = in_hand {
            req_out.extend_from_slice(&buf[..n]);
            buf.drain(..n);
        }
        let wait = Duration::from_millis(u64::try_from(f.app.timeout_ms).unwrap_or(0));
        let pool = self.state.upstream();
        let exchange = async {
            let mut may_reuse = true;
            loop {
                let idle = if may_reuse {
                    pool.take_idle_for(upstream.authority, &self.state, &f.app)
                        .await
                } else {
                    None
                };
                let (mut up, reused) = match idle {
                    Some(conn) => (conn, true),
                    None => match UpConn::connect(&upstream, &self.state, &f.app).await {
                        Ok(conn) => (conn, false),
                        Err(e) if crate::reach::refusal_in(&e).is_some() => {
                            return Err(Failure::Refused(e.to_string()));
                        }
                        Err(e) => {
                            return Err(Failure::Upstream(format!(
                                "connect {}: {e}",
                                upstream.authority
                            )));
                        }
                    },
                };
                let retry = reused && whole;
                if let Err(e) = up.stream.write_all(req_out).await {
                    if retry {
                        may_reuse = false;
                        continue;
                    }
                    return Err(Failure::Upstream(e.to_string()));
                }
                if !whole {
                    send_body(io, buf, &mut up, f.body, self.body_timeout).await?;
                }
                // A kept connection closed without a byte of answer: the
                // upstream most likely dropped it idle as the request went
                // out. Only a request that is safe to repeat goes again.
                match read_response_head(&mut up, f.head_method, resp_out).await {
                    Ok(head) => return Ok((up, head)),
                    Err(_) if retry && f.idempotent && up.buf.is_empty() => may_reuse = false,
                    Err(e) => return Err(Failure::Upstream(e)),
                }
            }
        };
        let app_name = || format!("{}/{}", f.app.owner, f.app.name);
        let rid = || String::from_utf8_lossy(&f.request_id).into_owned();
        let failed = |e: ApiError| (e.into_response(), !whole);
        // The app's timeout, on the connection's one timer.
        let deadline = tokio::time::Instant::now() + wait;
        let outcome = tokio::select! {
            biased;
            done = exchange => Ok(done),
            () = timer.reached(deadline) => Err(()),
        };
        let (mut up, head) = match outcome {
            Ok(Ok(done)) => done,
            Ok(Err(Failure::Client)) => return false,
            Ok(Err(Failure::BadBody)) => {
                let response = rules::bad_chunked().into_response();
                return self.answer_failure(io, resp_out, response, &f, true).await;
            }
            Ok(Err(Failure::BodyTimeout)) => {
                let response = crate::limits::body_timed_out(self.body_timeout).closing();
                return self.answer_failure(io, resp_out, response, &f, true).await;
            }
            Ok(Err(Failure::Refused(why))) => {
                tracing::warn!(app = %app_name(), request_id = %rid(), %why, "upstream refused");
                let (response, close) = failed(GatewayError::Refused(why).into());
                return self.answer_failure(io, resp_out, response, &f, close).await;
            }
            Ok(Err(Failure::Upstream(e))) => {
                tracing::warn!(app = %app_name(), request_id = %rid(), error = %e, "upstream unreachable");
                let (response, close) = failed(GatewayError::Unreachable.into());
                return self.answer_failure(io, resp_out, response, &f, close).await;
            }
            Err(_) => {
                tracing::warn!(app = %app_name(), request_id = %rid(), "upstream timed out");
                let (response, close) = failed(GatewayError::Timeout(f.app.timeout_ms).into());
                return self.answer_failure(io, resp_out, response, &f, close).await;
            }
        };

        // The response: head, then the body as it comes.
        let close = f.close || *self.stop.borrow();
        put_header(resp_out, X_FAL_REQUEST_ID.as_bytes(), &f.request_id);
        put_framing(resp_out, head.framing);
        if close {
            resp_out.extend_from_slice(b"connection: close\r\n");
        }
        resp_out.extend_from_slice(b"\r\n");
        up.buf.drain(..head.head_len);
        let finished = send_response_body(io, &mut up, head.framing, resp_out).await;
        match finished {
            Ok(()) => {
                log_request(&f.log, head.status);
                if head.reusable && up.buf.is_empty() {
                    pool.put_back(upstream.authority, up);
                }
                !close
            }
            // Nothing has reached the client yet: it gets a 502 instead.
            Err(BodyFailure::Unsent(e)) => {
                tracing::warn!(app = %app_name(), request_id = %rid(), error = %e, "upstream broke its response");
                let (response, _) = failed(GatewayError::Unreachable.into());
                self.answer_failure(io, resp_out, response, &f, true).await
            }
            Err(BodyFailure::Sent) => {
                log_request(&f.log, head.status);
                false
            }
        }
    }

    /// Answers a failed exchange (502/504) with the request id.
    async fn answer_failure<IO>(
        &self,
        io: &mut IO,
        out: &mut Vec<u8>,
        mut response: Response,
        f: &Forward,
        close: bool,
    ) -> bool
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        if let Ok(v) = axum::http::HeaderValue::from_bytes(&f.request_id) {
            response.headers_mut().insert(X_FAL_REQUEST_ID, v);
        }
        let status = response.status().as_u16();
        let close = close || f.close || *self.stop.borrow();
        let written = write_response(io, out, response, close).await;
        log_request(&f.log, status);
        written.is_ok() && !close
    }

    /// Gives the connection to hyper and the router, `read` first.
    async fn hand_off<IO>(self, io: IO, read: Vec<u8>)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(Rewind {
            read,
            pos: 0,
            inner: io,
        });
        let service = TowerToHyperService::new(self.router.clone());
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(self.idle_timeout);
        let conn = builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(conn);
        let mut stop = self.stop.clone();
        let mut stopping = false;
        loop {
            tokio::select! {
                done = conn.as_mut() => {
                    if let Err(e) = done {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = stop.wait_for(|s| *s), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Sends the rest of a request body that was not all in `buf` when the
/// head went out, reading more from the client as needed; a client silent
/// for `pause` is cut off (an inactivity timeout, so that a long upload that
/// keeps moving goes through). Leaves in `buf` whatever follows the body (a
/// pipelined request).
async fn send_body<IO>(
    io: &mut IO,
    buf: &mut Vec<u8>,
    up: &mut UpConn,
    framing: Framing,
    pause: Duration,
) -> Result<(), Failure>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => 0,
    };
    let mut chunked = Chunked::default();
    let upstream_failed = |e: io::Error| Failure::Upstream(e.to_string());
    loop {
        let (take, pass) = match framing {
            Framing::Length(_) => {
                let n = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
                (n, n)
            }
            Framing::Chunked => chunked.scan(buf).map_err(|()| Failure::BadBody)?,
            Framing::Empty | Framing::UntilClose => return Ok(()),
        };
        if pass > 0 {
            up.stream
                .write_all(&buf[..pass])
                .await
                .map_err(upstream_failed)?;
        }
        buf.drain(..take);
        left = left.saturating_sub(take as u64);
        let done = match framing {
            Framing::Length(_) => left == 0,
            _ => chunked.done(),
        };
        if done {
            if framing == Framing::Chunked {
                // The end of the body, its trailers (if any) left out.
                up.stream
                    .write_all(b"\r\n")
                    .await
                    .map_err(upstream_failed)?;
            }
            return Ok(());
        }
        if buf.capacity() - buf.len() < READ_ROOM / 4 {
            buf.reserve(READ_ROOM);
        }
        match tokio::time::timeout(pause, io.read_buf(buf)).await {
            Err(_) => return Err(Failure::BodyTimeout),
            Ok(Ok(0) | Err(_)) => return Err(Failure::Client),
            Ok(Ok(_)) => {}
        }
    }
}

/// Reads the upstream's response head (skipping `1xx` interim answers) and
/// writes the client's version of it into `out`, without the framing
/// headers, which the caller adds.
async fn read_response_head(
    up: &mut UpConn,
    head_method: bool,
    out: &mut Vec<u8>,
) -> Result<ResponseHead, String> {
    loop {
        if !up.buf.is_empty() {
            let mut headers =
                [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut []);
            let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
                &mut resp,
                &up.buf,
                &mut headers,
            );
            match parsed {
                Ok(httparse::Status::Complete(head_len)) => {
                    let status = resp.code.unwrap_or(0);
                    if (100..200).contains(&status) {
                        if status == 101 {
                            return Err("the upstream switched protocols unasked".into());
                        }
                        up.buf.drain(..head_len);
                        continue;
                    }
                    return rewrite_response_head(&resp, head_len, head_method, out);
                }
                Ok(httparse::Status::Partial) if up.buf.len() <= MAX_HEAD => {}
                Ok(httparse::Status::Partial) => return Err("response head too large".into()),
                Err(e) => return Err(format!("bad response head: {e}")),
            }
        }
        if up.buf.capacity() - up.buf.len() < READ_ROOM / 4 {
            up.buf.reserve(READ_ROOM);
        }
        match up.stream.read_buf(&mut up.buf).await {
            Ok(0) => return Err("the upstream closed the connection".into()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The client's response head from the upstream's (see
/// [`read_response_head`]).
fn rewrite_response_head(
    resp: &httparse::Response<'_, '_>,
    head_len: usize,
    head_method: bool,
    out: &mut Vec<u8>,
) -> Result<ResponseHead, String> {
    let status = resp.code.unwrap_or(0);
    let mut length: Option<u64> = None;
    let mut transfer = false;
    let mut close = resp.version != Some(1);
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = rules::content_length(h.value).ok_or("bad Content-Length from the upstream")?;
            if length.is_some_and(|m| m != n) {
                return Err("conflicting Content-Length from the upstream".into());
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            close |= tokens(h.value).any(|t| t.eq_ignore_ascii_case(b"close"));
        }
    }
    // Both framings, or a coding but chunked: refused (502), and the
    // connection, its framing in doubt, is not kept.
    let chunked = transfer && {
        let te = resp
            .headers
            .iter()
            .filter(|h| h.name.as_bytes().eq_ignore_ascii_case(b"transfer-encoding"));
        rules::check_response_framing(te.map(|h| h.value), length.is_some())?
    };
    let no_content = status == 204 || status == 304;
    let framing = match (head_method || no_content, chunked, length) {
        (true, _, _) => Framing::Empty,
        (false, true, _) => Framing::Chunked,
        (false, false, Some(n)) => Framing::Length(n),
        (false, false, None) => Framing::UntilClose,
    };
    // A `HEAD` answer keeps the length a `GET` would have had; a 204/304
    // passes on no framing at all.
    let keep_length = head_method && !no_content;
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    put_decimal(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(resp.reason.unwrap_or_default().as_bytes());
    out.extend_from_slice(b"\r\n");
    let connection_named = ConnectionNamed::of(resp.headers);
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        let framing_header = name.eq_ignore_ascii_case(b"content-length") && !keep_length;
        if framing_header
            || name.eq_ignore_ascii_case(rules::NOSNIFF.0.as_bytes())
            || is_hop_by_hop(name)
            || name.eq_ignore_ascii_case(X_FAL_REQUEST_ID.as_bytes())
            || connection_named.names(name)
        {
            continue;
        }
        put_header(out, name, h.value);
    }
    put_header(
        out,
        rules::NOSNIFF.0.as_bytes(),
        rules::NOSNIFF.1.as_bytes(),
    );
    Ok(ResponseHead {
        head_len,
        framing,
        reusable: !close && framing != Framing::UntilClose,
        status,
    })
}

/// How sending a response body failed.
enum BodyFailure {
    /// Before a byte reached the client (the upstream broke its framing or
    /// closed early): the client can still be answered.
    Unsent(String),
    /// After: closing is all that is left.
    Sent,
}

/// Writes the response head in `out` and the body after it as it arrives
/// from the upstream: as is for a length or chunks (trailers left out),
/// re-chunked when the upstream marks the end by closing. `Ok` once the
/// body has ended.
async fn send_response_body<IO>(
    io: &mut IO,
    up: &mut UpConn,
    framing: Framing,
    out: &mut Vec<u8>,
) -> Result<(), BodyFailure>
where
    IO: AsyncWrite + Unpin,
{
    let mut sent = false;
    let result = relay_response_body(io, up, framing, out, &mut sent).await;
    result.map_err(|e| {
        if sent {
            BodyFailure::Sent
        } else {
            BodyFailure::Unsent(e.to_string())
        }
    })
}

/// [`send_response_body`]'s loop; `sent` turns true at the first write.
async fn relay_response_body<IO>(
    io: &mut IO,
    up: &mut UpConn,
    framing: Framing,
    out: &mut Vec<u8>,
    sent: &mut bool,
) -> io::Result<()>
where
    IO: AsyncWrite + Unpin,
{
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => 0,
    };
    let mut chunked = Chunked::default();
    let mut eof = false;
    loop {
        // Move what the upstream sent (up to the body's end) behind the head.
        let done = match framing {
            Framing::Empty => true,
            Framing::Length(_) => {
                let take = usize::try_from(left).map_or(up.buf.len(), |l| l.min(up.buf.len()));
                out.extend_from_slice(&up.buf[..take]);
                up.buf.drain(..take);
                left -= take as u64;
                left == 0
            }
            Framing::Chunked => {
                let (take, pass) = chunked
                    .scan(&up.buf)
                    .map_err(|()| io::Error::other("bad chunked body from the upstream"))?;
                out.extend_from_slice(&up.buf[..pass]);
                up.buf.drain(..take);
                if chunked.done() {
                    out.extend_from_slice(b"\r\n");
                }
                chunked.done()
            }
            Framing::UntilClose => {
                if !up.buf.is_empty() {
                    let _ = write!(out, "{:x}\r\n", up.buf.len());
                    out.extend_from_slice(&up.buf);
                    out.extend_from_slice(b"\r\n");
                    up.buf.clear();
                }
                if eof {
                    out.extend_from_slice(b"0\r\n\r\n");
                }
                eof
            }
        };
        if !out.is_empty() {
            *sent = true;
            io.write_all(out).await?;
            io.flush().await?;
            out.clear();
        }
        if done {
            return Ok(());
        }
        if up.buf.capacity() - up.buf.len() < READ_ROOM / 4 {
            up.buf.reserve(READ_ROOM);
        }
        match up.stream.read_buf(&mut up.buf).await {
            Ok(0) if framing == Framing::UntilClose => eof = true,
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Writes a whole (small) response made by the router's types: our own
/// answers, errors among them.
async fn write_response<IO>(
    io: &mut IO,
    out: &mut Vec<u8>,
    response: Response,
    close: bool,
) -> io::Result<()>
where
    IO: AsyncWrite + Unpin,
{
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    out.clear();
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\n",
        parts.status.as_u16(),
        parts.status.canonical_reason().unwrap_or("")
    );
    for (name, value) in &parts.headers {
        if !is_hop_by_hop(name.as_str().as_bytes()) && name != axum::http::header::CONTENT_LENGTH {
            put_header(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    if !parts.headers.contains_key(rules::NOSNIFF.0) {
        put_header(
            out,
            rules::NOSNIFF.0.as_bytes(),
            rules::NOSNIFF.1.as_bytes(),
        );
    }
    let _ = write!(out, "content-length: {}\r\n", body.len());
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    io.write_all(out).await?;
    io.flush().await
}

/// An answer to a request whose framing cannot be trusted (or that we do
/// not serve): the connection closes after it.
fn refusal(e: ApiError, head_len: usize) -> Prepared {
    Prepared::Answer {
        response: e.into_response(),
        head_len,
        body: Framing::Empty,
        log: None,
        close: true,
    }
}

/// What a request's log line needs, kept only when it will be written.
struct LogLine {
    /// The method.
    method: String,
    /// The path, without the query.
    path: String,
    /// When its head had been read.
    started: Instant,
}

/// The request log line, as the router's requests get
/// ([`crate::request_log`]).
fn log_request(log: &Option<LogLine>, status: u16) {
    if let Some(l) = log {
        crate::request_log::request(&l.method, &l.path, status, l.started);
    }
}

/// Writes `name: value\r\n`.
fn put_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Writes who is calling, for the upstream.
fn put_identity(out: &mut Vec<u8>, principal: &Principal, request_id: &[u8; 36]) {
    put_header(
        out,
        X_FAL_USER_ID.as_bytes(),
        principal.user_id.as_str().as_bytes(),
    );
    if let Some(k) = &principal.key_id {
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let text = k.as_uuid().hyphenated().encode_lower(&mut text);
        put_header(out, X_FAL_KEY_ID.as_bytes(), text.as_bytes());
    }
    put_header(out, X_FAL_REQUEST_ID.as_bytes(), request_id);
}

/// Whether a header belongs to one connection only.
fn is_hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|h| h.as_bytes().eq_ignore_ascii_case(name))
}

/// Writes the header that frames a body sent on: its length, or chunks
/// (a body that ends by closing is sent on in chunks).
fn put_framing(out: &mut Vec<u8>, framing: Framing) {
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            put_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked | Framing::UntilClose => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        Framing::Empty => {}
    }
}

/// Writes `n` in decimal.
fn put_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// The header names listed in a head's `Connection` headers: hop-by-hop
/// too. Looked up in place rather than collected, as every request and
/// response asks.
struct ConnectionNamed<'h, 'b> {
    /// The head's headers, if a `Connection` header among them lists a
    /// name beyond `close` and the fixed hop-by-hop ones (which go anyway):
    /// rare, so the common head is not searched again per header.
    headers: Option<&'h [httparse::Header<'b>]>,
}

impl<'h, 'b> ConnectionNamed<'h, 'b> {
    /// The names listed in `headers`.
    fn of(headers: &'h [httparse::Header<'b>]) -> Self {
        let more =
            Self::listed(headers).any(|t| !t.eq_ignore_ascii_case(b"close") && !is_hop_by_hop(t));
        ConnectionNamed {
            headers: more.then_some(headers),
        }
    }

    /// Whether `name` is listed (and not already hop-by-hop).
    fn names(&self, name: &[u8]) -> bool {
        self.headers
            .is_some_and(|headers| Self::listed(headers).any(|t| t.eq_ignore_ascii_case(name)))
    }

    /// The tokens of every `Connection` header.
    fn listed(headers: &'h [httparse::Header<'b>]) -> impl Iterator<Item = &'b [u8]> + 'h {
        headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("connection"))
            .flat_map(|h| tokens(h.value))
    }
}

/// The comma-separated tokens of a header value, trimmed.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// A connection whose first bytes were already read: replays them, then
/// reads on.
struct Rewind<IO> {
    /// Bytes read before hyper took over.
    read: Vec<u8>,
    /// How many of them hyper has had.
    pos: usize,
    /// The connection.
    inner: IO,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Rewind<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pos < this.read.len() {
            let n = out.remaining().min(this.read.len() - this.pos);
            out.put_slice(&this.read[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.read.len() {
                this.read = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, out)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Rewind<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls_split_for_the_pool() {
        use crate::gateway::UpstreamParts;
        assert_eq!(
            split_upstream("http://127.0.0.1:9000/v1/"),
            Some(UpstreamParts {
                authority: "127.0.0.1:9000",
                host: "127.0.0.1",
                port: 9000,
                base: "/v1"
            })
        );
        assert_eq!(
            split_upstream("http://[::1]/").map(|u| (u.host, u.port, u.base)),
            Some(("::1", 80, ""))
        );
        assert_eq!(
            split_upstream("http://[::1]:8080/a/b//").map(|u| (
                u.authority,
                u.host,
                u.port,
                u.base
            )),
            Some(("[::1]:8080", "::1", 8080, "/a/b"))
        );
        assert_eq!(
            split_upstream("http://models.internal").map(|u| (u.authority, u.port, u.base)),
            Some(("models.internal", 80, ""))
        );
        assert_eq!(split_upstream("https://models.internal"), None);
        assert_eq!(split_upstream("http://host:notaport"), None);
        assert_eq!(split_upstream("http://[::1]x/"), None);
        assert_eq!(split_upstream("http://:80/"), None);
    }

    #[test]
    fn header_tokens_are_trimmed() {
        let t: Vec<&[u8]> = tokens(b" keep-alive ,, X-Private").collect();
        assert_eq!(t, [&b"keep-alive"[..], b"X-Private"]);
    }
}
