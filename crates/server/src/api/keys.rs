//! `/keys`: create (with an expiry), list, rate-limit, roll and revoke the caller's own keys
//! (ADMIN only).

use std::collections::HashMap;

use axum::Json;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use fal_core::{Alias, ExpiryPolicy, Grace, KeyId, RateLimit, Scope};
use fal_store::{Cursor, KeySummary};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::{ApiJson, ApiQuery};
use crate::auth::{Admin, CreatedKey};
use crate::error::{ApiError, ErrorBody};

/// Longest alias accepted.
pub use fal_core::MAX_ALIAS_CHARS;
/// Default and largest page sizes for listing.
pub const DEFAULT_PAGE: u32 = 50;
/// Largest page a client may ask for.
pub const MAX_PAGE: u32 = 100;

/// `POST /keys` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// `ADMIN` or `API` (checked by hand for a clear message).
    #[schema(schema_with = super::doc::scope_schema)]
    scope: String,
    /// Optional label.
    #[serde(default)]
    #[schema(max_length = 255)]
    alias: Option<String>,
    /// `100/s`, `100/min` or `100/h`; absent or null for unlimited.
    #[serde(default)]
    #[schema(
        pattern = r"^\s*[1-9][0-9]{0,8}\s*/\s*(s|sec|second|min|minute|h|hr|hour)\s*$",
        examples("100/min")
    )]
    rate_limit: Option<String>,
    /// When the key stops working (RFC 3339, in the future); not with `expires_in`.
    #[serde(default)]
    expires_at: Option<String>,
    /// How long the key works (`90s`, `15m`, `12h`, `30d`, `2w`, up to
    /// `3650d`); a roll gives it as long again. Not with `expires_at`.
    #[serde(default)]
    expires_in: Option<String>,
}

/// A key as created (or rolled): the only body that carries a secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKeyBody {
    key_id: String,
    /// Shown this once.
    key_secret: String,
    /// `key_id:key_secret` (`FAL_KEY`'s form).
    key: String,
    #[schema(schema_with = super::doc::scope_schema)]
    scope: Scope,
    alias: String,
    /// RFC 3339.
    created_at: String,
    /// Null when unlimited.
    rate_limit: Option<String>,
    /// Null when it never expires.
    expires_at: Option<String>,
    /// The lifetime a roll gives again, if created with `expires_in`.
    expires_in: Option<String>,
    /// The key this one replaced (rolls only).
    #[serde(skip_serializing_if = "Option::is_none")]
    old_key_id: Option<String>,
    /// When the replaced key stops working (rolls only).
    #[serde(skip_serializing_if = "Option::is_none")]
    old_expires_at: Option<String>,
}

/// The key as created (or rolled), sent with `Cache-Control: no-store`.
fn created_response(created: &CreatedKey, rolled_from: Option<(String, String)>) -> Response {
    let id = created.key.record.key_id.to_string();
    let secret = created.secret.expose();
    let (old_key_id, old_expires_at) = rolled_from.unzip();
    let body = CreatedKeyBody {
        key: format!("{id}:{secret}"),
        key_id: id,
        key_secret: secret.to_owned(),
        scope: created.key.record.scope,
        alias: created.key.alias.clone(),
        created_at: created.key.created_at.to_rfc3339(),
        rate_limit: created.key.record.rate_limit.map(|r| r.to_string()),
        expires_at: created.key.record.expires_at.map(|t| t.to_rfc3339()),
        expires_in: created.key.lifetime.map(|s| s.to_string()),
        old_key_id,
        old_expires_at,
    };
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    // A secret must not sit in any cache.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A rate limit as sent (`None`: unlimited), checked; a 422 with
/// [`fal_core::RateLimitError`]'s message when it is not one.
fn rate_limit(raw: Option<&str>) -> Result<Option<RateLimit>, ApiError> {
    raw.map(RateLimit::parse)
        .transpose()
        .map_err(|e| ApiError::Unprocessable(e.to_string()))
}

/// `POST /keys`: the only response that ever carries a secret.
#[utoipa::path(
    post,
    path = "/keys",
    operation_id = "keys_create",
    tag = "keys",
    request_body = CreateKey,
    security(("key" = []), ("session" = [])),
    responses(
        (
            status = 201,
            description = "The new key, its secret shown this once (`Cache-Control: no-store`)",
            body = CreatedKeyBody,
            links(
                ("Usage" = (operation_id = "key_usage_show", parameters(("key_id" = "$response.body#/key_id")))),
                ("Update" = (operation_id = "keys_update", parameters(("key_id" = "$response.body#/key_id")))),
                ("Roll" = (operation_id = "keys_roll", parameters(("key_id" = "$response.body#/key_id")))),
                ("Revoke" = (operation_id = "keys_revoke", parameters(("key_id" = "$response.body#/key_id")))),
            )
        ),
        (status = 403, description = "Not an ADMIN key (`insufficient_scope`)", body = ErrorBody),
        (status = 422, description = "A field is not acceptable: the detail says which and why", body = ErrorBody),
    )
)]
pub async fn create(admin: Admin, ApiJson(body): ApiJson<CreateKey>) -> Result<Response, ApiError> {
    let scope: Scope = body.scope.parse().map_err(|_| {
        ApiError::Unprocessable(format!(
            "scope must be \"ADMIN\" or \"API\", not {:?}",
            body.scope
        ))
    })?;
    let alias = Alias::parse(body.alias.as_deref().unwrap_or_default())
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let limit = rate_limit(body.rate_limit.as_deref())?;
    let expiry = ExpiryPolicy::from_request(
        body.expires_at.as_deref(),
        body.expires_in.as_deref(),
        admin.now(),
    )
    .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let created = admin
        .create_key(scope, alias.into_string(), limit, expiry)
        .await?;
    Ok(created_response(&created, None))
}

