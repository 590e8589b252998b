//! [`ApiError`]: every error a client can see, with its status and stable code.
//!
//! Bodies are `{"detail": "...", "code": "..."}`. Internal errors are logged
//! with their cause and answered with a generic message, never the cause.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use fal_core::Scope;
use fal_store::StoreError;

/// Every error's body: what went wrong and what to do about it, and a
/// stable code to match on.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, and what to send instead.
    pub detail: String,
    /// A stable, machine-readable code (`invalid_credentials`, `not_found`, …).
    pub code: String,
}

/// The detail fal's clients expect for an unknown, wrong or revoked key.
pub const NO_USER_FOUND: &str = "No user found for Key ID and Secret";
/// The detail fal's clients expect for a header that is not `Key <id>:<secret>`.
pub const MALFORMED_KEY: &str =
    "Invalid Key Authorization header format. Expected '<key_id>:<key_secret>'.";

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No credentials at all.
    #[error(
        "Missing credentials: send 'Authorization: Key <key_id>:<key_secret>' (set FAL_KEY_ID and FAL_KEY_SECRET, or FAL_KEY)"
    )]
    MissingCredentials,
    /// A scheme we do not take.
    #[error("Unsupported Authorization scheme: use 'Key <key_id>:<key_secret>'")]
    UnsupportedScheme,
    /// `Key` with something other than `<id>:<secret>`.
    #[error("{MALFORMED_KEY}")]
    MalformedKey,
    /// Unknown, wrong or revoked key: one answer for all three.
    #[error("{NO_USER_FOUND}")]
    InvalidCredentials,
    /// Authenticated, but the scope does not allow this.
    #[error("This operation needs a key with {needed} scope; this key has {has} scope")]
    InsufficientScope {
        /// The scope the operation needs.
        needed: Scope,
        /// The scope the caller has.
        has: Scope,
    },
    /// No such resource (or not the caller's).
    #[error("{0}")]
    NotFound(String),
    /// The request was malformed; the message says what to fix.
    #[error("{0}")]
    BadRequest(String),
    /// The request was well-formed but a value is not acceptable.
    #[error("{0}")]
    Unprocessable(String),
    /// A reply with its own status and code (sign-in flows).
    #[error("{detail}")]
    Status {
        /// HTTP status.
        status: StatusCode,
        /// Stable code.
        code: &'static str,
        /// Message.
        detail: String,
    },
    /// The thing already exists.
    #[error("{0}")]
    Conflict(String),
    /// An app's upstream could not be reached.
    #[error("{0}")]
    BadGateway(String),
    /// An app's upstream did not answer in time.
    #[error("{0}")]
    GatewayTimeout(String),
    /// Too many refused credentials from this client address: refused
    /// without looking at the credentials until the window closes.
    #[error(
        "Too many failed authentication attempts from this address; retry in {retry_after_secs} s"
    )]
    TooManyFailedAttempts {
        /// Seconds until the block ends (`Retry-After`).
        retry_after_secs: u64,
    },
    /// The key's rate limit is used up for now.
    #[error(
        "This key's rate limit of {} is used up; retry in {} s",
        .0.limit,
        .0.retry_after_secs
    )]
    RateLimited(crate::quota::RateRefusal),
    /// A dependency (the database) is down; retrying later may work.
    #[error("The service is temporarily unavailable; retry shortly")]
    Unavailable,
    /// Anything else: logged, not shown.
    #[error("Internal server error")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MissingCredentials
            | ApiError::UnsupportedScheme
            | ApiError::MalformedKey
            | ApiError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ApiError::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Status { status, .. } => *status,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::TooManyFailedAttempts { .. } | ApiError::RateLimited(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MissingCredentials => "missing_credentials",
            ApiError::UnsupportedScheme => "unsupported_scheme",
            ApiError::MalformedKey => "malformed_authorization",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::InsufficientScope { .. } => "insufficient_scope",
            ApiError::NotFound(_) => "not_found",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unprocessable(_) => "invalid_value",
            ApiError::Status { code, .. } => code,
            ApiError::Conflict(_) => "conflict",
            ApiError::BadGateway(_) => "upstream_unreachable",
            ApiError::GatewayTimeout(_) => "upstream_timeout",
            ApiError::TooManyFailedAttempts { .. } => "too_many_failed_attempts",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::Unavailable => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "database unavailable");
                ApiError::Unavailable
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<fal_core::random::RandomError> for ApiError {
    fn from(e: fal_core::random::RandomError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

/// An app owner or name given that breaks the rule: 422.
impl From<fal_core::AppPartError> for ApiError {
    fn from(e: fal_core::AppPartError) -> Self {
        ApiError::Unprocessable(e.to_string())
    }
}

/// An upstream URL given that breaks the rule: 422.
impl From<fal_core::UpstreamError> for ApiError {
    fn from(e: fal_core::UpstreamError) -> Self {
        ApiError::Unprocessable(e.to_string())
    }
}

impl ApiError {
    /// This error as a response that also closes the connection (the
    /// client's framing is in doubt, or it must not send more).
    pub fn closing(self) -> Response {
        let mut response = self.into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%cause, "internal error");
        }
        let status = self.status();
        let mut response = (
            status,
            Json(ErrorBody {
                detail: self.to_string(),
                code: self.code().to_owned(),
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Key"));
        }
        if let ApiError::TooManyFailedAttempts { retry_after_secs } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        if let ApiError::RateLimited(r) = self {
            let headers = response.headers_mut();
            headers.insert(header::RETRY_AFTER, HeaderValue::from(r.retry_after_secs));
            crate::quota::set_headers(headers, &r.quota);
        }
        response
    }
}
