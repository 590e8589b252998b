//! `/apps`: register, list, show and remove apps (ADMIN only; see
//! `auth::apps` for who owns what).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use fal_core::{AppName, AppOwner, UpstreamUrl};
use fal_store::AppRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiJson;
use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Default time the gateway waits for an upstream's response headers.
pub const DEFAULT_TIMEOUT_MS: i64 = 60_000;
/// Longest allowed timeout (one hour).
pub const MAX_TIMEOUT_MS: i64 = 3_600_000;

/// `POST /apps` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    /// Namespace: your login, unless you are an operator.
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    owner: String,
    /// Name.
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    name: String,
    /// Upstream base URL (`http://` or `https://`; not an internal or
    /// metadata address unless allowed).
    upstream: String,
    /// Milliseconds to wait for response headers (default 60 s).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3_600_000)]
    timeout_ms: Option<i64>,
    /// How many queued requests run at once (default: the servers').
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10_000)]
    concurrency: Option<i64>,
}

/// Most queued requests of one app that may run at once.
pub const MAX_CONCURRENCY: i64 = 10_000;

/// An app as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppItem {
    /// `OWNER/NAME`.
    app: String,
    owner: String,
    name: String,
    /// Milliseconds the gateway waits for the upstream's response headers.
    timeout_ms: i64,
    /// Queued requests run at once; null for the servers' default.
    concurrency: Option<i64>,
    /// RFC 3339.
    created_at: String,
    /// Served by this server itself (`--demo`).
    builtin: bool,
    /// The caller owns it (or is an operator): `upstream` and `created_by` are shown.
    yours: bool,
    /// The upstream base URL (yours only).
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream: Option<String>,
    /// Who registered it (yours only).
    #[serde(skip_serializing_if = "Option::is_none")]
    created_by: Option<String>,
}

/// `GET /apps`' answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppList {
    apps: Vec<AppItem>,
}

/// An app as JSON; `upstream` and `created_by` only when `full` (the
/// viewer owns the app or is an operator).
fn app_json(a: &AppRecord, builtin: bool, full: bool) -> AppItem {
    AppItem {
        app: format!("{}/{}", a.owner, a.name),
        owner: a.owner.clone(),
        name: a.name.clone(),
        timeout_ms: a.timeout_ms,
        concurrency: a.concurrency,
        created_at: a.created_at.to_rfc3339(),
        builtin,
        yours: full,
        upstream: full.then(|| a.upstream.clone()),
        created_by: full.then(|| a.created_by.as_str().to_owned()),
    }
}

/// `POST /apps`.
#[utoipa::path(
    post,
    path = "/apps",
    operation_id = "apps_create",
    tag = "apps",
    request_body = CreateApp,
    security(("key" = []), ("session" = [])),
    responses(
        (
            status = 201,
            description = "Registered",
            body = AppItem,
            links(
                ("Show" = (operation_id = "apps_show", parameters(("owner" = "$response.body#/owner"), ("name" = "$response.body#/name")))),
                ("Remove" = (operation_id = "apps_remove", parameters(("owner" = "$response.body#/owner"), ("name" = "$response.body#/name")))),
            )
        ),
        (status = 403, description = "Not an ADMIN key; another's namespace (`not_yours`); an internal or metadata upstream (`upstream_refused`)", body = ErrorBody),
        (status = 409, description = "The app exists", body = ErrorBody),
        (status = 422, description = "An owner, name, upstream, timeout or concurrency that breaks the rules", body = ErrorBody),
    )
)]
pub async fn create(
    admin: Admin,
    ApiJson(body): ApiJson<CreateApp>,
) -> Result<(StatusCode, Json<AppItem>), ApiError> {
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
#[utoipa::path(
    get,
    path = "/apps",
    operation_id = "apps_list",
    tag = "apps",
    security(("key" = []), ("session" = [])),
    responses(
        (status = 200, description = "Built-in and registered apps", body = AppList),
        (status = 403, description = "Not an ADMIN key", body = ErrorBody),
    )
)]
pub async fn list(State(state): State<AppState>, admin: Admin) -> Result<Json<AppList>, ApiError> {
    let viewer = admin.viewer().await?;
    let json = |a: &AppRecord, builtin| app_json(a, builtin, viewer.sees_upstream_of(a));
    let mut apps: Vec<AppItem> = state.apps().builtin().map(|a| json(a, true)).collect();
    apps.extend(admin.list_apps().await?.iter().map(|a| json(a, false)));
    Ok(Json(AppList { apps }))
}

/// `GET /apps/{owner}/{name}`.
#[utoipa::path(
    get,
    path = "/apps/{owner}/{name}",
    operation_id = "apps_show",
    tag = "apps",
    params(("owner" = String, Path), ("name" = String, Path)),
    security(("key" = []), ("session" = [])),
    responses(
        (status = 200, description = "The app", body = AppItem),
        (status = 403, description = "Not an ADMIN key", body = ErrorBody),
        (status = 404, description = "No such app", body = ErrorBody),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    admin: Admin,
    Path((owner, name)): Path<(String, String)>,
) -> Result<Json<AppItem>, ApiError> {
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
#[utoipa::path(
    delete,
    path = "/apps/{owner}/{name}",
    operation_id = "apps_remove",
    tag = "apps",
    params(("owner" = String, Path), ("name" = String, Path)),
    security(("key" = []), ("session" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Not an ADMIN key, or someone else's app (`not_yours`)", body = ErrorBody),
        (status = 404, description = "No such app", body = ErrorBody),
    )
)]
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

#[derive(utoipa::OpenApi)]
#[openapi(paths(create, list, show, remove))]
pub(super) struct Doc;
