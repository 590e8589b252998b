//! The Activity page: the signed-in user's own audit events, newest first,
//! a page at a time, filtered by kind. Everything shown is escaped by the
//! templates; the page needs no script.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use fal_core::AuditKind;
use fal_store::AuditCursor;
use serde::Deserialize;

use super::{ACTIVITY, ACTIVITY_ROW, escape, nav, page, redirect, render, signed_in};
use crate::api::audit::filter_of;
use crate::audit::Origin;
use crate::error::ApiError;
use crate::state::AppState;

/// Events on one page.
const PAGE: u32 = 50;

/// The page's query: where to continue, and which kind to show.
#[derive(Deserialize)]
pub(super) struct ActivityQuery {
    #[serde(default)]
    cursor: String,
    #[serde(default)]
    kind: String,
}

/// The kind filter's options, `chosen` selected.
fn kind_options(chosen: Option<AuditKind>) -> String {
    let mut out = format!(
        "<option value=\"\"{}>All events</option>",
        if chosen.is_none() { " selected" } else { "" }
    );
    for k in AuditKind::ALL {
        let selected = if chosen == Some(k) { " selected" } else { "" };
        out.push_str(&format!(
            "<option value=\"{0}\"{selected}>{0}</option>",
            escape(k.as_str())
        ));
    }
    out
}

pub(super) async fn activity_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ActivityQuery>,
) -> Result<Response, ApiError> {
    let Some(s) = signed_in(&state, &headers).await else {
        return Ok(redirect("/dashboard/login"));
    };
    let bad = |message: &str| -> Response {
        let notice = format!(
            "<div class=\"error\" role=\"alert\">{}</div>",
            escape(message)
        );
        let body = render(
            ACTIVITY,
            &[
                ("notice", &notice),
                ("kinds", &kind_options(None)),
                ("rows", ""),
                ("more", ""),
            ],
        );
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            page("Activity", &nav(&state, &s), &body),
        )
            .into_response()
    };
    let filter = match filter_of(Some(&q.kind), None) {
        Ok(f) => f,
        Err(_) => return Ok(bad("No such kind of event: choose one from the list.")),
    };
    let cursor = match q.cursor.as_str() {
        "" => None,
        c => match AuditCursor::decode(c) {
            Some(c) => Some(c),
            None => return Ok(bad("That page link is not one this server made.")),
        },
    };
    let csrf = state.sessions().csrf_token(&s.token);
    let proof = state
        .sessions()
        .check_csrf(&s.token, &csrf)
        .ok_or_else(|| ApiError::Internal("csrf".into()))?;
    // Only reads: nothing is recorded, so no origin is needed.
    let admin = state.dashboard_admin(s.principal.clone(), &proof, Origin::default())?;
    let events = admin.audit_page(&filter, PAGE, cursor.as_ref()).await?;
    let mut rows = String::new();
    for stored in &events.events {
        let e = &stored.event;
        rows.push_str(&render(
            ACTIVITY_ROW,
            &[
                ("at", &e.at.to_rfc3339()),
                ("kind", e.kind.as_str()),
                ("actor", &e.actor_label()),
                ("object", &e.object()),
                (
                    "source",
                    &e.source.map(|a| a.to_string()).unwrap_or_default(),
                ),
                (
                    "user_agent",
                    e.user_agent.as_ref().map(|u| u.as_str()).unwrap_or(""),
                ),
            ],
        ));
    }
    if rows.is_empty() {
        rows = "    <tr><td colspan=\"6\">No events.</td></tr>".into();
    }
    let more = match events.next_cursor {
        Some(c) => {
            let mut href = format!("/dashboard/activity?cursor={}", c.encode());
            if let Some(k) = filter.kind {
                href.push_str(&format!("&kind={}", k.as_str()));
            }
            format!(
                "<p><a class=\"button\" href=\"{}\" rel=\"next\">Older events</a></p>",
                escape(&href)
            )
        }
        None => String::new(),
    };
    let body = render(
        ACTIVITY,
        &[
            ("notice", ""),
            ("kinds", &kind_options(filter.kind)),
            ("rows", &rows),
            ("more", &more),
        ],
    );
    Ok(page("Activity", &nav(&state, &s), &body).into_response())
}
