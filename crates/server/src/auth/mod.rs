//! Authentication and the handles that authorise.
//!
//! [`Verifier`] turns an `Authorization` header into a [`fal_core::Principal`].
//! Authorisation is by construction: key and app management are reachable
//! only through an [`Admin`] value, made only by [`Admin::for_principal`],
//! which refuses any principal without ADMIN scope; the stores behind it
//! are private fields of [`AdminStores`]. Work only operators may do goes
//! through an [`Operator`], which only an `Admin` can become.
//!
//! # Layout
//! - [`verifier`]: the key cache, staleness, batched last-use writes;
//!   short-lived app tokens (`verifier::tokens`), checked through it.
//! - [`key_feed`]: follows the key change log, so that the cache stays
//!   current with one query per interval; [`legacy_ids`]: the untagged key
//!   ids that may exist, so made-up ones are refused without storage.
//! - [`sessions`]: sessions after GitHub sign-in, and CSRF proofs.
//! - [`admin`]: [`Admin`] and the stores it alone may use; key management.
//! - [`leaks`]: revoking keys a signed secret scanning report names (the
//!   one way to the key stores without an [`Admin`]: a checked signature).
//! - `apps`, `operator`: what an [`Admin`] may do with apps, and the
//!   [`Operator`] handle.
//!
//! Imports the gateway's app directory and reach policy (which admin work
//! changes) and `secret_scanning`'s signed report, never the state or the handlers, which import it.

pub mod admin;
mod apps;
pub mod key_feed;
pub mod leaks;
pub mod legacy_ids;
mod operator;
pub mod sessions;
pub mod verifier;

pub use admin::{Admin, AdminParts, AdminStores, CreatedKey, RolledKey};
pub use apps::Viewer;
pub use operator::Operator;
pub use verifier::tokens::{DEFAULT_TOKEN_SECONDS, MAX_TOKEN_SECONDS};
pub use verifier::{PENDING_SOFT_LIMIT, Verifier};

use crate::error::ApiError;

/// Why a request is not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credentials.
    Missing,
    /// Unsupported scheme.
    UnsupportedScheme,
    /// Malformed `Key` header.
    Malformed,
    /// Unknown id or wrong secret (whatever the key's state).
    Invalid,
    /// The right secret of a revoked key.
    KeyRevoked,
    /// The right secret of a key that expired at this instant.
    KeyExpired(fal_core::Timestamp),
    /// The right secret of a rolled key whose grace ended at this instant.
    KeyRolled(fal_core::Timestamp),
    /// Storage is down and the key is not in cache.
    Unavailable,
    /// A session token that is unknown, expired or logged out.
    InvalidSession,
    /// A short-lived app token past its expiry.
    TokenExpired,
    /// A short-lived app token on a route other than a model call's.
    TokenNotAccepted,
    /// Right credentials, but the key's rate limit is used up.
    RateLimited(crate::quota::RateRefusal),
}

impl AuthFailure {
    /// Whether presented credentials were refused (wrong secret, unknown
    /// id, malformed key, bad session token, bad or expired app token):
    /// what failed-auth throttling counts. No credentials, a scheme we do
    /// not take, a good token on the wrong route and storage being down
    /// say nothing about guessing, and do not count.
    pub fn is_refusal(self) -> bool {
        matches!(
            self,
            AuthFailure::Malformed
                | AuthFailure::Invalid
                | AuthFailure::KeyRevoked
                | AuthFailure::KeyExpired(_)
                | AuthFailure::KeyRolled(_)
                | AuthFailure::InvalidSession
                | AuthFailure::TokenExpired
        )
    }
}

impl AuthFailure {
    /// The error code the caller gets, and the `reason` metrics count it
    /// under (see [`crate::metrics::REFUSALS`]).
    pub fn code(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing_credentials",
            AuthFailure::UnsupportedScheme => "unsupported_scheme",
            AuthFailure::Malformed => "malformed_authorization",
            AuthFailure::Invalid => "invalid_credentials",
            AuthFailure::KeyRevoked => "key_revoked",
            AuthFailure::KeyExpired(_) => "key_expired",
            AuthFailure::KeyRolled(_) => "key_rolled",
            AuthFailure::Unavailable => "unavailable",
            AuthFailure::InvalidSession => "invalid_session",
            AuthFailure::TokenExpired => "token_expired",
            AuthFailure::TokenNotAccepted => "token_not_accepted",
            AuthFailure::RateLimited(_) => "rate_limited",
        }
    }
}

