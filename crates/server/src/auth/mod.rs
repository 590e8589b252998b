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

pub use admin::{Admin, AdminParts, AdminStores, CreatedKey};
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
    /// Unknown, wrong or revoked.
    Invalid,
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
                | AuthFailure::InvalidSession
                | AuthFailure::TokenExpired
        )
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
