//! `fal_server::h1::response::parse` over any bytes (the first byte says
//! whether the request was a `HEAD`).
//!
//! Properties: no panic; a final head is a status from 200 to 999 other
//! than 204/304 framing rules broken; the rewritten head the client gets
//! parses as HTTP/1.1, with exactly one `x-content-type-options: nosniff`,
//! no hop-by-hop or `Connection`-named header, no request id of the
//! upstream's, and a `Content-Length` only where the framing keeps it; a
//! response that ends by closing is never kept.

use fal_server::h1::response::{Parsed, parse};
use fal_server::h1::{Framing, MAX_HEAD, header_slots};

/// The check.
pub fn check(data: &[u8]) {
    let Some((&first, head)) = data.split_first() else {
        return;
    };
    let head_method = first & 1 == 1;
    let mut out = Vec::new();
    let parsed = parse(head, head_method, &mut header_slots(), &mut out);
    let head_info = match parsed {
        Err(_) => return,
        Ok(Parsed::Partial) => {
            assert!(head.len() <= MAX_HEAD);
            return;
        }
        Ok(Parsed::Interim(len)) => {
            assert!(len <= head.len());
            return;
        }
        Ok(Parsed::Final(h)) => h,
    };
    assert!(head_info.head_len <= head.len());
    assert!(
        (200..=999).contains(&head_info.status),
        "{}",
        head_info.status
    );
    if head_method || matches!(head_info.status, 204 | 304) {
        assert_eq!(head_info.framing, Framing::Empty);
    }
    if head_info.framing == Framing::UntilClose {
        assert!(!head_info.reusable);
    }
    out.extend_from_slice(b"\r\n");
    let mut headers = [httparse::EMPTY_HEADER; 80];
    let mut resp = httparse::Response::new(&mut headers);
    let ok = resp.parse(&out);
    assert!(
        matches!(ok, Ok(httparse::Status::Complete(n)) if n == out.len()),
        "the client's head does not parse: {ok:?}\n{}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(resp.code, Some(head_info.status));
    let count = |n: &str| {
        resp.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(n))
            .count()
    };
    assert_eq!(count("x-content-type-options"), 1);
    for name in [
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "x-fal-request-id",
    ] {
        assert_eq!(count(name), 0, "{name} reached the client");
    }
    if !head_method || matches!(head_info.status, 204 | 304) {
        assert_eq!(
            count("content-length"),
            0,
            "framing is the forwarder's to write"
        );
    }
}
