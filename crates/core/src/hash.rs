//! The keyed hash under which secrets are stored.
//!
//! A secret is stored only as HMAC-SHA-256(pepper, secret). The pepper lives
//! outside the database (a 0600 file), so a stolen database alone cannot be
//! used to test guesses. Secrets carry 256 random bits, so a slow password
//! hash would add cost without adding safety; a fast keyed hash is enough.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::key::{KeyId, KeySecret};
use crate::random::{RandomError, RandomSource};

type HmacSha256 = Hmac<Sha256>;

/// Bytes in a pepper.
pub const PEPPER_BYTES: usize = 32;

/// The server-side secret key of the keyed hash.
pub struct Pepper(SecretBox<[u8; PEPPER_BYTES]>);

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pepper([REDACTED])")
    }
}

/// A pepper file's content was not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a pepper is {} hex digits (it is created for you on first start)", PEPPER_BYTES * 2)]
pub struct InvalidPepper;

impl Pepper {
    /// A fresh random pepper.
    pub fn generate(rng: &dyn RandomSource) -> Result<Pepper, RandomError> {
        let mut b = Box::new([0u8; PEPPER_BYTES]);
        rng.fill(&mut b[..])?;
        Ok(Pepper(SecretBox::new(b)))
    }

    /// Reads the hex form kept in a pepper file (surrounding white space ignored).
    pub fn from_hex(text: &str) -> Result<Pepper, InvalidPepper> {
        let mut b = Box::new([0u8; PEPPER_BYTES]);
        hex::decode_to_slice(text.trim(), &mut b[..]).map_err(|_| InvalidPepper)?;
        Ok(Pepper(SecretBox::new(b)))
    }

    /// The hex form to write into a pepper file.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.expose_secret())
    }
}

/// A stored secret hash (32 bytes). Not secret by itself, but compared only
/// in constant time.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash([u8; 32]);

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

/// A stored hash was not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored secret hash is malformed")]
pub struct InvalidHash;

impl SecretHash {
    /// The hex form kept in storage.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Reads the hex form kept in storage.
    pub fn from_hex(text: &str) -> Result<SecretHash, InvalidHash> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(text, &mut b).map_err(|_| InvalidHash)?;
        Ok(SecretHash(b))
    }

    /// A hash that no secret is known to produce; compared against when a key
    /// id is unknown, so an unknown id costs the same work as a wrong secret.
    pub fn decoy() -> SecretHash {
        SecretHash([0u8; 32])
    }
}

/// HMAC-SHA-256 keyed with the pepper. The keyed state is computed once and
/// cloned per hash, which saves two of the four compression rounds.
#[derive(Clone)]
pub struct SecretHasher {
    /// The HMAC state after absorbing the pepper.
    keyed: HmacSha256,
}

impl fmt::Debug for SecretHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHasher([REDACTED])")
    }
}

/// Label of the tag a key id minted here carries (see
/// [`SecretHasher::mint_key_id`]).
const KEY_ID_TAG_LABEL: &[u8] = b"fal key id tag v1\0";

/// Label hashed to fingerprint a pepper (see [`SecretHasher::pepper_fingerprint`]).
const FINGERPRINT_LABEL: &[u8] = b"fal pepper fingerprint v1";

impl SecretHasher {
    /// A hasher keyed with `pepper`.
    pub fn new(pepper: &Pepper) -> SecretHasher {
        // HMAC accepts keys of any length, so this cannot fail.
        let keyed = match <HmacSha256 as KeyInit>::new_from_slice(pepper.0.expose_secret()) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        SecretHasher { keyed }
    }

    fn mac(&self, data: &[u8]) -> [u8; 32] {
        let mut m = self.keyed.clone();
        m.update(data);
        m.finalize().into_bytes().into()
    }

    /// The stored form of `secret`.
    pub fn hash(&self, secret: &KeySecret) -> SecretHash {
        SecretHash(self.mac(secret.expose().as_bytes()))
    }

    /// The stored form of a session token (same keyed hash as key secrets).
    pub fn hash_token(&self, token: &crate::token::SessionToken) -> SecretHash {
        SecretHash(self.mac(token.expose().as_bytes()))
    }

    /// A keyed digest of `label` and `data` in hex, for values derived from a
    /// secret that must not reveal it (such as a CSRF token bound to a
    /// session token).
    pub fn derive_hex(&self, label: &str, data: &str) -> String {
        let mut m = self.keyed.clone();
        m.update(label.as_bytes());
        m.update(&[0]);
        m.update(data.as_bytes());
        let out: [u8; 32] = m.finalize().into_bytes().into();
        hex::encode(&out[..16])
    }

    /// A 256-bit key for `label`, derived from the pepper (an HMAC of the
    /// label under the pepper), for encrypting values the server keeps at
    /// rest. Distinct labels give independent keys.
    pub fn derive_key(&self, label: &str) -> [u8; 32] {
        let mut m = self.keyed.clone();
        m.update(b"fal derived key v1");
        m.update(&[0]);
        m.update(label.as_bytes());
        m.finalize().into_bytes().into()
    }

