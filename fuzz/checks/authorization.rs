//! `Authorization` header parsing ([`fal_core::header::parse_authorization`]):
//! any text is an answer, never a panic; a key that parses renders back to
//! itself; a bearer token is the trimmed rest of the header; errors are the
//! fixed messages, never the input.

use fal_core::HeaderError;
use fal_core::header::{AuthHeader, parse_authorization};

use super::seeded;

/// Checks `data` as a header value, and as the tail of well-formed ones.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    any_value(&text);
    // A valid header made from the same bytes, then the rest of them
    // after it and after each scheme.
    let (id, secret, rest) = seeded::pair(data);
    let good = format!("Key {id}:{}", secret.expose());
    match parse_authorization(&good) {
        Ok(AuthHeader::Key(c)) => {
            assert_eq!(c.key_id, id);
            assert_eq!(c.secret.expose(), secret.expose());
        }
        other => panic!("a minted key does not parse: {other:?}"),
    }
    let rest = String::from_utf8_lossy(rest);
    for value in [
        format!("{good}{rest}"),
        format!("Key {rest}"),
        format!("kEy\t{id}:{rest}"),
        format!("Bearer {rest}"),
        format!("{rest} {good}"),
    ] {
        any_value(&value);
    }
}

/// The properties every header value has.
fn any_value(value: &str) {
    let scheme = value.split_whitespace().next().unwrap_or_default();
    match parse_authorization(value) {
        Ok(AuthHeader::Key(c)) => {
            assert!(scheme.eq_ignore_ascii_case("key"), "{value:?}");
            let secret = c.secret.expose();
            assert!(value.contains(secret), "the secret is not from {value:?}");
            let shown = format!("{c:?}");
            assert!(!shown.contains(&secret[7..]), "Debug shows the secret");
            // Rendered again, it parses to the same key.
            let again = format!("Key {}:{secret}", c.key_id);
            match parse_authorization(&again) {
                Ok(AuthHeader::Key(d)) => {
                    assert_eq!(d.key_id, c.key_id);
                    assert_eq!(d.secret.expose(), secret);
                }
                other => panic!("{again:?} did not parse back: {other:?}"),
            }
        }
        Ok(AuthHeader::Bearer(token)) => {
            assert!(scheme.eq_ignore_ascii_case("bearer"), "{value:?}");
            assert!(!token.is_empty() && token == token.trim(), "{token:?}");
            assert!(value.trim_end().ends_with(token), "{value:?}");
            let again = format!("Bearer {token}");
            assert!(
                matches!(parse_authorization(&again), Ok(AuthHeader::Bearer(t)) if t == token),
                "{again:?} did not parse back"
            );
        }
        Err(e) => {
            assert_eq!(
                e == HeaderError::Missing,
                value.trim().is_empty(),
                "{value:?}: {e:?}"
            );
            let fixed = [
                HeaderError::Missing,
                HeaderError::UnsupportedScheme,
                HeaderError::MalformedKey,
                HeaderError::NoSuchKey,
            ]
            .map(|e| e.to_string());
            assert!(fixed.contains(&e.to_string()), "a message not fixed: {e}");
        }
    }
}
