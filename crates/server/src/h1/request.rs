//! A client's request head, classified: whether the hand-written path
//! forwards it, answers it at once, or hands the connection to hyper.

use super::headers::{content_length, tokens};
use super::target::is_plain_parsed_target;
use super::{Framing, HeaderSlots};

/// What a request head asks of the front door.
#[derive(Debug)]
pub enum Head<'h, 'b> {
    /// Not all of the head is here yet.
    Partial,
    /// Not for the hand-written path: hyper and the router take the
    /// connection, with the bytes read so far (another path, HTTP/1.0,
    /// `Expect`, `Upgrade`, no or several `Authorization` headers, a
    /// transfer coding but chunked, both framings, a head httparse refuses,
    /// a target with a fragment or a byte the `http` crate refuses).
    HandOff,
    /// Refused at once; the connection closes after the answer, its framing
    /// untrusted or the method one that is never served.
    Refuse {
        /// Why.
        why: Refusal,
        /// Bytes of the head.
        head_len: usize,
    },
    /// A model call to check and forward.
    Run(RunHead<'h, 'b>),
}

/// Why a head is refused outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `CONNECT`: nothing is tunnelled here.
    Connect,
    /// A `Content-Length` that is not digits, or several that disagree.
    BadLength,
}

/// A `/run/…` request head with credentials, as the hand-written path
/// forwards it.
#[derive(Debug)]
pub struct RunHead<'h, 'b> {
    /// Bytes of the head.
    pub head_len: usize,
    /// The method.
    pub method: &'b str,
    /// The path, without the query.
    pub path: &'b str,
    /// The query with its `?`, or empty.
    pub query: &'b str,
    /// The one `Authorization` header's value.
    pub authorization: &'b [u8],
    /// The body's framing.
    pub body: Framing,
    /// The client asked to close after this request.
    pub close: bool,
    /// Every header line, as sent.
    pub headers: &'h [httparse::Header<'b>],
}

impl RunHead<'_, '_> {
    /// `HEAD`: the response has no body whatever its headers say.
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// Safe to send twice (RFC 9110): may be resent when a kept upstream
    /// connection closes without answering.
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self.method,
            "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE"
        )
    }
}

