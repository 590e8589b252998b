//! A model call forwarded by hand: its head classified ([`crate::h1`]), the
//! caller authenticated and the app found exactly as the router would, the
//! upstream's head written, then the exchange with the upstream over a
//! kept connection, under the app's timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::{IntoResponse, Response};
use fal_core::{Principal, Quota};
use fal_store::AppRecord;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::body::{
    BodyFailure, Failure, read_response_head, send_body, send_response_body, write_response,
};
use super::{Conn, ConnTimer};
use crate::auth::AuthFailure;
use crate::error::ApiError;
use crate::gateway::reach::refusal_in;
use crate::gateway::{GatewayError, log_failure, rules};
use crate::h1::headers::X_FAL_REQUEST_ID;
use crate::h1::request::{Head, Refusal, RunHead, classify};
use crate::h1::target::{split_run_path, split_upstream, tail_is_safe};
use crate::h1::{Chunked, Framing, header_slots, write};
use crate::metrics::requests::AppRequests;
use crate::metrics::{CallerScope, Route};
use crate::throttle::X_FORWARDED_FOR;

/// What [`Conn::prepare`] decided about a request head.
pub(super) enum Prepared {
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
        /// What its count and log line need.
        seen: Seen,
        /// Close after the answer (the client asked, or the request's
        /// framing cannot be trusted).
        close: bool,
        /// A `HEAD` request: the answer's body is not sent.
        head_method: bool,
    },
    /// Forward: the upstream's head is ready in `req_out`.
    Forward(Forward),
}

/// A request on its way to an upstream.
pub(super) struct Forward {
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
    /// What its count and log line need.
    seen: Seen,
    /// The key's rate limit after this call, when it has one.
    quota: Option<Quota>,
}

impl Conn {
    /// Looks at the request head at the start of `buf`. `None`: not all of
    /// it is here yet. Otherwise decides its path; for a request to
    /// forward, writes the upstream's head into `out`.
    pub(super) async fn prepare(&self, buf: &[u8], out: &mut Vec<u8>) -> Option<Prepared> {
        if !self.hand_path {
            return Some(Prepared::HandOff);
        }
        let mut slots = header_slots();
        let run = match classify(buf, &mut slots) {
            Head::Partial => return None,
            Head::HandOff => return Some(Prepared::HandOff),
            Head::Refuse { why, head_len } => {
                let (e, route) = match why {
                    Refusal::Connect => (rules::connect_refused(), Route::Api),
                    Refusal::BadLength => (rules::bad_length(), Route::Run),
                };
                return Some(refusal(e, head_len, route));
            }
            Head::Run(run) => run,
        };
        let mut seen = Seen {
            route: Route::Run,
            started: Instant::now(),
            scope: CallerScope::None,
            app: None,
            log: crate::request_log::enabled().then(|| LogLine {
                method: run.method.to_owned(),
                path: run.path.to_owned(),
                key_id: None,
            }),
        };
        let answer = |e: ApiError, seen| {
            Some(Prepared::Answer {
                response: e.into_response(),
                head_len: run.head_len,
                body: run.body,
                seen,
                close: run.close,
                head_method: run.is_head(),
            })
        };

        let principal = match self.authenticate(&run).await {
            Ok(p) => p,
            Err(e) => return answer(e, seen),
        };
        seen.scope = principal.scope.into();
        if let Some(l) = &mut seen.log {
            l.key_id = principal.key_id;
        }
        // Answers from here on carry the key's rate-limit headers, as the
        // router's do.
        let quota = principal.quota;
        let answer = |e: ApiError, seen| {
            let mut prepared = answer(e, seen);
            if let (Some(Prepared::Answer { response, .. }), Some(q)) = (&mut prepared, &quota) {
                crate::quota::set_headers(response.headers_mut(), q);
            }
            prepared
        };
        let Some(path) = split_run_path(run.path) else {
            return answer(GatewayError::BadPath.into(), seen);
        };
        if !tail_is_safe(path.tail) {
            return answer(rules::escaping_path(), seen);
        }
        if let Err(e) = rules::may_call(&principal, path.owner, path.name) {
            return answer(e, seen);
        }
        let found = self
            .state
            .apps()
            .find_keyed(path.app, path.owner, path.name);
        let app = match found.await {
            Ok(Some(app)) => app,
            Ok(None) => return answer(GatewayError::UnknownApp(path.app.to_owned()).into(), seen),
            Err(e) => return answer(e.into(), seen),
        };
        let Some(upstream) = split_upstream(&app.upstream) else {
            // https: hyper's client with rustls. The router authenticates
            // the request again, so the call this took is given back.
            if let (Some(key_id), Some(_)) = (principal.key_id, quota) {
                let now = self.state.clock().now();
                let limiter = self.state.verifier().rate_limiter();
                limiter.give_back(&key_id, now);
            }
            return Some(Prepared::HandOff);
        };
        seen.app = Some(self.state.app_requests(path.app));
        let request_id = self.state.request_ids().next_bytes();
        write::upstream_head(out, &run, &upstream, path.tail, &principal, &request_id);
        Some(Prepared::Forward(Forward {
            head_len: run.head_len,
            body: run.body,
            app,
            request_id,
            head_method: run.is_head(),
            idempotent: run.is_idempotent(),
            close: run.close,
            seen,
            quota,
        }))
    }