/// `POST /keys/{key_id}/roll` body (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollKey {
    /// How long the old pair keeps working: `0` (the default) to `7d`.
    #[serde(default)]
    grace: Option<String>,
}

/// `POST /keys/{key_id}/roll`: a new pair with the old key's alias, scope,
/// expiry policy and rate limit (201, its secret shown once, with
/// `old_key_id` and `old_expires_at`); the old pair works until its grace
/// ends. 409 for a revoked, expired or already rolled key.
#[utoipa::path(
    post,
    path = "/keys/{key_id}/roll",
    operation_id = "keys_roll",
    tag = "keys",
    params(("key_id" = String, Path, description = "The key to replace")),
    request_body(content = Option<RollKey>, description = "Optional: `{\"grace\": \"1h\"}`"),
    security(("key" = []), ("session" = [])),
    responses(
        (status = 201, description = "The new pair (secret shown once) with `old_key_id` and `old_expires_at`", body = CreatedKeyBody),
        (status = 403, description = "Not an ADMIN key", body = ErrorBody),
        (status = 404, description = "No such key of the caller's", body = ErrorBody),
        (status = 409, description = "Revoked, expired or already rolled (`key_revoked`, `key_expired`, `key_rolled`)", body = ErrorBody),
        (status = 422, description = "A grace that is not `0` to `7d`, or a body that is not the object above", body = ErrorBody),
    )
)]
pub async fn roll(
    admin: Admin,
    Path(key_id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // The body is optional: none means no grace.
    let body: RollKey = if body.iter().all(u8::is_ascii_whitespace) {
        RollKey::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::Unprocessable(format!(
                "the body is {{\"grace\": \"1h\"}} (0 to 7d) or empty: {e}"
            ))
        })?
    };
    let grace: Grace = match body.grace.as_deref() {
        None => Grace::default(),
        Some(g) => g
            .parse()
            .map_err(|e: fal_core::GraceError| ApiError::Unprocessable(e.to_string()))?,
    };
    let not_found = || ApiError::NotFound(format!("No key {key_id:?} found for this user"));
    let id: KeyId = key_id.parse().map_err(|_| not_found())?;
    let rolled = admin.roll_key(&id, grace).await?;
    Ok(created_response(
        &rolled.created,
        Some((rolled.old_key_id.to_string(), rolled.old_until.to_rfc3339())),
    ))
}

/// `GET /keys` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Page size, 1 to 100 (`MAX_PAGE`); 50 by default.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// From a previous page's `next_cursor`.
    cursor: Option<String>,
}

/// One key in a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyItem {
    key_id: String,
    alias: String,
    #[schema(schema_with = super::doc::scope_schema)]
    scope: Scope,
    /// RFC 3339.
    created_at: String,
    last_used_at: Option<String>,
    /// Null when unlimited.
    rate_limit: Option<String>,
    /// Null when it never expires.
    expires_at: Option<String>,
    expires_in: Option<String>,
    /// The key that replaced this one.
    rolled_to: Option<String>,
    /// Calls accepted in the last 30 days (as written back so far).
    requests: u64,
}

impl KeyItem {
    /// `k` as listed, with its accepted calls from `requests`.
    fn new(k: KeySummary, requests: &HashMap<KeyId, u64>) -> KeyItem {
        KeyItem {
            requests: requests.get(&k.key_id).copied().unwrap_or(0),
            key_id: k.key_id.to_string(),
            alias: k.alias,
            scope: k.scope,
            created_at: k.created_at.to_rfc3339(),
            last_used_at: k.last_used_at.map(|t| t.to_rfc3339()),
            rate_limit: k.rate_limit.map(|r| r.to_string()),
            expires_at: k.expires_at.map(|t| t.to_rfc3339()),
            expires_in: k.lifetime.map(|s| s.to_string()),
            rolled_to: k.rolled_to.map(|id| id.to_string()),
        }
    }
}

