//! `/keys`: create, list, rate-limit and revoke the caller's own keys
//! (ADMIN only).

use std::collections::HashMap;

use axum::Json;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use fal_core::{Alias, KeyId, RateLimit, Scope};
use fal_store::{Cursor, KeySummary};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;

use super::{ApiJson, ApiQuery};
use crate::auth::Admin;
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
    let created = admin.create_key(scope, alias.into_string(), limit).await?;
    let id = created.key.record.key_id.to_string();
    let secret = created.secret.expose();
    let body = json!({
        "key_id": id,
        "key_secret": secret,
        "key": format!("{id}:{secret}"),
        "scope": scope,
        "alias": created.key.alias,
        "created_at": created.key.created_at.to_rfc3339(),
        "rate_limit": created.key.record.rate_limit.map(|r| r.to_string()),
    });
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    // A secret must not sit in any cache.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
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
