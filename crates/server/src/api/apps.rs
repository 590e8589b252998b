//! `/apps`: register, list, show and remove apps (ADMIN only; see
//! `auth::apps` for who owns what).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use fal_core::{AppName, AppOwner, UpstreamUrl};
use fal_store::AppRecord;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiJson;
use crate::auth::Admin;
use crate::error::ApiError;
use crate::state::AppState;

/// Default time the gateway waits for an upstream's response headers.
pub const DEFAULT_TIMEOUT_MS: i64 = 60_000;
/// Longest allowed timeout (one hour).
pub const MAX_TIMEOUT_MS: i64 = 3_600_000;

/// `POST /apps` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    /// Namespace.
    owner: String,
    /// Name.
    name: String,
    /// Upstream base URL.
    upstream: String,
    /// Milliseconds to wait for response headers (default 60 s).
    #[serde(default)]
    timeout_ms: Option<i64>,
    /// How many queued requests run at once (default: the servers').
    #[serde(default)]
    concurrency: Option<i64>,
}

/// Most queued requests of one app that may run at once.
pub const MAX_CONCURRENCY: i64 = 10_000;

/// An app as JSON; `upstream` and `created_by` only when `full` (the
/// viewer owns the app or is an operator).
fn app_json(a: &AppRecord, builtin: bool, full: bool) -> Value {
    let mut v = json!({
        "app": format!("{}/{}", a.owner, a.name),
        "owner": a.owner,
        "name": a.name,
        "timeout_ms": a.timeout_ms,
        "concurrency": a.concurrency,
        "created_at": a.created_at.to_rfc3339(),
        "builtin": builtin,
        "yours": full,
    });
    if full {
        v["upstream"] = json!(a.upstream);
        v["created_by"] = json!(a.created_by.as_str());
    }
    v
}

/// `POST /apps`.
pub async fn create(
    admin: Admin,
    ApiJson(body): ApiJson<CreateApp>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // Checked once here (422 with the rule); stored as checked.
    let owner = AppOwner::parse(&body.owner)?;
    let name = AppName::parse(&body.name)?;
    let upstream = UpstreamUrl::parse(&body.upstream)?;
    let timeout_ms = body.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        return Err(ApiError::Unprocessable(format!(
            "timeout_ms must be between 1 and {MAX_TIMEOUT_MS} (one hour)"
        )));
    }
    if let Some(n) = body.concurrency
        && !(1..=MAX_CONCURRENCY).contains(&n)
    {
        return Err(ApiError::Unprocessable(format!(
            "concurrency must be between 1 and {MAX_CONCURRENCY}, or absent for the servers' default"
        )));
    }
    let app = AppRecord {
        owner: owner.into(),
        name: name.into(),
        upstream: upstream.into(),
        timeout_ms,
        concurrency: body.concurrency,
        created_by: admin.principal().user_id.clone(),
        created_at: admin.now(),
    };
    let app = admin.create_app(app).await?;
    Ok((StatusCode::CREATED, Json(app_json(&app, false, true))))
}

/// `GET /apps`: stored apps and built-in ones; upstreams only of the
/// caller's own apps (every app's, for an operator).
pub async fn list(State(state): State<AppState>, admin: Admin) -> Result<Json<Value>, ApiError> {
    let viewer = admin.viewer().await?;
    let json = |a: &AppRecord, builtin| app_json(a, builtin, viewer.sees_upstream_of(a));
    let mut apps: Vec<Value> = state.apps().builtin().map(|a| json(a, true)).collect();
    apps.extend(admin.list_apps().await?.iter().map(|a| json(a, false)));
    Ok(Json(json!({ "apps": apps })))
}

/// `GET /apps/{owner}/{name}`.
pub async fn show(
    State(state): State<AppState>,
    admin: Admin,
    Path((owner, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let viewer = admin.viewer().await?;
    let app =
        state.apps().find(&owner, &name).await?.ok_or_else(|| {
            ApiError::NotFound(format!("No app {owner}/{name} is registered here"))
        })?;
    Ok(Json(app_json(
        &app,
        state.apps().is_builtin(&owner, &name),
        viewer.sees_upstream_of(&app),
    )))
}

/// `DELETE /apps/{owner}/{name}`: 204, 404 when there is no such app, 403
/// when it is someone else's (operators remove any).
pub async fn remove(
    admin: Admin,
    Path((owner, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if admin.delete_app(&owner, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "No app {owner}/{name} is registered here"
        )))
    }
}
