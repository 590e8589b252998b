//! `GET /audit`: the caller's own audit events, newest first (ADMIN only),
//! paged like `GET /keys`, filtered by `?kind=` and `?key_id=`.

use axum::Json;
use fal_core::{AuditKind, KeyId};
use fal_store::{AuditCursor, AuditFilter, StoredAuditEvent};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiQuery;
use super::keys::{DEFAULT_PAGE, MAX_PAGE};
use crate::auth::Admin;
use crate::error::ApiError;

/// `GET /audit` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Page size, 1 to [`MAX_PAGE`].
    limit: Option<u32>,
    /// From a previous page's `next_cursor`.
    cursor: Option<String>,
    /// Only events of this kind (`key.generated`, …).
    kind: Option<String>,
    /// Only events about, or done with, this key.
    key_id: Option<String>,
}

/// What `GET /audit` is asked for, checked: a 422 or 400 saying what to fix.
pub fn filter_of(kind: Option<&str>, key_id: Option<&str>) -> Result<AuditFilter, ApiError> {
    let kind = match kind.filter(|k| !k.is_empty()) {
        None => None,
        Some(k) => Some(
            k.parse::<AuditKind>()
                .map_err(|e| ApiError::Unprocessable(e.to_string()))?,
        ),
    };
    let key_id = match key_id.filter(|k| !k.is_empty()) {
        None => None,
        Some(k) => Some(k.parse::<KeyId>().map_err(|_| {
            ApiError::Unprocessable(format!("key_id {k:?} is not a key id (a UUID)"))
        })?),
    };
    Ok(AuditFilter { kind, key_id })
}

/// An event as JSON.
pub fn event_json(stored: &StoredAuditEvent) -> Value {
    let e = &stored.event;
    json!({
        "id": stored.seq,
        "at": e.at.to_rfc3339(),
        "kind": e.kind,
        "actor": {
            "user_id": e.actor.user_id.as_ref().map(|u| u.as_str()),
            "key_id": e.actor.key_id.map(|k| k.to_string()),
            "session_id": e.actor.session_id,
        },
        "actor_label": e.actor_label(),
        "source": e.source.map(|s| s.to_string()),
        "user_agent": e.user_agent.as_ref().map(|u| u.as_str()),
        "object": e.object(),
        "key_id": e.key_id.map(|k| k.to_string()),
        "app": e.app,
        "detail": e.detail,
    })
}

/// `GET /audit`.
pub async fn list(
    admin: Admin,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let filter = filter_of(q.kind.as_deref(), q.key_id.as_deref())?;
    let cursor = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(AuditCursor::decode(c).ok_or_else(|| {
            ApiError::BadRequest(
                "cursor is not one this server handed out; start without it".into(),
            )
        })?),
    };
    let page = admin.audit_page(&filter, limit, cursor.as_ref()).await?;
    let events: Vec<Value> = page.events.iter().map(event_json).collect();
    let next = page.next_cursor.map(|c| c.encode());
    Ok(Json(json!({
        "events": events,
        "has_more": next.is_some(),
        "next_cursor": next,
    })))
}
