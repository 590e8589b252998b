//! Short-lived app tokens (fal's `POST /tokens/`): JWTs signed with
//! HS256 under a key derived from the pepper, so every server that shares
//! the pepper checks every other's tokens without storage.
//!
//! Only our own form is taken: the header must be exactly the one we
//! write (`{"alg":"HS256","typ":"JWT"}`), so no other algorithm (`none`
//! among them) can be asked for.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::allowed_apps::AllowedApps;
use crate::hash::SecretHasher;
use crate::key::{KeyId, UserId};
use crate::scope::Scope;
use crate::time::Timestamp;

/// Label of the signing key derived from the pepper.
const SIGNING_LABEL: &str = "fal app token v1";

/// `{"alg":"HS256","typ":"JWT"}`, base64url: the only header taken.
const HEADER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// Longest token looked at (a token lists at most 100 apps).
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// A signed token. `Debug` never shows it.
pub struct AppToken(SecretString);

impl fmt::Debug for AppToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AppToken([REDACTED])")
    }
}

impl AppToken {
    /// The token, to hand to its caller once.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppTokenClaims {
    /// Whose.
    pub user_id: UserId,
    /// Minted with this key (revoking it ends the token).
    pub key_id: Option<KeyId>,
    /// Minted with this session, when not a key (ending it ends the token).
    pub session_id: Option<String>,
    /// The scope of what minted it.
    pub scope: Scope,
    /// The apps it may call.
    pub apps: AllowedApps,
    /// Issued at (seconds since the epoch).
    pub issued_at: i64,
    /// Not accepted from this second on.
    pub expires_at: i64,
    /// A random id for this token (for logs).
    pub token_id: String,
}

/// The claims as written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<KeyId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    scope: Scope,
    apps: Vec<String>,
    iat: i64,
    exp: i64,
    jti: String,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AppTokenError {
    /// Not one of our tokens: malformed, or the signature does not match.
    #[error("invalid token")]
    Invalid,
    /// Ours, but past its expiry.
    #[error("token expired")]
    Expired,
}

/// Whether `s` has the shape of a JWT (three base64url parts), so that it
/// goes to the token check rather than to sessions.
pub fn looks_like_jwt(s: &str) -> bool {
    s.bytes().filter(|&b| b == b'.').count() == 2
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The key tokens are signed with. `Debug` never shows it.
pub struct AppTokenKey(SecretBox<[u8; 32]>);

impl fmt::Debug for AppTokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AppTokenKey([REDACTED])")
    }
}

impl AppTokenKey {
    /// The signing key every server with this pepper derives.
    pub fn derive(hasher: &SecretHasher) -> AppTokenKey {
        AppTokenKey(SecretBox::new(Box::new(hasher.derive_key(SIGNING_LABEL))))
    }

    fn mac(&self, signed: &str) -> [u8; 32] {
        let mut m = match Hmac::<Sha256>::new_from_slice(self.0.expose_secret()) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        m.update(signed.as_bytes());
        m.finalize().into_bytes().into()
    }

    /// Signs `claims`.
    pub fn sign(&self, claims: &AppTokenClaims) -> AppToken {
        let wire = Wire {
            sub: claims.user_id.as_str().to_owned(),
            key: claims.key_id,
            sid: claims.session_id.clone(),
            scope: claims.scope,
            apps: claims.apps.entries().collect(),
            iat: claims.issued_at,
            exp: claims.expires_at,
            jti: claims.token_id.clone(),
        };
        // Plain data: serialising it cannot fail.
        let payload = serde_json::to_vec(&wire).unwrap_or_default();
        let signed = format!("{HEADER}.{}", encode(&payload));
        let sig = encode(&self.mac(&signed));
        AppToken(SecretString::from(format!("{signed}.{sig}")))
    }

