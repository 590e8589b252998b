//! The verification rule: given the stored record for a claimed key id (or
//! none), decide who the caller is. One code path for known and unknown ids,
//! so both cost one keyed hash and one constant-time comparison.

use crate::hash::{SecretHash, SecretHasher};
use crate::header::Credentials;
use crate::key::{KeyId, UserId};
use crate::scope::Scope;

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

/// Verification failed. One variant on purpose: the caller learns nothing
/// about whether the id exists, is revoked, or the secret was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("No user found for Key ID and Secret")]
pub struct VerifyError;

/// Why verification failed, for the key's owner's usage counts only: the
/// caller is told [`VerifyError`] whatever the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No record for the id (nothing to count it against).
    UnknownKey,
    /// A known key id with a secret that does not match.
    WrongSecret,
    /// The right secret of a revoked key.
    Revoked,
}

/// Checks `creds` against `record` (the stored record for `creds.key_id`, if any).
pub fn verify(
    hasher: &SecretHasher,
    creds: &Credentials,
    record: Option<&KeyRecord>,
) -> Result<Principal, VerifyError> {
    verify_for_usage(hasher, creds, record).map_err(|_| VerifyError)
}

/// [`verify`], telling why it refused (one keyed hash whatever the
/// outcome, as there): a revoked key presented with a wrong secret is a
/// wrong secret, since only the secret's holder can be refused as revoked.
pub fn verify_for_usage(
    hasher: &SecretHasher,
    creds: &Credentials,
    record: Option<&KeyRecord>,
) -> Result<Principal, Refused> {
    let decoy = SecretHash::decoy();
    let stored = record.map(|r| &r.secret_hash).unwrap_or(&decoy);
    let secret_ok = hasher.verify(&creds.secret, stored);
    match record {
        Some(r) if secret_ok && !r.revoked && r.key_id == creds.key_id => Ok(Principal {
            user_id: r.user_id.clone(),
            key_id: Some(r.key_id),
            session_id: None,
            scope: r.scope,
            quota: None,
            apps: None,
        }),
        Some(r) if r.key_id != creds.key_id => Err(Refused::UnknownKey),
        Some(_) if !secret_ok => Err(Refused::WrongSecret),
        Some(_) => Err(Refused::Revoked),
        None => Err(Refused::UnknownKey),
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
    };
    Ok((record, secret))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Pepper;
    use crate::key::KeySecret;
    use crate::random::OsRandom;

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
        };
        (h, creds, rec)
    }

    #[test]
    fn right_secret_verifies_with_the_records_scope() {
        let (h, c, r) = setup();
        let p = verify(&h, &c, Some(&r)).unwrap();
        assert_eq!(p.scope, Scope::Api);
        assert_eq!(p.key_id, Some(c.key_id));
    }

    #[test]
    fn unknown_revoked_and_wrong_are_the_same_error() {
        let (h, c, mut r) = setup();
        assert_eq!(verify(&h, &c, None), Err(VerifyError));
        let wrong = Credentials {
            key_id: c.key_id,
            secret: KeySecret::generate(&OsRandom).unwrap(),
        };
        assert_eq!(verify(&h, &wrong, Some(&r)), Err(VerifyError));
        r.revoked = true;
        assert_eq!(verify(&h, &c, Some(&r)), Err(VerifyError));
    }

    #[test]
    fn the_reason_tells_wrong_secret_from_revoked_for_the_counts_only() {
        let (h, c, mut r) = setup();
        assert_eq!(verify_for_usage(&h, &c, None), Err(Refused::UnknownKey));
        let wrong = Credentials {
            key_id: c.key_id,
            secret: KeySecret::generate(&OsRandom).unwrap(),
        };
        assert_eq!(
            verify_for_usage(&h, &wrong, Some(&r)),
            Err(Refused::WrongSecret)
        );
        r.revoked = true;
        assert_eq!(verify_for_usage(&h, &c, Some(&r)), Err(Refused::Revoked));
        // Guessing at a revoked key is still guessing.
        assert_eq!(
            verify_for_usage(&h, &wrong, Some(&r)),
            Err(Refused::WrongSecret)
        );
    }
}