impl From<fal_core::VerifyError> for AuthFailure {
    fn from(e: fal_core::VerifyError) -> AuthFailure {
        match e {
            fal_core::VerifyError::Invalid => AuthFailure::Invalid,
            fal_core::VerifyError::Revoked => AuthFailure::KeyRevoked,
            fal_core::VerifyError::Expired(at) => AuthFailure::KeyExpired(at),
            fal_core::VerifyError::Rolled(at) => AuthFailure::KeyRolled(at),
        }
    }
}

impl From<AuthFailure> for ApiError {
    fn from(f: AuthFailure) -> Self {
        match f {
            AuthFailure::Missing => ApiError::MissingCredentials,
            AuthFailure::UnsupportedScheme => ApiError::UnsupportedScheme,
            AuthFailure::Malformed => ApiError::MalformedKey,
            AuthFailure::Invalid => ApiError::InvalidCredentials,
            AuthFailure::Unavailable => ApiError::Unavailable,
            AuthFailure::KeyRevoked => ApiError::Status {
                status: axum::http::StatusCode::UNAUTHORIZED,
                code: "key_revoked",
                detail: "This key was revoked: use another key, or generate a new one".into(),
            },
            AuthFailure::KeyExpired(at) => ApiError::Status {
                status: axum::http::StatusCode::UNAUTHORIZED,
                code: "key_expired",
                detail: format!(
                    "This key expired at {}: use another key, or generate a new one",
                    at.to_rfc3339()
                ),
            },
            AuthFailure::KeyRolled(at) => ApiError::Status {
                status: axum::http::StatusCode::UNAUTHORIZED,
                code: "key_rolled",
                detail: format!(
                    "This key was rolled and stopped working at {}: use the key that replaced it",
                    at.to_rfc3339()
                ),
            },
            AuthFailure::RateLimited(r) => ApiError::RateLimited(r),
            AuthFailure::TokenExpired => ApiError::Status {
                status: axum::http::StatusCode::UNAUTHORIZED,
                code: "token_expired",
                detail: "This token has expired: ask POST /tokens/ for a new one".into(),
            },
            AuthFailure::TokenNotAccepted => ApiError::Status {
                status: axum::http::StatusCode::FORBIDDEN,
                code: "token_not_accepted",
                detail: "A short-lived token only calls models (/run): use a key \
                         (Authorization: Key <key_id>:<key_secret>) here"
                    .into(),
            },
            AuthFailure::InvalidSession => ApiError::Status {
                status: axum::http::StatusCode::UNAUTHORIZED,
                code: "invalid_session",
                detail: "This login has expired or was ended: run `fal auth login` again \
                         (or set FAL_KEY_ID and FAL_KEY_SECRET)"
                    .into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_counted_under_the_code_its_caller_gets() {
        let at = fal_core::Timestamp(0);
        // (RateLimited carries a refusal of the quota module; its code is
        // `rate_limited` in both places too.)
        for f in [
            AuthFailure::Missing,
            AuthFailure::UnsupportedScheme,
            AuthFailure::Malformed,
            AuthFailure::Invalid,
            AuthFailure::KeyRevoked,
            AuthFailure::KeyExpired(at),
            AuthFailure::KeyRolled(at),
            AuthFailure::Unavailable,
            AuthFailure::InvalidSession,
            AuthFailure::TokenExpired,
            AuthFailure::TokenNotAccepted,
        ] {
            assert_eq!(f.code(), ApiError::from(f).code(), "{f:?}");
            assert!(crate::metrics::REFUSALS.contains(&f.code()), "{f:?}");
        }
        let blocked = ApiError::TooManyFailedAttempts {
            retry_after_secs: 1,
        };
        assert!(crate::metrics::REFUSALS.contains(&blocked.code()));
    }
}
