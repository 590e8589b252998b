//! An upstream's response head, read and rewritten for the client.

use super::headers::{
    ConnectionNamed, NOSNIFF, X_FAL_REQUEST_ID, check_response_framing, content_length,
    is_hop_by_hop, tokens,
};
use super::write::{decimal, header};
use super::{Framing, HeaderSlots, MAX_HEAD};
use fal_core::rate::RATE_LIMIT_HEADERS;

/// The response head an upstream sent, rewritten for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// Bytes of the upstream's head in its buffer.
    pub head_len: usize,
    /// The body's framing as the upstream sent it.
    pub framing: Framing,
    /// The upstream connection may be kept once the body has been read.
    pub reusable: bool,
    /// The status, for the log line.
    pub status: u16,
}

/// What the bytes at the start of an upstream's buffer hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Not all of a head yet.
    Partial,
    /// A `1xx` interim answer of this many bytes, to skip.
    Interim(usize),
    /// The final head; the client's version of it is in `out`.
    Final(ResponseHead),
}

/// Reads the response head at the start of `buf` (answering a `HEAD`
/// request when `head_method`), writing the client's version of a final
/// one into `out`, without the framing headers, which the caller adds.
/// An error says why the upstream's answer cannot be passed on (502).
pub fn parse<'b>(
    buf: &'b [u8],
    head_method: bool,
    slots: &mut HeaderSlots<'b>,
    out: &mut Vec<u8>,
) -> Result<Parsed, String> {
    let mut resp = httparse::Response::new(&mut []);
    let parsed =
        httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut resp, buf, slots);
    match parsed {
        Ok(httparse::Status::Complete(head_len)) => {
            let status = resp.code.unwrap_or(0);
            if status < 100 {
                // httparse takes any three digits; `http` (hyper's path)
                // refuses a status under 100, and a client would too.
                return Err(format!("bad status {status:03} from the upstream"));
            }
            if status == 101 {
                return Err("the upstream switched protocols unasked".into());
            }
            if (100..200).contains(&status) {
                return Ok(Parsed::Interim(head_len));
            }
            rewrite(&resp, head_len, head_method, out).map(Parsed::Final)
        }
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => Ok(Parsed::Partial),
        Ok(httparse::Status::Partial) => Err("response head too large".into()),
        Err(e) => Err(format!("bad response head: {e}")),
    }
}

/// The client's response head from the upstream's: hop-by-hop and
/// `Connection`-named headers, and the upstream's own request id,
/// `nosniff` and `RateLimit-*` headers left out (ours are added); the framing headers are left to
/// [`super::write::framing`].
fn rewrite(
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
            let n = content_length(h.value).ok_or("bad Content-Length from the upstream")?;
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
        check_response_framing(te.map(|h| h.value), length.is_some())?
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
    decimal(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(resp.reason.unwrap_or_default().as_bytes());
    out.extend_from_slice(b"\r\n");
    let connection_named = ConnectionNamed::of(resp.headers);
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        let framing_header = name.eq_ignore_ascii_case(b"content-length") && !keep_length;
        if framing_header
            || name.eq_ignore_ascii_case(NOSNIFF.0.as_bytes())
            || is_hop_by_hop(name)
            || name.eq_ignore_ascii_case(X_FAL_REQUEST_ID.as_bytes())
            || RATE_LIMIT_HEADERS
                .iter()
                .any(|r| r.as_bytes().eq_ignore_ascii_case(name))
            || connection_named.names(name)
        {
            continue;
        }
        header(out, name, h.value);
    }
    header(out, NOSNIFF.0.as_bytes(), NOSNIFF.1.as_bytes());
    Ok(ResponseHead {
        head_len,
        framing,
        reusable: !close && framing != Framing::UntilClose,
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h1::header_slots;

    /// The parse of `head`, and what the client would get.
    fn parse_str(head: &str, head_method: bool) -> (Result<Parsed, String>, String) {
        let mut out = Vec::new();
        let parsed = parse(head.as_bytes(), head_method, &mut header_slots(), &mut out);
        (parsed, String::from_utf8(out).unwrap())
    }

    #[test]
    fn the_head_is_rewritten_for_the_client() {
        let (parsed, out) = parse_str(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: x-private\r\nX-Private: 1\r\n\
             Keep-Alive: timeout=5\r\nX-Fal-Request-Id: forged\r\nX-Content-Type-Options: sniff\r\n\
             RateLimit-Remaining: 999\r\nratelimit-limit: 1000\r\nRATELIMIT-RESET: 1\r\n\
             X-Kept: yes\r\n\r\nhello",
            false,
        );
        let Ok(Parsed::Final(head)) = parsed else {
            panic!("{parsed:?}");
        };
        assert_eq!(head.framing, Framing::Length(5));
        assert_eq!(head.status, 200);
        assert!(head.reusable);
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nX-Kept: yes\r\nx-content-type-options: nosniff\r\n"
        );
    }

    #[test]
    fn framings_are_read_as_rfc_9112_has_them() {
        let framing = |head: &str, head_method| match parse_str(head, head_method).0 {
            Ok(Parsed::Final(h)) => Ok((h.framing, h.reusable)),
            other => Err(format!("{other:?}")),
        };
        assert_eq!(
            framing(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false
            ),
            Ok((Framing::Chunked, true))
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\n\r\n", false),
            Ok((Framing::UntilClose, false))
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true),
            Ok((Framing::Empty, true))
        );
        assert_eq!(
            framing(
                "HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n",
                false
            ),
            Ok((Framing::Empty, true))
        );
        assert_eq!(
            framing("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false),
            Ok((Framing::Length(1), false))
        );
        for bad in [
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/1.1 020 OK\r\nContent-Length: 0\r\n\r\n",
        ] {
            assert!(framing(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn interim_answers_are_skipped_and_long_heads_refused() {
        assert_eq!(
            parse_str("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200", false).0,
            Ok(Parsed::Interim(25))
        );
        assert_eq!(
            parse_str("HTTP/1.1 200 OK\r\nX-A", false).0,
            Ok(Parsed::Partial)
        );
        let long = format!("HTTP/1.1 200 OK\r\nX-A: {}", "a".repeat(MAX_HEAD));
        assert!(parse_str(&long, false).0.is_err());
    }
}
