//! `/users/current`: who the caller is, and by which credential.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::Caller;
use crate::state::AppState;

/// The credential a call was made with.
#[derive(Debug, Serialize, ToSchema)]
pub struct Credential {
    /// `key` or `session`.
    #[serde(rename = "type")]
    kind: &'static str,
    /// The key's id (keys only).
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
    #[schema(schema_with = super::doc::scope_schema)]
    scope: fal_core::Scope,
}

/// `GET /users/current`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CurrentUser {
    user_id: String,
    /// The login (GitHub's, for users who signed in with it).
    nickname: String,
    full_name: String,
    credential: Credential,
}

/// `GET /users/current`. Open to both scopes: a key may always learn whose
/// it is and what it may do (`fal auth whoami` needs it).
#[utoipa::path(
    get,
    path = "/users/current",
    operation_id = "users_current",
    tag = "users",
    security(("key" = []), ("session" = [])),
    responses((status = 200, description = "The caller and its credential", body = CurrentUser))
)]
pub async fn current(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> Result<Json<CurrentUser>, ApiError> {
    let user = state
        .users()
        .user(&principal.user_id)
        .await?
        .ok_or_else(|| ApiError::Internal("authenticated user has no user record".into()))?;
    let credential = Credential {
        kind: if principal.key_id.is_some() {
            "key"
        } else {
            "session"
        },
        key_id: principal.key_id.map(|id| id.to_string()),
        scope: principal.scope,
    };
    Ok(Json(CurrentUser {
        user_id: user.user_id.as_str().to_owned(),
        nickname: user.nickname,
        full_name: user.full_name,
        credential,
    }))
}

/// `GET /auth/verify`: 204 when the credentials are valid (either scope),
/// with `X-Fal-User-Id`, `X-Fal-Key-Id` and `X-Fal-Scope`; the usual 401
/// otherwise. For reverse proxies (nginx `auth_request`) that want fal's
/// key check in front of something else.
#[utoipa::path(
    get,
    path = "/auth/verify",
    operation_id = "users_verify",
    tag = "users",
    security(("key" = []), ("session" = [])),
    responses((
        status = 204,
        description = "Valid credentials (for nginx `auth_request`)",
        headers(
            ("x-fal-user-id" = String, description = "The caller's user id"),
            ("x-fal-key-id" = String, description = "The key's id (keys only)"),
            ("x-fal-scope" = String, description = "`ADMIN` or `API`"),
        )
    ))
)]
pub async fn verify(Caller(principal): Caller) -> impl axum::response::IntoResponse {
    let mut headers = axum::http::HeaderMap::new();
    if let Ok(v) = axum::http::HeaderValue::from_str(principal.user_id.as_str()) {
        headers.insert(crate::h1::headers::X_FAL_USER_ID, v);
    }
    if let Some(Ok(v)) = principal
        .key_id
        .map(|k| axum::http::HeaderValue::from_str(&k.to_string()))
    {
        headers.insert(crate::h1::headers::X_FAL_KEY_ID, v);
    }
    headers.insert(
        "x-fal-scope",
        axum::http::HeaderValue::from_static(principal.scope.as_str()),
    );
    (axum::http::StatusCode::NO_CONTENT, headers)
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(current, verify))]
pub(super) struct Doc;