    /// The tag of a key id whose first twelve bytes are `head`: the first
    /// four bytes of a keyed hash of them.
    fn key_id_tag(&self, head: &[u8]) -> [u8; 4] {
        let mut m = self.keyed.clone();
        m.update(KEY_ID_TAG_LABEL);
        m.update(head);
        let out: [u8; 32] = m.finalize().into_bytes().into();
        [out[0], out[1], out[2], out[3]]
    }

    /// A fresh key id that carries, in its last four bytes, a tag keyed
    /// with the pepper: a random UUID (version 4) but for those 32 bits.
    /// A server can then tell an id it minted from a made-up one without
    /// reading storage ([`SecretHasher::minted_here`]); only a holder of
    /// the pepper can mint a tagged id, and a made-up id carries a valid
    /// tag once in 2^32.
    pub fn mint_key_id(&self, rng: &dyn RandomSource) -> Result<KeyId, RandomError> {
        let mut b = [0u8; 16];
        rng.fill(&mut b)?;
        let mut bytes = *uuid::Builder::from_random_bytes(b).into_uuid().as_bytes();
        let tag = self.key_id_tag(&bytes[..12]);
        bytes[12..].copy_from_slice(&tag);
        Ok(KeyId::from_bytes(bytes))
    }

    /// Whether `key_id` carries the tag of an id minted with this pepper.
    pub fn minted_here(&self, key_id: &KeyId) -> bool {
        let bytes = key_id.to_bytes();
        self.key_id_tag(&bytes[..12]).ct_eq(&bytes[12..]).into()
    }

    /// Whether `secret` hashes to `stored`, compared in constant time.
    pub fn verify(&self, secret: &KeySecret, stored: &SecretHash) -> bool {
        let computed = self.mac(secret.expose().as_bytes());
        computed.ct_eq(&stored.0).into()
    }

    /// A value recorded in the database at initialisation: a server whose
    /// pepper gives another fingerprint refuses to start instead of silently
    /// rejecting every key. It reveals nothing about the pepper.
    pub fn pepper_fingerprint(&self) -> String {
        hex::encode(&self.mac(FINGERPRINT_LABEL)[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;

    #[test]
    fn verifies_the_right_secret_only() {
        let h = SecretHasher::new(&Pepper::generate(&OsRandom).unwrap());
        let s = KeySecret::generate(&OsRandom).unwrap();
        let other = KeySecret::generate(&OsRandom).unwrap();
        let stored = h.hash(&s);
        assert!(h.verify(&s, &stored));
        assert!(!h.verify(&other, &stored));
        assert!(!h.verify(&s, &SecretHash::decoy()));
    }

    #[test]
    fn another_pepper_gives_another_hash_and_fingerprint() {
        let a = SecretHasher::new(&Pepper::generate(&OsRandom).unwrap());
        let b = SecretHasher::new(&Pepper::generate(&OsRandom).unwrap());
        let s = KeySecret::generate(&OsRandom).unwrap();
        assert!(!b.verify(&s, &a.hash(&s)));
        assert_ne!(a.pepper_fingerprint(), b.pepper_fingerprint());
    }

    #[test]
    fn pepper_and_hash_hex_round_trip() {
        let p = Pepper::generate(&OsRandom).unwrap();
        let q = Pepper::from_hex(&format!("{}\n", p.to_hex())).unwrap();
        let s = KeySecret::generate(&OsRandom).unwrap();
        let (hp, hq) = (SecretHasher::new(&p), SecretHasher::new(&q));
        assert_eq!(hp.hash(&s), hq.hash(&s));
        assert_eq!(
            SecretHash::from_hex(&hp.hash(&s).to_hex()).unwrap(),
            hp.hash(&s)
        );
        assert!(Pepper::from_hex("xyz").is_err());
        assert!(format!("{p:?}").contains("REDACTED"));
    }

    #[test]
    fn minted_key_ids_carry_a_tag_only_the_pepper_makes() {
        let h = SecretHasher::new(&Pepper::generate(&crate::random::OsRandom).unwrap());
        let other = SecretHasher::new(&Pepper::generate(&crate::random::OsRandom).unwrap());
        for _ in 0..100 {
            let id = h.mint_key_id(&crate::random::OsRandom).unwrap();
            assert!(h.minted_here(&id));
            assert!(!other.minted_here(&id));
            assert_eq!(id.as_uuid().get_version_num(), 4, "{id}");
            let made_up = KeyId::generate(&crate::random::OsRandom).unwrap();
            assert!(!h.minted_here(&made_up));
            // A one-bit change anywhere breaks the tag.
            let mut b = id.to_bytes();
            b[3] ^= 1;
            assert!(!h.minted_here(&KeyId::from_bytes(b)));
        }
    }
}