/// A page of keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyPage {
    keys: Vec<KeyItem>,
    has_more: bool,
    /// Send as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

/// `GET /keys`: the caller's keys, newest first.
#[utoipa::path(
    get,
    path = "/keys",
    operation_id = "keys_list",
    tag = "keys",
    params(ListQuery),
    security(("key" = []), ("session" = [])),
    responses(
        (status = 200, description = "The caller's keys, newest first", body = KeyPage),
        (status = 400, description = "A limit out of 1 to 100, or a cursor not from this server", body = ErrorBody),
        (status = 403, description = "Not an ADMIN key", body = ErrorBody),
    )
)]
pub async fn list(admin: Admin, ApiQuery(q): ApiQuery<ListQuery>) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let cursor = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(Cursor::decode(c).ok_or_else(|| {
            ApiError::BadRequest(
                "cursor is not one this server handed out; start without it".into(),
            )
        })?),
    };
    let page = admin.list_keys(limit, cursor.as_ref()).await?;
    let requests = admin.key_requests().await?;
    let keys: Vec<KeyItem> = page
        .keys
        .into_iter()
        .map(|k| KeyItem::new(k, &requests))
        .collect();
    let next = page.next_cursor.map(|c| c.encode());
    Ok(Json(KeyPage {
        keys,
        has_more: next.is_some(),
        next_cursor: next,
    })
    .into_response())
}

/// `PATCH /keys/{key_id}` body: what to change (only the rate limit).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    /// The new limit (`100/s`, `100/min`, `100/h`), or null to lift it.
    // Outer `None`: the field is absent; inner `None`: `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(
        value_type = Option<String>,
        required = true,
        pattern = r"^\s*[1-9][0-9]{0,8}\s*/\s*(s|sec|second|min|minute|h|hr|hour)\s*$"
    )]
    rate_limit: Option<Option<String>>,
}

/// A field that is present (its value possibly `null`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `PATCH /keys/{key_id}`: sets or (with `null`) lifts the key's rate
/// limit; 200 with the key as listed, 404 like `DELETE` when the caller
/// has no such unrevoked key.
#[utoipa::path(
    patch,
    path = "/keys/{key_id}",
    operation_id = "keys_update",
    tag = "keys",
    params(("key_id" = String, Path, description = "The key to change")),
    request_body = UpdateKey,
    security(("key" = []), ("session" = [])),
    responses(
        (status = 200, description = "The key as `GET /keys` lists it", body = KeyItem),
        (status = 403, description = "Not an ADMIN key", body = ErrorBody),
        (status = 404, description = "No such unrevoked key of the caller's", body = ErrorBody),
        (status = 422, description = "`rate_limit` missing or malformed", body = ErrorBody),
    )
)]
pub async fn update(
    admin: Admin,
    Path(key_id): Path<String>,
    ApiJson(body): ApiJson<UpdateKey>,
) -> Result<Response, ApiError> {
    let Some(raw) = body.rate_limit else {
        return Err(ApiError::Unprocessable(
            "rate_limit is required: send e.g. {\"rate_limit\": \"100/min\"}, or null to lift the limit"
                .into(),
        ));
    };
    let limit = rate_limit(raw.as_deref())?;
    let not_found = || ApiError::NotFound(format!("No key {key_id:?} found for this user"));
    let id: KeyId = key_id.parse().map_err(|_| not_found())?;
    if !admin.set_key_rate_limit(&id, limit).await? {
        return Err(not_found());
    }
    let item = match admin.find_key(&id).await? {
        Some(k) => KeyItem::new(k, &admin.key_requests().await?),
        // Revoked between the two reads.
        None => return Err(not_found()),
    };
    Ok(Json(item).into_response())
}

/// `DELETE /keys/{key_id}`: 204 whether revoked now or before; 404 when
/// the caller has no such key.
#[utoipa::path(
    delete,
    path = "/keys/{key_id}",
    operation_id = "keys_revoke",
    tag = "keys",
    params(("key_id" = String, Path, description = "The key to revoke")),
    security(("key" = []), ("session" = [])),
    responses(
        (status = 204, description = "Revoked (now or before)"),
        (status = 403, description = "Not an ADMIN key", body = ErrorBody),
        (status = 404, description = "No such key of the caller's", body = ErrorBody),
    )
)]
pub async fn revoke(admin: Admin, Path(key_id): Path<String>) -> Result<StatusCode, ApiError> {
    let not_found = || ApiError::NotFound(format!("No key {key_id:?} found for this user"));
    let id: KeyId = key_id.parse().map_err(|_| not_found())?;
    if admin.revoke_key(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(create, list, roll, update, revoke))]
pub(super) struct Doc;
