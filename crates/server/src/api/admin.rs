//! `/admin/users`: operators list users and disable them (issue 12,
//! finding 6). Reachable only through [`crate::auth::Operator`].

use axum::Json;
use axum::extract::Path;
use serde_json::{Value, json};

use crate::auth::Admin;
use crate::error::ApiError;

/// `GET /admin/users`: every user, oldest first.
pub async fn list_users(admin: Admin) -> Result<Json<Value>, ApiError> {
    let op = admin.operator().await?;
    let users: Vec<Value> = op
        .list_users()
        .await?
        .iter()
        .map(|u| {
            json!({
                "user_id": u.user.user_id.as_str(),
                "login": u.user.nickname,
                "full_name": u.user.full_name,
                "github_id": u.user.github_id,
                "created_at": u.user.created_at.to_rfc3339(),
                "disabled_at": u.disabled_at.map(|t| t.to_rfc3339()),
                "active_keys": u.active_keys,
            })
        })
        .collect();
    Ok(Json(json!({ "users": users })))
}

/// `POST /admin/users/{user}/disable` (`user`: a login or a user id):
/// marks the user disabled and revokes all their keys and sessions at
/// once. 409 for the bootstrap user and for the operator themselves.
pub async fn disable_user(admin: Admin, Path(who): Path<String>) -> Result<Json<Value>, ApiError> {
    let op = admin.operator().await?;
    let (user, done) = op.disable_user(&who).await?;
    Ok(Json(json!({
        "user_id": user.user_id.as_str(),
        "login": user.nickname,
        "disabled": true,
        "revoked_keys": done.revoked_keys.len(),
        "revoked_sessions": done.revoked_sessions,
    })))
}
