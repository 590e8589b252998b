//! Rules both forwarding paths share ([`crate::front`]'s hand-written one
//! and [`crate::gateway`]'s hyper one), written once so that they cannot
//! drift apart: which request paths may leave for an upstream, how strict a
//! `Content-Length` is, which upstream framings are refused, and a body
//! wrapper that drops trailers.
//!
//! Pure functions, but for [`NoTrailers`], which wraps a body, and the
//! one small middleware of hyper's path, [`refuse_connect`].

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

/// The header every gateway answer carries.
pub(crate) const NOSNIFF: (&str, &str) = ("x-content-type-options", "nosniff");

/// Why a path after `/run/OWNER/NAME` may not go to an upstream: it could
/// step out of the app's base path there (`..` in any spelling, or a slash
/// or backslash the upstream may decode into a separator).
pub(crate) const ESCAPING_PATH: &str = "The path after /run/OWNER/NAME may not contain '.' or '..' segments (in any spelling, such as %2e%2e), an encoded slash (%2f), a backslash or an encoded backslash (%5c)";

/// Checks the part of a model call's path after the app's name (`tail`,
/// from [`crate::gateway::split_run_path`]): refused when an upstream that
/// normalises paths could take it outside the app's base path. Refused
/// rather than normalised: such a path has no honest use, and a refusal
/// cannot be normalised differently by the two ends.
///
/// Refuses a segment that is `.` or `..` once `%2e`/`%2E` are read as dots
/// (also before a `;`, which some servers cut segments at), `%2f`, `%5c`
/// (either case) and a raw `\`.
pub(crate) fn tail_is_safe(tail: &str) -> bool {
    let bytes = tail.as_bytes();
    // The common path has none of the bytes that could spell a trick.
    if !bytes.iter().any(|&b| matches!(b, b'.' | b'%' | b'\\')) {
        return true;
    }
    if bytes.contains(&b'\\') {
        return false;
    }
    let lower = |i: usize| bytes.get(i).map(u8::to_ascii_lowercase);
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'%' && lower(i + 1) == Some(b'2') && lower(i + 2) == Some(b'f') {
            return false;
        }
        if b == b'%' && lower(i + 1) == Some(b'5') && lower(i + 2) == Some(b'c') {
            return false;
        }
    }
    tail.split('/').all(|segment| {
        let segment = segment.split(';').next().unwrap_or(segment);
        let dots = dots_in(segment);
        !(dots == Some(1) || dots == Some(2))
    })
}

/// How many dots `segment` spells if it is made of nothing but `.`,
/// `%2e` and `%2E`; `None` otherwise.
fn dots_in(segment: &str) -> Option<usize> {
    let mut rest = segment.as_bytes();
    let mut n = 0;
    while !rest.is_empty() {
        if rest[0] == b'.' {
            rest = &rest[1..];
        } else if rest.len() >= 3 && rest[..2] == *b"%2" && rest[2].eq_ignore_ascii_case(&b'e') {
            rest = &rest[3..];
        } else {
            return None;
        }
        n += 1;
    }
    Some(n)
}

/// `CONNECT` is not served: 405, our JSON error.
pub(crate) fn connect_refused() -> ApiError {
    ApiError::Status {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        detail: "CONNECT is not supported: this server is not a forward proxy".into(),
    }
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
    ApiError::BadRequest(ESCAPING_PATH.into())
}

/// A `Content-Length` value as RFC 9110 has it: digits only (optional
/// whitespace around them), so `+5`, `0x5`, `5 5` and `-0` are refused;
/// `None` also when it does not fit in a `u64`.
pub(crate) fn content_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Checks an upstream response's framing headers: its `Transfer-Encoding`
/// values (`te`) and whether it had a `Content-Length`. `Ok(true)` when the
/// body is chunked, `Ok(false)` when there is no `Transfer-Encoding`.
///
/// Refused (502): both headers at once (RFC 9112 forbids it; a proxy that
/// picked one could disagree with the next hop), and any transfer coding
/// but a lone `chunked`. The client's `TE` is hop-by-hop and never
/// forwarded, so an upstream may not apply another coding (RFC 9110 10.1.4);
/// fal does not decode one and will not drop it silently.
pub(crate) fn check_response_framing<'a>(
    te: impl IntoIterator<Item = &'a [u8]>,
    has_length: bool,
) -> Result<bool, &'static str> {
    let mut codings = te.into_iter().flat_map(|v| v.split(|&b| b == b','));
    let Some(first) = codings.next() else {
        return Ok(false);
    };
    if has_length {
        return Err("the upstream sent both Content-Length and Transfer-Encoding");
    }
    let only_chunked = first.trim_ascii().eq_ignore_ascii_case(b"chunked")
        && codings.all(|c| c.trim_ascii().is_empty());
    if only_chunked {
        Ok(true)
    } else {
        Err("the upstream used a transfer coding other than chunked")
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_and_encoded_separators_are_refused() {
        for bad in [
            "/../../../admin",
            "/..",
            "/.",
            "/a/./b",
            "/%2e%2e/x",
            "/%2E%2E/x",
            "/.%2e/x",
            "/%2e./x",
            "/%2e",
            "/..%2fadmin",
            "/..%2Fadmin",
            "/a%5c..%5cb",
            "/a\\..\\b",
            "/..;/admin",
            "/x/..",
        ] {
            assert!(!tail_is_safe(bad), "{bad}");
        }
        for good in [
            "",
            "/",
            "/v1/predict",
            "/file.json",
            "/...",
            "/a..b",
            "/.well-known/x",
            "/%2e%2e%2e",
            "/a%20b",
            "/%25",
        ] {
            assert!(tail_is_safe(good), "{good}");
        }
    }

    #[test]
    fn content_length_is_digits_only() {
        assert_eq!(content_length(b"5"), Some(5));
        assert_eq!(content_length(b" 42 "), Some(42));
        assert_eq!(content_length(b"0"), Some(0));
        assert_eq!(content_length(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b"+5"[..],
            b"-0",
            b"0x5",
            b"5 5",
            b"5,5",
            b"",
            b" ",
            b"18446744073709551616",
        ] {
            assert_eq!(content_length(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_a_lone_chunked_coding_passes() {
        let check = |te: &[&[u8]], len| check_response_framing(te.iter().copied(), len);
        assert_eq!(check(&[], true), Ok(false));
        assert_eq!(check(&[], false), Ok(false));
        assert_eq!(check(&[b"chunked"], false), Ok(true));
        assert_eq!(check(&[b" Chunked "], false), Ok(true));
        assert!(check(&[b"chunked"], true).is_err());
        assert!(check(&[b"gzip, chunked"], false).is_err());
        assert!(check(&[b"gzip", b"chunked"], false).is_err());
        assert!(check(&[b"chunked, chunked"], false).is_err());
        assert!(check(&[b"identity"], false).is_err());
    }
}
