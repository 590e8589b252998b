//! Key ids and key secrets.
//!
//! A key id is a UUID (v4), as fal's are. A key secret is
//! `fal_sk_` + 64 lowercase hex digits (256 random bits) + 8 hex digits of
//! checksum (the first 4 bytes of SHA-256 over the 64 random digits). The
//! prefix lets a leaked secret be found by the regex
//! `fal_sk_[0-9a-f]{72}`; the checksum lets a mistyped secret be refused
//! before any storage lookup. See `docs/key-format.md`.

use std::fmt;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::random::{RandomError, RandomSource};

/// The prefix of every key secret.
pub const SECRET_PREFIX: &str = "fal_sk_";
/// Random bytes in a secret (256 bits).
pub const SECRET_RANDOM_BYTES: usize = 32;
/// Length of the hex body of a secret (random part).
const BODY_HEX: usize = SECRET_RANDOM_BYTES * 2;
/// Length of the hex checksum.
const CHECKSUM_HEX: usize = 8;
/// Total length of a well-formed secret.
pub const SECRET_LEN: usize = SECRET_PREFIX.len() + BODY_HEX + CHECKSUM_HEX;

/// The public identifier of a key pair. Safe to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(Uuid);

impl KeyId {
    /// A fresh random key id.
    pub fn generate(rng: &dyn RandomSource) -> Result<KeyId, RandomError> {
        let mut b = [0u8; 16];
        rng.fill(&mut b)?;
        Ok(KeyId(uuid::Builder::from_random_bytes(b).into_uuid()))
    }

    /// The UUID inside.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// The id with these sixteen bytes (a UUID's, in order).
    pub fn from_bytes(bytes: [u8; 16]) -> KeyId {
        KeyId(Uuid::from_bytes(bytes))
    }

    /// Its sixteen bytes.
    pub fn to_bytes(&self) -> [u8; 16] {
        *self.0.as_bytes()
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hyphenated lowercase, the form fal prints.
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

/// The text was not a key id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a key id is a UUID such as 1f2e3d4c-5b6a-4789-8abc-def012345678")]
pub struct InvalidKeyId;

impl FromStr for KeyId {
    type Err = InvalidKeyId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::try_parse(s).map(KeyId).map_err(|_| InvalidKeyId)
    }
}

/// The identifier of a user. Safe to log. Shared (`Arc<str>`) because every
/// verified request clones it into its principal: cloning must not allocate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(std::sync::Arc<str>);

impl UserId {
    /// A fresh random user id (a UUID in text form).
    pub fn generate(rng: &dyn RandomSource) -> Result<UserId, RandomError> {
        let mut b = [0u8; 16];
        rng.fill(&mut b)?;
        Ok(UserId(
            uuid::Builder::from_random_bytes(b)
                .into_uuid()
                .hyphenated()
                .to_string()
                .into(),
        ))
    }

    /// Wraps an id read back from storage.
    pub fn from_stored(s: String) -> UserId {
        UserId(s.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a string is not a well-formed key secret. None of these messages
/// repeat the input, so a mistyped secret never reaches a log through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    /// Wrong prefix.
    #[error("a key secret starts with {SECRET_PREFIX:?}")]
    Prefix,
    /// Wrong length.
    #[error("a key secret is {SECRET_LEN} characters long")]
    Length,
    /// A character outside lowercase hex after the prefix.
    #[error("a key secret has only lowercase hex digits after its prefix")]
    Charset,
    /// The checksum does not match: the secret was mistyped or truncated.
    #[error("the key secret's checksum does not match: it was mistyped or altered")]
    Checksum,
}

/// A key secret. Its `Debug` shows nothing of the value, and it is only
/// reachable through [`KeySecret::expose`], so it cannot be logged by
/// accident.
#[derive(Clone)]
pub struct KeySecret(SecretString);

impl fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeySecret([REDACTED])")
    }
}

/// CRC-32 of the body: catches every single-character typo and most
/// others, and costs a few nanoseconds (a cryptographic digest here would
/// cost as much as the keyed hash that follows). It protects against
/// mistakes, not attackers: the keyed hash does that.
fn checksum(body: &str) -> [u8; CHECKSUM_HEX / 2] {
    crc32fast::hash(body.as_bytes()).to_be_bytes()
}

fn checksum_hex(body: &str) -> String {
    hex::encode(checksum(body))
}

impl KeySecret {
    /// A fresh secret with 256 bits from `rng`.
    pub fn generate(rng: &dyn RandomSource) -> Result<KeySecret, RandomError> {
        let mut raw = [0u8; SECRET_RANDOM_BYTES];
        rng.fill(&mut raw)?;
        let body = hex::encode(raw);
        let sum = checksum_hex(&body);
        Ok(KeySecret(SecretString::from(format!(
            "{SECRET_PREFIX}{body}{sum}"
        ))))
    }

