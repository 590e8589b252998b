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
use serde_json::json;

use super::{ApiJson, ApiQuery};
use crate::auth::{Admin, CreatedKey};
use crate::error::ApiError;

/// Longest alias accepted.
pub use fal_core::MAX_ALIAS_CHARS;
/// Default and largest page sizes for listing.
pub const DEFAULT_PAGE: u32 = 50;
/// Largest page a client may ask for.
pub const MAX_PAGE: u32 = 100;

/// `POST /keys` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// `ADMIN` or `API` (checked by hand for a clear message).
    scope: String,
    /// Optional label.
    #[serde(default)]
    alias: Option<String>,
    /// `100/s`, `100/min` or `100/h`; absent or null for unlimited.
    #[serde(default)]
    rate_limit: Option<String>,
    /// When the key stops working (RFC 3339); not with `expires_in`.
    #[serde(default)]
    expires_at: Option<String>,
    /// How long the key works (`30d`); a roll gives it as long again.
    #[serde(default)]
    expires_in: Option<String>,
}

/// The key as created (or rolled): the only body that carries a secret,
/// sent with `Cache-Control: no-store`.
fn created_response(created: &CreatedKey, extra: serde_json::Value) -> Response {
    let id = created.key.record.key_id.to_string();
    let secret = created.secret.expose();
    let mut body = json!({
        "key_id": id,
        "key_secret": secret,
        "key": format!("{id}:{secret}"),
        "scope": created.key.record.scope,
        "alias": created.key.alias,
        "created_at": created.key.created_at.to_rfc3339(),
        "rate_limit": created.key.record.rate_limit.map(|r| r.to_string()),
        "expires_at": created.key.record.expires_at.map(|t| t.to_rfc3339()),
        "expires_in": created.key.lifetime.map(|s| s.to_string()),
    });
    if let (Some(body), serde_json::Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
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
    Ok(created_response(&created, json!({})))
}

/// `POST /keys/{key_id}/roll` body (optional).
#[derive(Debug, Default, Deserialize)]
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
        json!({
            "old_key_id": rolled.old_key_id.to_string(),
            "old_expires_at": rolled.old_until.to_rfc3339(),
        }),
    ))
}

/// `GET /keys` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Page size, 1 to [`MAX_PAGE`].
    limit: Option<u32>,
    /// From a previous page's `next_cursor`.
    cursor: Option<String>,
}

/// One key in a listing.
#[derive(Debug, Serialize)]
struct KeyItem {
    key_id: String,
    alias: String,
    scope: Scope,
    created_at: String,
    last_used_at: Option<String>,
    rate_limit: Option<String>,
    expires_at: Option<String>,
    expires_in: Option<String>,
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

/// `GET /keys`: the caller's keys, newest first.
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
    Ok(Json(json!({
        "keys": keys,
        "has_more": next.is_some(),
        "next_cursor": next,
    }))
    .into_response())
}

/// `PATCH /keys/{key_id}` body: what to change (only the rate limit).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    /// Outer `None`: the field is absent; inner `None`: `null`, lift it.
    #[serde(default, deserialize_with = "present")]
    rate_limit: Option<Option<String>>,
}

/// A field that is present (its value possibly `null`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `PATCH /keys/{key_id}`: sets or (with `null`) lifts the key's rate
/// limit; 200 with the key as listed, 404 like `DELETE` when the caller
/// has no such unrevoked key.
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
pub async fn revoke(admin: Admin, Path(key_id): Path<String>) -> Result<StatusCode, ApiError> {
    let not_found = || ApiError::NotFound(format!("No key {key_id:?} found for this user"));
    let id: KeyId = key_id.parse().map_err(|_| not_found())?;
    if admin.revoke_key(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}
