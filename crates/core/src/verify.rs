//! The verification rule: given the stored record for a claimed key id (or
//! none), decide who the caller is. One code path for known and unknown ids,
//! so both cost one keyed hash and one constant-time comparison.

use crate::hash::{SecretHash, SecretHasher};
use crate::header::Credentials;
use crate::key::{KeyId, UserId};
use crate::scope::Scope;
use crate::time::Timestamp;

/// What storage knows about a key, as verification needs it.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    /// The key's id.
    pub key_id: KeyId,
    /// The user who owns it.
    pub user_id: UserId,
    /// What it may do.
    pub scope: Scope,
    /// The keyed hash of its secret.
    pub secret_hash: SecretHash,
    /// Revoked keys are kept (for audit) but never verify.
    pub revoked: bool,
    /// Calls allowed per window, when limited.
    pub rate_limit: Option<crate::rate::RateLimit>,
    /// When it stops working, if it does (see [`crate::lifetime`]).
    pub expires_at: Option<Timestamp>,
    /// It was rolled: replaced by a new pair, and `expires_at` is the end
    /// of its grace (or its own expiry, if sooner).
    pub rolled: bool,
}

impl KeyRecord {
    /// Whether the key has expired at `now` (one comparison: cached
    /// records are checked on every use).
    pub fn expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }

    /// Why this key, presented with its right secret, is refused at `now`;
    /// `None` when it is good.
    pub fn refusal(&self, now: Timestamp) -> Option<VerifyError> {
        match self.expires_at {
            _ if self.revoked => Some(VerifyError::Revoked),
            Some(t) if t <= now && self.rolled => Some(VerifyError::Rolled(t)),
            Some(t) if t <= now => Some(VerifyError::Expired(t)),
            _ => None,
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who.
    pub user_id: UserId,
    /// With which key (None for a GitHub-login session).
    pub key_id: Option<KeyId>,
    /// With which session (GitHub login), when not a key.
    pub session_id: Option<String>,
    /// With what permission.
    pub scope: Scope,
    /// Where this call leaves the key's rate limit, when it has one (for
    /// the `RateLimit-*` headers of the answer).
    pub quota: Option<crate::rate::Quota>,
    /// The apps it may call, for a short-lived token (`None`: any app,
    /// and any route its scope allows; `Some`: those apps and nothing
    /// else).
    pub apps: Option<crate::allowed_apps::AllowedApps>,
}

impl Principal {
    /// Whether this caller may call the app `owner/name`: any caller
    /// without an app restriction, a token only for its apps.
    pub fn may_call(&self, owner: &str, name: &str) -> bool {
        self.apps.as_ref().is_none_or(|a| a.allows(owner, name))
    }

    /// Whether this is a short-lived token's caller, which may call models
    /// and nothing else.
    pub fn is_app_token(&self) -> bool {
        self.apps.is_some()
    }
}

/// Verification failed. Without the right secret the caller learns
/// nothing about whether the id exists, is revoked or expired, or the
/// secret was wrong: that is always [`VerifyError::Invalid`]. Only a caller
/// who holds the right secret learns why a key it holds stopped working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Unknown id, or wrong secret (or both).
    #[error("No user found for Key ID and Secret")]
    Invalid,
    /// The right secret of a revoked key.
    #[error("This key was revoked")]
    Revoked,
    /// The right secret of a key that expired at this instant.
    #[error("This key expired at {}", .0.to_rfc3339())]
    Expired(Timestamp),
    /// The right secret of a rolled key whose grace ended at this instant.
    #[error("This key was rolled; its grace ended at {}", .0.to_rfc3339())]
    Rolled(Timestamp),
}

