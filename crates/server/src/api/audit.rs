//! `GET /audit`: the caller's own audit events, newest first (ADMIN only),
//! paged like `GET /keys`, filtered by `?kind=` and `?key_id=`.

use axum::Json;
use fal_core::{AuditKind, KeyId};
use fal_store::{AuditCursor, AuditFilter, StoredAuditEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::ApiQuery;
use super::keys::{DEFAULT_PAGE, MAX_PAGE};
use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody};

/// `GET /audit` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Page size, 1 to 100 (`MAX_PAGE`); 50 by default.
    #[param(minimum = 1, maximum = 100)]
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

/// Who did it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Actor {
    user_id: Option<String>,
    /// The key they acted with.
    key_id: Option<String>,
    /// Or the session they acted in (its id, not its token).
    session_id: Option<String>,
}

/// An audit event as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Event {
    /// Its place in the log (newer is larger).
    id: i64,
    /// RFC 3339.
    at: String,
    /// `key.generated`, `key.revoked`, … (`GET /audit?kind=x` lists them all).
    #[schema(value_type = String)]
    kind: fal_core::AuditKind,
    actor: Actor,
    /// `key ID`, `session ID`, `user ID` or `system`.
    actor_label: String,
    /// The client's address.
    source: Option<String>,
    user_agent: Option<String>,
    /// `key ID`, `app OWNER/NAME`, or empty.
    object: String,
    key_id: Option<String>,
    app: Option<String>,
    /// What else the kind records.
    detail: Map<String, Value>,
}

/// An event as JSON.
pub fn event_json(stored: &StoredAuditEvent) -> Event {
    let e = &stored.event;
    Event {
        id: stored.seq,
        at: e.at.to_rfc3339(),
        kind: e.kind,
        actor: Actor {
            user_id: e.actor.user_id.as_ref().map(|u| u.as_str().to_owned()),
            key_id: e.actor.key_id.map(|k| k.to_string()),
            session_id: e.actor.session_id.clone(),
        },
        actor_label: e.actor_label(),
        source: e.source.map(|s| s.to_string()),
        user_agent: e.user_agent.as_ref().map(|u| u.as_str().to_owned()),
        object: e.object(),
        key_id: e.key_id.map(|k| k.to_string()),
        app: e.app.clone(),
        detail: e.detail.clone(),
    }
}

/// A page of events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    events: Vec<Event>,
    has_more: bool,
    /// Send as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

/// `GET /audit`.
#[utoipa::path(
    get,
    path = "/audit",
    operation_id = "audit_list",
    tag = "audit",
    params(AuditQuery),
    security(("key" = []), ("session" = [])),
    responses(
        (status = 200, description = "The caller's own events, newest first", body = EventPage),
        (status = 400, description = "A limit out of 1 to 100, or a cursor not from this server", body = ErrorBody),
        (status = 403, description = "Not an ADMIN key", body = ErrorBody),
        (status = 422, description = "An unknown `kind` (the detail lists them) or a `key_id` that is not a key id", body = ErrorBody),
    )
)]
pub async fn list(
    admin: Admin,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<EventPage>, ApiError> {
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
    let events = page.events.iter().map(event_json).collect();
    let next = page.next_cursor.map(|c| c.encode());
    Ok(Json(EventPage {
        events,
        has_more: next.is_some(),
        next_cursor: next,
    }))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(list))]
pub(super) struct Doc;
