//! Parsing credentials: the `Authorization` header and the `FAL_KEY` form.

use crate::key::{KeyId, KeySecret};

/// A key pair presented by a caller. Parsed into types, so a secret that is
/// not well-formed never gets as far as a storage lookup.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Which key the caller claims.
    pub key_id: KeyId,
    /// The secret that proves it.
    pub secret: KeySecret,
}

/// What is wrong with an `Authorization` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// No `Authorization` header at all.
    #[error("no credentials were given")]
    Missing,
    /// A scheme other than `Key` (and, where supported, `Bearer`).
    #[error("unsupported authorization scheme")]
    UnsupportedScheme,
    /// `Key` followed by something that is not `<key_id>:<key_secret>`.
    #[error("Invalid Key Authorization header format. Expected '<key_id>:<key_secret>'.")]
    MalformedKey,
    /// Well-formed, but the id is not a UUID or the secret fails its format
    /// or checksum: no key can match it.
    #[error("No user found for Key ID and Secret")]
    NoSuchKey,
}

/// The credential part of an `Authorization` header.
#[derive(Debug, Clone)]
pub enum AuthHeader<'a> {
    /// `Key <key_id>:<key_secret>`.
    Key(Credentials),
    /// `Bearer <token>` (GitHub-login sessions).
    Bearer(&'a str),
}

/// Parses an `Authorization` header value.
pub fn parse_authorization(value: &str) -> Result<AuthHeader<'_>, HeaderError> {
    let value = value.trim();
    let (scheme, rest) = match value.split_once(char::is_whitespace) {
        Some((s, r)) => (s, r.trim()),
        None => (value, ""),
    };
    if scheme.eq_ignore_ascii_case("Key") {
        parse_key_pair(rest).map(AuthHeader::Key)
    } else if scheme.eq_ignore_ascii_case("Bearer") && !rest.is_empty() {
        Ok(AuthHeader::Bearer(rest))
    } else if value.is_empty() {
        Err(HeaderError::Missing)
    } else {
        Err(HeaderError::UnsupportedScheme)
    }
}

/// Parses `<key_id>:<key_secret>`, split at the first colon (the `FAL_KEY` form).
pub fn parse_key_pair(pair: &str) -> Result<Credentials, HeaderError> {
    let (id, secret) = pair.split_once(':').ok_or(HeaderError::MalformedKey)?;
    if id.is_empty() || secret.is_empty() {
        return Err(HeaderError::MalformedKey);
    }
    let key_id: KeyId = id.parse().map_err(|_| HeaderError::NoSuchKey)?;
    let secret = KeySecret::parse(secret).map_err(|_| HeaderError::NoSuchKey)?;
    Ok(Credentials { key_id, secret })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;
    use proptest::prelude::*;

    fn pair() -> (KeyId, KeySecret) {
        (
            KeyId::generate(&OsRandom).unwrap(),
            KeySecret::generate(&OsRandom).unwrap(),
        )
    }

    #[test]
    fn parses_a_key_header() {
        let (id, s) = pair();
        let h = format!("Key {id}:{}", s.expose());
        match parse_authorization(&h).unwrap() {
            AuthHeader::Key(c) => {
                assert_eq!(c.key_id, id);
                assert_eq!(c.secret.expose(), s.expose());
            }
            AuthHeader::Bearer(_) => panic!("expected a key"),
        }
    }

    #[test]
    fn names_each_failure() {
        let (id, s) = pair();
        assert_eq!(parse_authorization("").unwrap_err(), HeaderError::Missing);
        assert_eq!(
            parse_authorization("Key abc").unwrap_err(),
            HeaderError::MalformedKey
        );
        assert_eq!(
            parse_authorization("Key :x").unwrap_err(),
            HeaderError::MalformedKey
        );
        assert_eq!(
            parse_authorization("Key").unwrap_err(),
            HeaderError::MalformedKey
        );
        assert_eq!(
            parse_authorization(&format!("Key nope:{}", s.expose())).unwrap_err(),
            HeaderError::NoSuchKey
        );
        assert_eq!(
            parse_authorization(&format!("Key {id}:fal_sk_short")).unwrap_err(),
            HeaderError::NoSuchKey
        );
        assert_eq!(
            parse_authorization("Basic Zm9v").unwrap_err(),
            HeaderError::UnsupportedScheme
        );
        assert!(matches!(
            parse_authorization("Bearer tok"),
            Ok(AuthHeader::Bearer("tok"))
        ));
    }

    #[test]
    fn fal_key_form_splits_at_the_first_colon() {
        let (id, s) = pair();
        let c = parse_key_pair(&format!("{id}:{}", s.expose())).unwrap();
        assert_eq!(c.key_id, id);
        // A second colon belongs to the secret, which then fails its format.
        assert_eq!(
            parse_key_pair(&format!("{id}:{}:x", s.expose())).unwrap_err(),
            HeaderError::NoSuchKey
        );
    }

    proptest! {
        #[test]
        fn arbitrary_header_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let s = String::from_utf8_lossy(&b);
            let _ = parse_authorization(&s);
            let _ = parse_authorization(&format!("Key {s}"));
            let _ = parse_key_pair(&s);
        }

        #[test]
        fn near_miss_headers_never_panic(id in "[0-9a-f-]{0,40}", secret in "fal_sk_[0-9a-fA-Z:]{0,80}") {
            let _ = parse_authorization(&format!("Key {id}:{secret}"));
        }
    }
}