/// Checks `creds` against `record` (the stored record for `creds.key_id`,
/// if any) at `now`. The secret is compared (in constant time, against a
/// decoy when there is no record) before anything else is looked at.
pub fn verify(
    hasher: &SecretHasher,
    creds: &Credentials,
    record: Option<&KeyRecord>,
    now: Timestamp,
) -> Result<Principal, VerifyError> {
    let decoy = SecretHash::decoy();
    let stored = record.map(|r| &r.secret_hash).unwrap_or(&decoy);
    let secret_ok = hasher.verify(&creds.secret, stored);
    match record {
        Some(r) if secret_ok && r.key_id == creds.key_id => match r.refusal(now) {
            Some(why) => Err(why),
            None => Ok(Principal {
                user_id: r.user_id.clone(),
                key_id: Some(r.key_id),
                session_id: None,
                scope: r.scope,
                quota: None,
                apps: None,
            }),
        },
        _ => Err(VerifyError::Invalid),
    }
}

/// Makes a new key for `user_id`: a fresh id and secret, and the record to
/// store (which holds only the secret's keyed hash). The secret is returned
/// once, to be shown to its owner and then dropped.
pub fn mint_key(
    rng: &dyn crate::RandomSource,
    hasher: &SecretHasher,
    user_id: &UserId,
    scope: Scope,
) -> Result<(KeyRecord, crate::KeySecret), crate::random::RandomError> {
    let key_id = hasher.mint_key_id(rng)?;
    let secret = crate::KeySecret::generate(rng)?;
    let record = KeyRecord {
        key_id,
        user_id: user_id.clone(),
        scope,
        secret_hash: hasher.hash(&secret),
        revoked: false,
        rate_limit: None,
        expires_at: None,
        rolled: false,
    };
    Ok((record, secret))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Pepper;
    use crate::key::KeySecret;
    use crate::random::OsRandom;

    const NOW: Timestamp = Timestamp(1_795_860_000_000);

    fn setup() -> (SecretHasher, Credentials, KeyRecord) {
        let h = SecretHasher::new(&Pepper::generate(&OsRandom).unwrap());
        let creds = Credentials {
            key_id: KeyId::generate(&OsRandom).unwrap(),
            secret: KeySecret::generate(&OsRandom).unwrap(),
        };
        let rec = KeyRecord {
            key_id: creds.key_id,
            user_id: UserId::from_stored("u1".into()),
            scope: Scope::Api,
            secret_hash: h.hash(&creds.secret),
            revoked: false,
            rate_limit: None,
            expires_at: None,
            rolled: false,
        };
        (h, creds, rec)
    }

    #[test]
    fn right_secret_verifies_with_the_records_scope() {
        let (h, c, r) = setup();
        let p = verify(&h, &c, Some(&r), NOW).unwrap();
        assert_eq!(p.scope, Scope::Api);
        assert_eq!(p.key_id, Some(c.key_id));
    }

    #[test]
    fn unknown_and_wrong_are_the_same_error_whatever_the_keys_state() {
        let (h, c, mut r) = setup();
        assert_eq!(verify(&h, &c, None, NOW), Err(VerifyError::Invalid));
        let wrong = Credentials {
            key_id: c.key_id,
            secret: KeySecret::generate(&OsRandom).unwrap(),
        };
        let states: [fn(&mut KeyRecord); 3] = [
            |_| {},
            |r| r.revoked = true,
            |r| r.expires_at = Some(Timestamp(NOW.0 - 1)),
        ];
        for state in states {
            state(&mut r);
            assert_eq!(verify(&h, &wrong, Some(&r), NOW), Err(VerifyError::Invalid));
        }
    }

    #[test]
    fn the_right_secret_learns_why_its_key_stopped_working() {
        let (h, c, mut r) = setup();
        let at = NOW.plus_millis(1000);
        r.expires_at = Some(at);
        assert!(verify(&h, &c, Some(&r), NOW).is_ok());
        assert!(verify(&h, &c, Some(&r), Timestamp(at.0 - 1)).is_ok());
        assert_eq!(verify(&h, &c, Some(&r), at), Err(VerifyError::Expired(at)));
        r.rolled = true;
        assert_eq!(verify(&h, &c, Some(&r), at), Err(VerifyError::Rolled(at)));
        r.revoked = true;
        assert_eq!(verify(&h, &c, Some(&r), NOW), Err(VerifyError::Revoked));
        assert!(
            VerifyError::Expired(at)
                .to_string()
                .contains("2026-11-28T10:00:01.000Z")
        );
    }
}
