//! `/admin/users`: operators list users and disable them (issue 12,
//! finding 6). Reachable only through [`crate::auth::Operator`].

use axum::Json;
use axum::extract::Path;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody};

/// A user as operators see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserItem {
    user_id: String,
    login: String,
    full_name: String,
    github_id: Option<i64>,
    /// RFC 3339.
    created_at: String,
    /// Null while the user is enabled.
    disabled_at: Option<String>,
    /// Keys neither revoked nor expired.
    active_keys: i64,
}

/// `GET /admin/users`' answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    users: Vec<UserItem>,
}

/// `POST /admin/users/{user}/disable`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Disabled {
    user_id: String,
    login: String,
    /// Always true.
    disabled: bool,
    /// How many keys were revoked.
    revoked_keys: u64,
    /// How many sessions were ended.
    revoked_sessions: u64,
}

/// `GET /admin/users`: every user, oldest first.
#[utoipa::path(
    get,
    path = "/admin/users",
    operation_id = "admin_list_users",
    tag = "users",
    security(("key" = []), ("session" = [])),
    responses(
        (status = 200, description = "Every user, oldest first", body = UserList),
        (status = 403, description = "Not an ADMIN key, or not an operator (`not_operator`)", body = ErrorBody),
    )
)]
pub async fn list_users(admin: Admin) -> Result<Json<UserList>, ApiError> {
    let op = admin.operator().await?;
    let users = op
        .list_users()
        .await?
        .into_iter()
        .map(|u| UserItem {
            user_id: u.user.user_id.as_str().to_owned(),
            login: u.user.nickname,
            full_name: u.user.full_name,
            github_id: u.user.github_id,
            created_at: u.user.created_at.to_rfc3339(),
            disabled_at: u.disabled_at.map(|t| t.to_rfc3339()),
            active_keys: u.active_keys,
        })
        .collect();
    Ok(Json(UserList { users }))
}

/// `POST /admin/users/{user}/disable` (`user`: a login or a user id):
/// marks the user disabled and revokes all their keys and sessions at
/// once. 409 for the bootstrap user and for the operator themselves.
#[utoipa::path(
    post,
    path = "/admin/users/{user}/disable",
    operation_id = "admin_disable_user",
    tag = "users",
    params(("user" = String, Path, description = "A login or a user id")),
    security(("key" = []), ("session" = [])),
    responses(
        (status = 200, description = "Disabled: every key and session revoked", body = Disabled),
        (status = 403, description = "Not an ADMIN key, or not an operator", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "The bootstrap user, or the operator themselves", body = ErrorBody),
    )
)]
pub async fn disable_user(
    admin: Admin,
    Path(who): Path<String>,
) -> Result<Json<Disabled>, ApiError> {
    let op = admin.operator().await?;
    let (user, done) = op.disable_user(&who).await?;
    Ok(Json(Disabled {
        user_id: user.user_id.as_str().to_owned(),
        login: user.nickname,
        disabled: true,
        revoked_keys: done.revoked_keys.len() as u64,
        revoked_sessions: done.revoked_sessions,
    }))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(list_users, disable_user))]
pub(super) struct Doc;
