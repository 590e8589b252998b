//! `/users/current`: who the caller is, and by which credential.

use axum::Json;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::extract::Caller;
use crate::state::AppState;
use axum::extract::State;

/// `GET /users/current`. Open to both scopes: a key may always learn whose
/// it is and what it may do (`fal auth whoami` needs it).
pub async fn current(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> Result<Json<Value>, ApiError> {
    let user = state
        .users()
        .user(&principal.user_id)
        .await?
        .ok_or_else(|| ApiError::Internal("authenticated user has no user record".into()))?;
    let credential = match principal.key_id {
        Some(id) => json!({"type": "key", "key_id": id.to_string(), "scope": principal.scope}),
        None => json!({"type": "session", "scope": principal.scope}),
    };
    Ok(Json(json!({
        "user_id": user.user_id.as_str(),
        "nickname": user.nickname,
        "full_name": user.full_name,
        "credential": credential,
    })))
}

/// `GET /auth/verify`: 204 when the credentials are valid (either scope),
/// with `X-Fal-User-Id`, `X-Fal-Key-Id` and `X-Fal-Scope`; the usual 401
/// otherwise. For reverse proxies (nginx `auth_request`) that want fal's
/// key check in front of something else.
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