    /// The claims of `token` if it is ours, unaltered, and not expired at
    /// `now`.
    pub fn open(&self, token: &str, now: Timestamp) -> Result<AppTokenClaims, AppTokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AppTokenError::Invalid);
        }
        let (signed, sig) = token.rsplit_once('.').ok_or(AppTokenError::Invalid)?;
        let (header, payload) = signed.split_once('.').ok_or(AppTokenError::Invalid)?;
        let expected = encode(&self.mac(signed));
        let sig_ok =
            expected.len() == sig.len() && bool::from(expected.as_bytes().ct_eq(sig.as_bytes()));
        if !sig_ok || header != HEADER {
            return Err(AppTokenError::Invalid);
        }
        let bytes = decode(payload).ok_or(AppTokenError::Invalid)?;
        let wire: Wire = serde_json::from_slice(&bytes).map_err(|_| AppTokenError::Invalid)?;
        let apps = AllowedApps::parse(&wire.apps).map_err(|_| AppTokenError::Invalid)?;
        if wire.key.is_none() == wire.sid.is_none() {
            return Err(AppTokenError::Invalid);
        }
        if now.millis() >= wire.exp.saturating_mul(1000) {
            return Err(AppTokenError::Expired);
        }
        Ok(AppTokenClaims {
            user_id: UserId::from_stored(wire.sub),
            key_id: wire.key,
            session_id: wire.sid,
            scope: wire.scope,
            apps,
            issued_at: wire.iat,
            expires_at: wire.exp,
            token_id: wire.jti,
        })
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Unpadded base64url (RFC 4648 §5), as JWTs and PKCE use it.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Decodes unpadded base64url; `None` for anything else.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        Some(u32::from(v))
    };
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 2);
    for chunk in text.as_bytes().chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Pepper;
    use crate::random::OsRandom;

    fn key() -> AppTokenKey {
        AppTokenKey::derive(&SecretHasher::new(&Pepper::generate(&OsRandom).unwrap()))
    }

    fn claims() -> AppTokenClaims {
        AppTokenClaims {
            user_id: UserId::from_stored("u1".into()),
            key_id: Some(KeyId::generate(&OsRandom).unwrap()),
            session_id: None,
            scope: Scope::Api,
            apps: AllowedApps::parse(&["echo", "acme/tts"]).unwrap(),
            issued_at: 1_000,
            expires_at: 1_120,
            token_id: "t1".into(),
        }
    }

    #[test]
    fn base64url_round_trips() {
        for n in 0..20u8 {
            let bytes: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(decode(&encode(&bytes)).unwrap(), bytes);
        }
        assert_eq!(encode(br#"{"alg":"HS256","typ":"JWT"}"#), HEADER);
        assert!(decode("a").is_none());
        assert!(decode("ab=c").is_none());
    }

    #[test]
    fn opens_what_it_signed_until_it_expires() {
        let k = key();
        let c = claims();
        let t = k.sign(&c);
        assert!(looks_like_jwt(t.expose()));
        assert_eq!(k.open(t.expose(), Timestamp(1_119_999)).unwrap(), c);
        assert_eq!(
            k.open(t.expose(), Timestamp(1_120_000)),
            Err(AppTokenError::Expired)
        );
        assert_eq!(format!("{t:?}"), "AppToken([REDACTED])");
    }

    #[test]
    fn refuses_other_keys_tampering_and_other_algorithms() {
        let k = key();
        let t = k.sign(&claims());
        let now = Timestamp(1_000_000);
        assert_eq!(key().open(t.expose(), now), Err(AppTokenError::Invalid));
        let (head, rest) = t.expose().split_once('.').unwrap();
        let (payload, sig) = rest.split_once('.').unwrap();
        let mut wire: serde_json::Value =
            serde_json::from_slice(&decode(payload).unwrap()).unwrap();
        wire["apps"] = serde_json::json!(["other"]);
        let forged = encode(&serde_json::to_vec(&wire).unwrap());
        let tampered = format!("{head}.{forged}.{sig}");
        assert_eq!(k.open(&tampered, now), Err(AppTokenError::Invalid));
        let none = format!("{}.{payload}.", encode(br#"{"alg":"none","typ":"JWT"}"#));
        assert_eq!(k.open(&none, now), Err(AppTokenError::Invalid));
        for junk in ["", "a.b", "a.b.c", "...", "fal_at_x"] {
            assert_eq!(k.open(junk, now), Err(AppTokenError::Invalid));
        }
        assert!(!looks_like_jwt("fal_at_abc"));
    }
}
