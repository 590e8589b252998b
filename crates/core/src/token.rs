//! Session tokens, issued by the server after a sign-in: for the CLI a
//! short-lived access token (`fal_at_…`) sent as `Authorization: Bearer`,
//! and a refresh token (`fal_rt_…`) that is rotated on every use; for the
//! dashboard a web-session token (`fal_ws_…`) that lives only in its cookie.
//! Each prefix names where the token is accepted, so a token offered in the
//! wrong place is refused before any lookup. All are 256 random bits; the
//! server stores only their keyed hashes.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use crate::random::{RandomError, RandomSource};

/// Prefix of access tokens.
pub const ACCESS_PREFIX: &str = "fal_at_";
/// Prefix of refresh tokens.
pub const REFRESH_PREFIX: &str = "fal_rt_";
/// Prefix of the dashboard's session tokens (cookie only, never a bearer).
pub const WEB_PREFIX: &str = "fal_ws_";

/// A session token. `Debug` never shows it.
#[derive(Clone)]
pub struct SessionToken(SecretString);

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken([REDACTED])")
    }
}

impl SessionToken {
    /// A fresh token with `prefix` and 256 random bits.
    pub fn generate(prefix: &str, rng: &dyn RandomSource) -> Result<SessionToken, RandomError> {
        let mut raw = [0u8; 32];
        rng.fill(&mut raw)?;
        Ok(SessionToken(SecretString::from(format!(
            "{prefix}{}",
            hex::encode(raw)
        ))))
    }

    /// Wraps a token a client presented; `None` unless it has `prefix` and
    /// the right shape (so junk never reaches storage).
    pub fn parse(prefix: &str, text: &str) -> Option<SessionToken> {
        let body = text.strip_prefix(prefix)?;
        (body.len() == 64
            && body
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| SessionToken(SecretString::from(text.to_owned())))
    }

    /// The token's text.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;

    #[test]
    fn tokens_round_trip_and_hide_in_debug() {
        let t = SessionToken::generate(ACCESS_PREFIX, &OsRandom).unwrap();
        assert!(SessionToken::parse(ACCESS_PREFIX, t.expose()).is_some());
        assert!(SessionToken::parse(REFRESH_PREFIX, t.expose()).is_none());
        assert!(SessionToken::parse(WEB_PREFIX, t.expose()).is_none());
        assert!(SessionToken::parse(ACCESS_PREFIX, "fal_at_xyz").is_none());
        assert!(!format!("{t:?}").contains(&t.expose()[7..]));
    }
}
