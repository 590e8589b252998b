//! `POST /tokens/` (fal's): a short-lived token for the caller, limited to
//! some apps, for a browser or another party that should not hold a key.
//! It calls those apps' models and nothing else, until it expires or the
//! key (or session) that minted it is revoked. See
//! [`crate::auth::Verifier::mint_token`].

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use fal_core::AllowedApps;
use serde::Deserialize;
use utoipa::ToSchema;

use super::ApiJson;
use crate::auth::{DEFAULT_TOKEN_SECONDS, MAX_TOKEN_SECONDS};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Caller;
use crate::response_headers::no_store;
use crate::state::AppState;

/// The body, as fal's clients send it (Python's `fal-client` and
/// `@fal-ai/client` send exactly these two fields).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// The apps: `NAME` (any owner's) or `OWNER/NAME`.
    #[serde(default)]
    #[schema(min_items = 1, max_items = 100)]
    allowed_apps: Option<Vec<String>>,
    /// Seconds the token lives (default 120; longer is cut to 3,600, `MAX_TOKEN_SECONDS`).
    #[serde(default)]
    #[schema(minimum = 1)]
    token_expiration: Option<i64>,
}

/// `POST /tokens/` (also `POST /tokens`): answers the token as a JSON string.
#[utoipa::path(
    post,
    path = "/tokens/",
    operation_id = "tokens_create",
    tag = "tokens",
    request_body = CreateToken,
    security(("key" = []), ("session" = [])),
    responses(
        (status = 201, description = "The token, a JSON string (an HS256 JWT; `Cache-Control: no-store`)", body = String),
        (status = 403, description = "A short-lived token cannot mint another (`token_not_accepted`)", body = ErrorBody),
        (status = 422, description = "No apps, a malformed app, or a `token_expiration` of 0 or less", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<Response, ApiError> {
    let apps = body.allowed_apps.unwrap_or_default();
    let apps = AllowedApps::parse(&apps).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let seconds = body.token_expiration.unwrap_or(DEFAULT_TOKEN_SECONDS);
    if seconds <= 0 {
        return Err(ApiError::Unprocessable(format!(
            "token_expiration must be a number of seconds from 1 to {MAX_TOKEN_SECONDS} \
             (longer is cut to {MAX_TOKEN_SECONDS}), not {seconds}"
        )));
    }
    let token = state
        .verifier()
        .mint_token(&principal, apps, seconds, state.rng())?
        .ok_or_else(|| ApiError::Internal("caller with neither key nor session".into()))?;
    Ok(no_store((StatusCode::CREATED, Json(token.expose()))))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(create))]
pub(super) struct Doc;
