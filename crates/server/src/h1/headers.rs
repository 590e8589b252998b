//! Header rules both forwarding paths share: which headers belong to one
//! connection (hop-by-hop, and those a `Connection` header names), which
//! only fal may set (who is calling), how strict a `Content-Length` is,
//! which upstream framings are refused.

use fal_core::Principal;

/// Header carrying the caller's user id to the upstream.
pub const X_FAL_USER_ID: &str = "x-fal-user-id";
/// Header carrying the caller's key id to the upstream.
pub const X_FAL_KEY_ID: &str = "x-fal-key-id";
/// Header carrying the request id to the upstream and back to the client.
pub const X_FAL_REQUEST_ID: &str = "x-fal-request-id";

/// Headers that belong to one connection, never forwarded.
/// Lowercase, as both forwarding paths compare them.
pub const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The header every gateway answer carries.
pub const NOSNIFF: (&str, &str) = ("x-content-type-options", "nosniff");

/// Whether a client's request header stays behind, whatever else the path
/// does with it: hop-by-hop ones, its credentials, `Host` (the upstream's
/// own is sent) and the identity headers, which come from fal only.
/// `Connection`-named headers and our cookies are left out too, by
/// [`ConnectionNamed`] and [`crate::cookies::without_ours`].
#[inline]
pub fn stays_behind(name: &[u8]) -> bool {
    is_hop_by_hop(name)
        || [
            "authorization",
            "host",
            X_FAL_USER_ID,
            X_FAL_KEY_ID,
            X_FAL_REQUEST_ID,
        ]
        .iter()
        .any(|n| n.as_bytes().eq_ignore_ascii_case(name))
}

/// The identity headers the upstream gets for `principal`, with the key id
/// written into `key_text` (no allocation): `(name, value)` pairs.
#[inline]
pub fn identity<'a>(
    principal: &'a Principal,
    request_id: &'a [u8],
    key_text: &'a mut [u8; uuid::fmt::Hyphenated::LENGTH],
) -> impl Iterator<Item = (&'static str, &'a [u8])> {
    let key = principal
        .key_id
        .map(|k| &*k.as_uuid().hyphenated().encode_lower(key_text));
    [
        Some((X_FAL_USER_ID, principal.user_id.as_str().as_bytes())),
        key.map(|k| (X_FAL_KEY_ID, k.as_bytes())),
        Some((X_FAL_REQUEST_ID, request_id)),
    ]
    .into_iter()
    .flatten()
}

/// Whether a header belongs to one connection only.
#[inline]
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|h| h.as_bytes().eq_ignore_ascii_case(name))
}

/// A `Content-Length` value as RFC 9110 has it: digits only (optional
/// whitespace around them), so `+5`, `0x5`, `5 5` and `-0` are refused;
/// `None` also when it does not fit in a `u64`.
#[inline]
pub fn content_length(value: &[u8]) -> Option<u64> {
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
pub fn check_response_framing<'a>(
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

/// The header names listed in a head's `Connection` headers: hop-by-hop
/// too. Looked up in place rather than collected, as every request and
/// response asks.
pub struct ConnectionNamed<'h, 'b> {
    /// The head's headers, if a `Connection` header among them lists a
    /// name beyond `close` and the fixed hop-by-hop ones (which go anyway):
    /// rare, so the common head is not searched again per header.
    headers: Option<&'h [httparse::Header<'b>]>,
}

impl<'h, 'b> ConnectionNamed<'h, 'b> {
    /// The names listed in `headers`.
    #[inline]
    pub fn of(headers: &'h [httparse::Header<'b>]) -> Self {
        let more =
            Self::listed(headers).any(|t| !t.eq_ignore_ascii_case(b"close") && !is_hop_by_hop(t));
        ConnectionNamed {
            headers: more.then_some(headers),
        }
    }

    /// Whether `name` is listed (and not already hop-by-hop).
    #[inline]
    pub fn names(&self, name: &[u8]) -> bool {
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
#[inline]
pub fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn header_tokens_are_trimmed() {
        let t: Vec<&[u8]> = tokens(b" keep-alive ,, X-Private").collect();
        assert_eq!(t, [&b"keep-alive"[..], b"X-Private"]);
    }
}