/// Classifies the request head at the start of `buf`, its header lines
/// parsed into `slots`.
pub fn classify<'h, 'b>(buf: &'b [u8], slots: &'h mut HeaderSlots<'b>) -> Head<'h, 'b> {
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(_) => return Head::HandOff,
    };
    let (Some(method), Some(target), Some(1)) = (req.method, req.path, req.version) else {
        return Head::HandOff;
    };
    if method == "CONNECT" {
        return Head::Refuse {
            why: Refusal::Connect,
            head_len,
        };
    }
    if !target.starts_with("/run/") || !is_plain_parsed_target(target) {
        return Head::HandOff;
    }
    let headers: &'h [httparse::Header<'b>] = req.headers;
    let mut authorization = None;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut close = false;
    for h in headers {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"authorization") {
            if authorization.is_some() {
                return Head::HandOff;
            }
            authorization = Some(h.value);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            match (content_length(h.value), length) {
                (Some(n), None) => length = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => {
                    return Head::Refuse {
                        why: Refusal::BadLength,
                        head_len,
                    };
                }
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if chunked || !h.value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Head::HandOff;
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case(b"expect") || name.eq_ignore_ascii_case(b"upgrade") {
            return Head::HandOff;
        } else if name.eq_ignore_ascii_case(b"connection") {
            close |= tokens(h.value).any(|t| t.eq_ignore_ascii_case(b"close"));
        }
    }
    let body = match (length, chunked) {
        (Some(_), true) => return Head::HandOff,
        (Some(0), false) | (None, false) => Framing::Empty,
        (Some(n), false) => Framing::Length(n),
        (None, true) => Framing::Chunked,
    };
    let Some(authorization) = authorization else {
        // A dashboard cookie, or nothing: the router decides.
        return Head::HandOff;
    };
    let path_len = target
        .bytes()
        .position(|b| b == b'?')
        .unwrap_or(target.len());
    let (path, query) = target.split_at_checked(path_len).unwrap_or((target, ""));
    if query.contains("fal_jwt_token") {
        // A short-lived token in the query: the router reads it and keeps
        // it from the upstream.
        return Head::HandOff;
    }
    Head::Run(RunHead {
        head_len,
        method,
        path,
        query,
        authorization,
        body,
        close,
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h1::header_slots;

    /// The head's kind, as a short word, and the body framing of a run.
    fn kind(head: &[u8]) -> String {
        let mut slots = header_slots();
        match classify(head, &mut slots) {
            Head::Partial => "partial".into(),
            Head::HandOff => "hand-off".into(),
            Head::Refuse { why, .. } => format!("refuse {why:?}"),
            Head::Run(r) => format!("run {:?} close={}", r.body, r.close),
        }
    }

    #[test]
    fn model_calls_with_credentials_are_forwarded_by_hand() {
        let run = b"POST /run/a/b/x?q=1 HTTP/1.1\r\nAuthorization: Key k:s\r\nContent-Length: 2\r\n\r\nhi";
        let mut slots = header_slots();
        let Head::Run(r) = classify(run, &mut slots) else {
            panic!("not a run");
        };
        assert_eq!((r.method, r.path, r.query), ("POST", "/run/a/b/x", "?q=1"));
        assert_eq!(r.authorization, b"Key k:s");
        assert_eq!(r.body, Framing::Length(2));
        assert_eq!(r.head_len, run.len() - 2);
        assert!(!r.is_head() && !r.is_idempotent());
        assert_eq!(
            kind(b"GET /run/a/b HTTP/1.1\r\nauthorization: x\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, close\r\n\r\n"),
            "run Chunked close=true"
        );
        assert_eq!(
            kind(b"GET /run/a/b HTTP/1.1\r\nAuthorization: x\r\nContent-Length: 0\r\n\r\n"),
            "run Empty close=false"
        );
    }

    #[test]
    fn everything_else_goes_to_hyper_or_is_refused() {
        assert_eq!(kind(b"GET /run/a/b HTTP/1.1\r\nAuth"), "partial");
        for head in [
            &b"GET /keys HTTP/1.1\r\nAuthorization: x\r\n\r\n"[..],
            b"GET /run/a/b HTTP/1.0\r\nAuthorization: x\r\n\r\n",
            b"GET /run/a/b HTTP/1.1\r\n\r\n",
            b"GET /run/a/b HTTP/1.1\r\nAuthorization: x\r\nAuthorization: y\r\n\r\n",
            b"GET /run/a/b HTTP/1.1\r\nAuthorization: x\r\nExpect: 100-continue\r\n\r\n",
            b"GET /run/a/b HTTP/1.1\r\nAuthorization: x\r\nUpgrade: websocket\r\n\r\n",
            b"GET /run/a/b HTTP/1.1\r\nAuthorization: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"GET /run/a/b HTTP/1.1\r\nAuthorization: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
            b"GET /run/a/b HTTP/1.1\r\nBad Header\r\n\r\n",
            b"GET /run/a/b/x#f HTTP/1.1\r\nAuthorization: x\r\n\r\n",
            b"GET /run/a/b/a`b HTTP/1.1\r\nAuthorization: x\r\n\r\n",
        ] {
            assert_eq!(kind(head), "hand-off", "{}", String::from_utf8_lossy(head));
        }
        assert_eq!(kind(b"CONNECT h:443 HTTP/1.1\r\n\r\n"), "refuse Connect");
        for head in [
            &b"POST /run/a/b HTTP/1.1\r\nAuthorization: x\r\nContent-Length: +5\r\n\r\n"[..],
            b"POST /run/a/b HTTP/1.1\r\nAuthorization: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        ] {
            assert_eq!(kind(head), "refuse BadLength");
        }
    }
}
