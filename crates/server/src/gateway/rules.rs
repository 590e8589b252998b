//! What both forwarding paths answer when a request may not go on (our
//! JSON errors), and the parts of the rules that only hyper's path needs:
//! a body wrapper that drops trailers, our cookies taken out of a
//! [`HeaderMap`], and the middleware that refuses `CONNECT`. The pure rules
//! themselves are in [`crate::h1::headers`] and [`crate::h1::target`].

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::Response;
use http_body::{Body, Frame, SizeHint};

use crate::error::ApiError;

/// `CONNECT` is not served: 405, our JSON error.
pub(crate) fn connect_refused() -> ApiError {
    ApiError::Status {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        detail: "CONNECT is not supported: this server is not a forward proxy".into(),
    }
}

/// A short-lived token's caller may call only the apps it lists: 403 for
/// another (the queue's routes check the same).
pub fn may_call(principal: &fal_core::Principal, owner: &str, name: &str) -> Result<(), ApiError> {
    if principal.may_call(owner, name) {
        return Ok(());
    }
    let listed: Vec<String> = principal.apps.iter().flat_map(|a| a.entries()).collect();
    Err(ApiError::Status {
        status: StatusCode::FORBIDDEN,
        code: "app_not_allowed",
        detail: format!(
            "This token may call only {}, not {owner}/{name}: ask POST /tokens/ for a token whose allowed_apps lists {name:?}",
            listed.join(", ")
        ),
    })
}

/// A `Content-Length` that is not digits, or several that disagree.
pub(crate) fn bad_length() -> ApiError {
    ApiError::BadRequest(
        "Content-Length must be one decimal number (digits only, no sign), the same in every Content-Length header".into(),
    )
}

/// A request body whose chunked framing is not RFC 9112's.
pub(crate) fn bad_chunked() -> ApiError {
    ApiError::BadRequest(
        "The chunked request body is malformed: each chunk-size line must be hex digits, optionally ';' and extensions without control characters, ended by CRLF".into(),
    )
}

/// A model call whose path could step out of the app's base path.
pub(crate) fn escaping_path() -> ApiError {
    ApiError::BadRequest(crate::h1::target::ESCAPING_PATH.into())
}

/// A body that passes data frames on and drops trailers (neither path
/// forwards them, both ways). Its size hint is the inner body's, so a
/// `Content-Length` body keeps its length. `failed` is set when the inner
/// body fails (a client's broken framing, as hyper decodes it), so the
/// handler can tell that from an upstream's failure.
pub(crate) struct NoTrailers<B> {
    /// Data already taken from `inner`, to give out first.
    first: Option<Bytes>,
    /// The body.
    inner: B,
    /// Set when `inner` yielded an error.
    failed: Arc<AtomicBool>,
}

impl<B> NoTrailers<B> {
    /// Wraps `inner`; the flag turns true if it fails.
    pub(crate) fn new(inner: B) -> (Self, Arc<AtomicBool>) {
        let failed = Arc::new(AtomicBool::new(false));
        (
            NoTrailers {
                first: None,
                inner,
                failed: failed.clone(),
            },
            failed,
        )
    }

    /// Wraps `inner`, whose first data, `first`, was already read.
    pub(crate) fn with_first(first: Bytes, inner: B) -> Self {
        NoTrailers {
            first: Some(first),
            inner,
            failed: Arc::default(),
        }
    }
}

impl<B> Body for NoTrailers<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        loop {
            return match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) if frame.is_trailers() => continue,
                Poll::Ready(Some(Err(e))) => {
                    self.failed.store(true, Ordering::Relaxed);
                    Poll::Ready(Some(Err(e)))
                }
                other => other,
            };
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let first = self.first.as_ref().map_or(0, |b| b.len() as u64);
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower().saturating_add(first));
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(first));
        }
        hint
    }
}

/// Takes every cookie of ours out of the `Cookie` headers (see
/// [`crate::cookies::without_ours`]); others pass unchanged, a header left
/// empty goes.
pub(crate) fn strip_our_cookies(headers: &mut HeaderMap) {
    if !headers.contains_key(header::COOKIE) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| {
            let kept = crate::cookies::without_ours(v.as_bytes())?;
            HeaderValue::from_bytes(&kept).ok()
        })
        .collect();
    headers.remove(header::COOKIE);
    for v in kept {
        headers.append(header::COOKIE, v);
    }
}

/// Refuses `CONNECT` on any path (405, our JSON error) and closes the
/// connection after it: this server tunnels nothing, and whatever the
/// client sends next may already be tunnel bytes.
pub async fn refuse_connect(req: Request, next: axum::middleware::Next) -> Response {
    if req.method() != axum::http::Method::CONNECT {
        return next.run(req).await;
    }
    connect_refused().closing()
}