    /// The caller behind a request's `Authorization` header (a key, a
    /// session or a short-lived app token), as the router's
    /// [`crate::extract::ModelCaller`] would find it, under the same
    /// failed-auth throttling.
    async fn authenticate(&self, run: &RunHead<'_, '_>) -> Result<Principal, ApiError> {
        let forwarded = run
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(X_FORWARDED_FOR))
            .map(|h| h.value);
        let client = Some(self.state.throttle().client(self.peer.ip(), forwarded));
        self.state.refuse_if_blocked(client).await?;
        let value = run.authorization;
        // What `HeaderValue::to_str` accepts: visible ASCII, space and tab.
        // Folded without stopping early, so that it runs as vector code.
        let visible = value.iter().fold(true, |ok, &b| {
            ok & ((b == b'\t') | (b' '..0x7f).contains(&b))
        });
        let malformed = || self.state.note_failure(client, AuthFailure::Malformed);
        if !visible {
            return Err(malformed());
        }
        let value = std::str::from_utf8(value).map_err(|_| malformed())?;
        self.state
            .verifier()
            .authenticate_model(Some(value), None)
            .await
            .map_err(|f| {
                if matches!(f, AuthFailure::KeyExpired(_)) {
                    let agent = run
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("user-agent"))
                        .and_then(|h| std::str::from_utf8(h.value).ok())
                        .and_then(fal_core::UserAgent::new);
                    let origin = crate::audit::Origin {
                        source: client,
                        user_agent: agent,
                    };
                    self.state.note_expired_use(Some(value), origin);
                }
                self.state.note_failure(client, f)
            })
    }

    /// Forwards one request and its answer. Returns whether the client
    /// connection can take another request.
    pub(super) async fn forward<IO>(
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
        let pool = self.state.upstream().pool();
        let policy = self.state.upstream().policy();
        let up_started = Instant::now();
        let exchange = async {
            let mut may_reuse = true;
            loop {
                let idle = if may_reuse {
                    pool.take_for(upstream.authority, policy, &f.app).await
                } else {
                    None
                };
                let (mut up, reused) = match idle {
                    Some(conn) => (conn, true),
                    None => match pool.connect(&upstream, policy, &f.app).await {
                        Ok(conn) => (conn, false),
                        Err(e) if refusal_in(&e).is_some() => {
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
        let rid = || std::str::from_utf8(&f.request_id).unwrap_or_default();
        let failed = |e: ApiError| (e.into_response(), !whole);
        // The app's timeout, on the connection's one timer.
        let deadline = tokio::time::Instant::now() + wait;
        let outcome = tokio::select! {
            biased;
            done = exchange => Ok(done),
            () = timer.reached(deadline) => Err(()),
        };
        // The upstream answered, failed or timed out (not the client).
        if !matches!(
            outcome,
            Ok(Err(Failure::Client
                | Failure::BadBody
                | Failure::BodyTimeout))
        ) {
            let now = Instant::now();
            let total = now.duration_since(f.seen.started);
            let with_upstream = now.duration_since(up_started);
            self.state.metrics().forwarded(total, with_upstream);
        }
        let outcome = match outcome {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(Failure::Client)) => return false,
            Ok(Err(Failure::BadBody)) => {
                let response = rules::bad_chunked().into_response();
                return self.answer_failure(io, resp_out, response, &f, true).await;
            }
            Ok(Err(Failure::BodyTimeout)) => {
                let response = crate::limits::body_timed_out(self.body_timeout).closing();
                return self.answer_failure(io, resp_out, response, &f, true).await;
            }
            Ok(Err(Failure::Refused(why))) => Err(GatewayError::Refused(why)),
            Ok(Err(Failure::Upstream(e))) => Err(GatewayError::Failed(e)),
            Err(()) => Err(GatewayError::Timeout(f.app.timeout_ms)),
        };
        let (mut up, head) = match outcome {
            Ok(done) => done,
            Err(e) => {
                log_failure(&f.app, rid(), &e);
                let (response, close) = failed(e.into());
                return self.answer_failure(io, resp_out, response, &f, close).await;
            }
        };

        // The response: head, then the body as it comes.
        let close = f.close || *self.stop.borrow();
        write::header(resp_out, X_FAL_REQUEST_ID.as_bytes(), &f.request_id);
        if let Some(q) = &f.quota {
            for (name, value) in q.headers() {
                write::header(resp_out, name.as_bytes(), value.as_bytes());
            }
        }
        write::framing(resp_out, head.framing);
        if close {
            resp_out.extend_from_slice(b"connection: close\r\n");
        }
        resp_out.extend_from_slice(b"\r\n");
        up.buf.drain(..head.head_len);
        let finished = send_response_body(io, &mut up, head.framing, resp_out).await;
        match finished {
            Ok(()) => {
                self.done(&f.seen, head.status, Some(&f.request_id));
                if head.reusable && up.buf.is_empty() {
                    pool.put_back(upstream.authority, up);
                }
                !close
            }
            // Nothing has reached the client yet: it gets a 502 instead.
            Err(BodyFailure::Unsent(e)) => {
                log_failure(&f.app, rid(), &GatewayError::Broken(e));
                let (response, _) = failed(GatewayError::Unreachable.into());
                self.answer_failure(io, resp_out, response, &f, true).await
            }
            Err(BodyFailure::Sent) => {
                self.done(&f.seen, head.status, Some(&f.request_id));
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
        if let Some(q) = &f.quota {
            crate::quota::set_headers(response.headers_mut(), q);
        }
        let status = response.status().as_u16();
        let close = close || f.close || *self.stop.borrow();
        let written = write_response(io, out, response, close, f.head_method).await;
        self.done(&f.seen, status, Some(&f.request_id));
        written.is_ok() && !close
    }
}

/// An answer to a request whose framing cannot be trusted (or that we do
/// not serve): the connection closes after it.
fn refusal(e: ApiError, head_len: usize, route: Route) -> Prepared {
    Prepared::Answer {
        response: e.into_response(),
        head_len,
        body: Framing::Empty,
        seen: Seen {
            route,
            started: Instant::now(),
            scope: CallerScope::None,
            app: None,
            log: None,
        },
        close: true,
        head_method: false,
    }
}

/// What a request's count and access line need.
pub(super) struct Seen {
    /// Its route class (`/run`, or `api` for a `CONNECT`).
    route: Route,
    /// When its head had been read.
    started: Instant,
    /// The scope it was authenticated with.
    scope: CallerScope,
    /// Its app's counters, once found.
    app: Option<Arc<AppRequests>>,
    /// Its access line, kept only when it will be written.
    log: Option<LogLine>,
}

/// What a request's access line needs.
pub(super) struct LogLine {
    /// The method.
    method: String,
    /// The path, without the query.
    path: String,
    /// The key that authenticated it.
    key_id: Option<fal_core::KeyId>,
}

impl Conn {
    /// Counts an answered request ([`crate::metrics`]) and writes its
    /// access line, as the router's requests get ([`crate::request_log`]);
    /// `request_id` once one was given.
    pub(super) fn done(&self, seen: &Seen, status: u16, request_id: Option<&[u8; 36]>) {
        match &seen.app {
            Some(app) => app.count(seen.route, status, seen.scope),
            None => self
                .state
                .count_request(seen.route, None, status, seen.scope),
        }
        if let Some(l) = &seen.log {
            crate::request_log::request(crate::request_log::Access {
                method: &l.method,
                path: &l.path,
                status,
                started: seen.started,
                request_id: request_id.and_then(|id| std::str::from_utf8(id).ok()),
                key_id: l.key_id,
            });
        }
    }
}
