//! Heads written out: the upstream's request head, our own whole answers,
//! header lines and framing headers.

use std::io::Write as _;

use axum::http::response::Parts;
use fal_core::Principal;

use super::Framing;
use super::headers::{ConnectionNamed, NOSNIFF, identity, is_hop_by_hop, stays_behind};
use super::request::RunHead;
use super::target::{UpstreamParts, upstream_path};

/// Writes `name: value\r\n`.
#[inline]
pub fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Writes the header that frames a body sent on: its length, or chunks
/// (a body that ends by closing is sent on in chunks).
#[inline]
pub fn framing(out: &mut Vec<u8>, framing: Framing) {
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked | Framing::UntilClose => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        Framing::Empty => {}
    }
}

/// Writes `n` in decimal.
#[inline]
pub fn decimal(out: &mut Vec<u8>, mut n: u64) {
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

/// Writes the head the upstream gets for `run` into `out`: the request
/// line (the upstream's base path, then `tail`, then the query), `Host`,
/// the client's end-to-end headers (without the ones that stay behind, the
/// ones its `Connection` names, and our cookies), who is calling, and the
/// body's framing.
pub fn upstream_head(
    out: &mut Vec<u8>,
    run: &RunHead<'_, '_>,
    upstream: &UpstreamParts<'_>,
    tail: &str,
    principal: &Principal,
    request_id: &[u8; 36],
) {
    out.clear();
    out.extend_from_slice(run.method.as_bytes());
    out.push(b' ');
    for piece in upstream_path(upstream.base, tail) {
        out.extend_from_slice(piece.as_bytes());
    }
    out.extend_from_slice(run.query.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(upstream.authority.as_bytes());
    out.extend_from_slice(b"\r\n");
    let connection_named = ConnectionNamed::of(run.headers);
    for h in run.headers {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"cookie") {
            // Our own cookies stay here; others pass as they are.
            if let Some(kept) = crate::cookies::without_ours(h.value) {
                header(out, name, &kept);
            }
            continue;
        }
        if stays_behind(name)
            || name.eq_ignore_ascii_case(b"content-length")
            || connection_named.names(name)
        {
            continue;
        }
        header(out, name, h.value);
    }
    let mut key_text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    for (name, value) in identity(principal, request_id, &mut key_text) {
        header(out, name.as_bytes(), value);
    }
    framing(out, run.body);
    out.extend_from_slice(b"\r\n");
}

/// Writes a whole answer of ours (an error, say) with its `body`: the
/// status line, its headers but hop-by-hop ones, `nosniff` if it has none,
/// its length, and `Connection: close` when `close`. The body follows but
/// for an answer to a `HEAD` request (`head_method`), which keeps the
/// length a `GET` would have had.
pub fn answer(out: &mut Vec<u8>, parts: &Parts, body: &[u8], close: bool, head_method: bool) {
    out.clear();
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\n",
        parts.status.as_u16(),
        parts.status.canonical_reason().unwrap_or("")
    );
    for (name, value) in &parts.headers {
        if !is_hop_by_hop(name.as_str().as_bytes()) && name != axum::http::header::CONTENT_LENGTH {
            header(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    if !parts.headers.contains_key(NOSNIFF.0) {
        header(out, NOSNIFF.0.as_bytes(), NOSNIFF.1.as_bytes());
    }
    let _ = write!(out, "content-length: {}\r\n", body.len());
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_method {
        out.extend_from_slice(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h1::header_slots;
    use crate::h1::request::{Head, classify};
    use crate::h1::target::split_upstream;

    #[test]
    fn the_upstream_head_keeps_only_end_to_end_headers_and_adds_who_is_calling() {
        let req = b"POST /run/a/b/x?q=1 HTTP/1.1\r\nHost: fal\r\nAuthorization: Key k:s\r\n\
            Connection: x-private\r\nX-Private: 1\r\nTE: trailers\r\nX-Fal-User-Id: forged\r\n\
            Cookie: fal_session=t; theme=dark\r\nContent-Length: 2\r\nX-Kept: 1\r\n\r\nhi";
        let mut slots = header_slots();
        let Head::Run(run) = classify(req, &mut slots) else {
            panic!("not a run");
        };
        let upstream = split_upstream("http://127.0.0.1:9/v1/").unwrap();
        let principal = Principal {
            user_id: fal_core::UserId::from_stored("u1".into()),
            key_id: None,
            session_id: None,
            scope: fal_core::Scope::Api,
            quota: None,
            apps: None,
        };
        let mut out = Vec::new();
        upstream_head(&mut out, &run, &upstream, "/x", &principal, &[b'r'; 36]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "POST /v1/x?q=1 HTTP/1.1\r\nhost: 127.0.0.1:9\r\nCookie: theme=dark\r\nX-Kept: 1\r\n\
                 x-fal-user-id: u1\r\nx-fal-request-id: {}\r\ncontent-length: 2\r\n\r\n",
                "r".repeat(36)
            )
        );
    }

    #[test]
    fn our_answers_have_a_length_and_no_body_for_head() {
        let (parts, ()) = axum::http::Response::builder()
            .status(401)
            .header("content-type", "application/json")
            .header("connection", "keep-alive")
            .body(())
            .unwrap()
            .into_parts();
        let mut out = Vec::new();
        answer(&mut out, &parts, b"{}", false, false);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n\
             x-content-type-options: nosniff\r\ncontent-length: 2\r\n\r\n{}"
        );
        answer(&mut out, &parts, b"{}", true, true);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n\
             x-content-type-options: nosniff\r\ncontent-length: 2\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn numbers_and_framings_are_written_plainly() {
        let mut out = Vec::new();
        for n in [0, 7, 10, 12345, u64::MAX] {
            out.clear();
            decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
        out.clear();
        framing(&mut out, Framing::UntilClose);
        framing(&mut out, Framing::Empty);
        framing(&mut out, Framing::Length(3));
        assert_eq!(
            out,
            b"transfer-encoding: chunked\r\ncontent-length: 3\r\n".to_vec()
        );
    }
}