    /// Checks the format and checksum of `s` without touching any storage.
    pub fn parse(s: &str) -> Result<KeySecret, KeyFormatError> {
        let rest = s
            .strip_prefix(SECRET_PREFIX)
            .ok_or(KeyFormatError::Prefix)?;
        if rest.len() != BODY_HEX + CHECKSUM_HEX {
            return Err(KeyFormatError::Length);
        }
        // Folded without stopping early, so that it runs as vector code:
        // every model call parses a secret.
        let lower_hex = rest.bytes().fold(true, |ok, b| {
            ok & (b.is_ascii_digit() | (b'a'..=b'f').contains(&b))
        });
        if !lower_hex {
            return Err(KeyFormatError::Charset);
        }
        let (body, sum) = rest.split_at(BODY_HEX);
        let mut given = [0u8; CHECKSUM_HEX / 2];
        hex::decode_to_slice(sum, &mut given).map_err(|_| KeyFormatError::Charset)?;
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            &checksum(body)[..],
            &given[..],
        )) {
            return Err(KeyFormatError::Checksum);
        }
        Ok(KeySecret(SecretString::from(s.to_owned())))
    }

    /// The secret's text: for hashing, and for showing it once at creation.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;
    use proptest::prelude::*;

    #[test]
    fn generated_secret_round_trips_and_has_the_documented_shape() {
        let s = KeySecret::generate(&OsRandom).unwrap();
        assert_eq!(s.expose().len(), SECRET_LEN);
        assert!(s.expose().starts_with("fal_sk_"));
        assert!(KeySecret::parse(s.expose()).is_ok());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let s = KeySecret::generate(&OsRandom).unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains(&s.expose()[7..]));
    }

    #[test]
    fn a_single_typo_is_caught_by_the_checksum() {
        let s = KeySecret::generate(&OsRandom).unwrap();
        let text = s.expose();
        for i in SECRET_PREFIX.len()..text.len() {
            let mut b = text.as_bytes().to_vec();
            b[i] = if b[i] == b'a' { b'b' } else { b'a' };
            let typo = String::from_utf8(b).unwrap();
            assert_eq!(
                KeySecret::parse(&typo).unwrap_err(),
                KeyFormatError::Checksum
            );
        }
    }

    #[test]
    fn wrong_shapes_are_named() {
        assert_eq!(
            KeySecret::parse("sk_abc").unwrap_err(),
            KeyFormatError::Prefix
        );
        assert_eq!(
            KeySecret::parse("fal_sk_abc").unwrap_err(),
            KeyFormatError::Length
        );
        let upper = format!("fal_sk_{}", "A".repeat(72));
        assert_eq!(
            KeySecret::parse(&upper).unwrap_err(),
            KeyFormatError::Charset
        );
    }

    #[test]
    fn key_ids_are_uuids() {
        let id = KeyId::generate(&OsRandom).unwrap();
        assert_eq!(id.to_string().parse::<KeyId>().unwrap(), id);
        assert!("not-a-uuid".parse::<KeyId>().is_err());
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(s in ".*") {
            let _ = KeySecret::parse(&s);
            let _ = s.parse::<KeyId>();
        }

        #[test]
        fn parsing_arbitrary_bytes_never_panics(b in proptest::collection::vec(any::<u8>(), 0..120)) {
            let s = String::from_utf8_lossy(&b);
            let _ = KeySecret::parse(&s);
            let with_prefix = format!("fal_sk_{s}");
            let _ = KeySecret::parse(&with_prefix);
        }
    }
}
