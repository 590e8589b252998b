//! The keys page and its forms: list (with each key's calls over the last
//! 30 days, drawn by [`super::chart`]), generate (with an optional rate
//! limit and expiry), change a key's rate limit, roll, and revoke.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use fal_core::token::SessionToken;
use fal_core::usage::{DAY_MS, Hour, by_day};
use fal_core::{Alias, ExpiryError, ExpiryPolicy, Grace, KeyId, RateLimit, Scope};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{
    CONFIRM, CREATED, CsrfForm, KEY_ROW, KEYS, SHOWN, Signed, escape, form_admin, nav, page,
    redirect, render, signed_in,
};
use crate::audit::Origin;
use crate::auth::CreatedKey;
use crate::auth::sessions::CsrfChecked;
use crate::error::ApiError;
use crate::state::AppState;

/// How many days the keys page's usage charts show.
const CHART_DAYS: usize = 30;

/// Every key of the acting user, newest first, following cursors.
async fn all_keys(admin: &crate::auth::Admin) -> Result<Vec<fal_store::KeySummary>, ApiError> {
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page = admin.list_keys(100, cursor.as_ref()).await?;
        all.extend(page.keys);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(all),
        }
    }
}

pub(super) async fn keys_page(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(s) = signed_in(&state, &headers).await else {
        return Ok(redirect("/dashboard/login"));
    };
    render_keys(&state, &s, "").await
}

async fn render_keys(state: &AppState, s: &Signed, notice: &str) -> Result<Response, ApiError> {
    let csrf = state.sessions().csrf_token(&s.token);
    let proof = state
        .sessions()
        .check_csrf(&s.token, &csrf)
        .ok_or_else(|| ApiError::Internal("csrf".into()))?;
    // Only reads: nothing is recorded, so no origin is needed.
    let admin = state.dashboard_admin(s.principal.clone(), &proof, Origin::default())?;
    let now = admin.now();
    let since = Hour::of(now.plus_millis(-(CHART_DAYS as i64 - 1) * DAY_MS));
    let usage = admin.all_key_usage(since).await?;
    let mut rows = String::new();
    for k in &all_keys(&admin).await? {
        {
            let hours = usage.get(&k.key_id).map(Vec::as_slice).unwrap_or_default();
            let days = by_day(hours, now, CHART_DAYS);
            let label = if k.alias.is_empty() {
                k.key_id.to_string()
            } else {
                k.alias.clone()
            };
            let chart = super::chart::usage_chart(&days, &label);
            let limit = k.rate_limit.map(|r| r.to_string());
            rows.push_str(&render(
                KEY_ROW,
                &[
                    ("key_id", &k.key_id.to_string()),
                    ("alias", if k.alias.is_empty() { "—" } else { &k.alias }),
                    ("scope", k.scope.as_str()),
                    ("created", &k.created_at.to_rfc3339()),
                    (
                        "last_used",
                        &k.last_used_at
                            .map(|t| t.to_rfc3339())
                            .unwrap_or_else(|| "never".into()),
                    ),
                    ("rate_limit", limit.as_deref().unwrap_or("none")),
                    ("rate_limit_value", limit.as_deref().unwrap_or_default()),
                    ("expires", &expires_cell(k)),
                    ("csrf", &csrf),
                    ("chart", &chart),
                ],
            ));
        }
    }
    if rows.is_empty() {
        rows = "      <tr><td colspan=\"8\">No keys yet.</td></tr>".into();
    }
    let body = render(
        KEYS,
        &[("csrf", &csrf), ("rows", &rows), ("notice", notice)],
    );
    Ok(page("Keys", &nav(state, s), &body).into_response())
}

/// Generate form.
#[derive(Deserialize)]
pub(super) struct GenerateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    alias: String,
    /// Empty for unlimited.
    #[serde(default)]
    rate_limit: String,
    /// `never`, a lifetime (`7d`, `30d`, `90d`) or `custom` (then
    /// `expires_on`).
    #[serde(default)]
    expiry: String,
    /// A date (`YYYY-MM-DD`): the key stops at its start, UTC.
    #[serde(default)]
    expires_on: String,
}

/// What the Expires cell says: the instant, or `never`; a rolled key
/// names its replacement.
fn expires_cell(k: &fal_store::KeySummary) -> String {
    let at = k
        .expires_at
        .map_or_else(|| "never".to_owned(), |t| t.to_rfc3339());
    match k.rolled_to {
        Some(to) => format!("{at} (rolled to {to})"),
        None => at,
    }
}

/// The expiry chosen in the generate form.
fn chosen_expiry(form: &GenerateForm, now: fal_core::Timestamp) -> Result<ExpiryPolicy, String> {
    match form.expiry.trim() {
        "" | "never" => Ok(ExpiryPolicy::Never),
        "custom" => {
            let day = form.expires_on.trim();
            if day.is_empty() {
                return Err("choose the expiry date".into());
            }
            ExpiryPolicy::from_request(Some(&format!("{day}T00:00:00Z")), None, now).map_err(|e| {
                match e {
                    ExpiryError::BadDate => "the expiry date is a day such as 2026-12-31".into(),
                    ExpiryError::InPast(_) => {
                        format!("the expiry date {day} is not in the future: choose a later day")
                    }
                    other => other.to_string(),
                }
            })
        }
        span => ExpiryPolicy::from_request(None, Some(span), now).map_err(|e| e.to_string()),
    }
}

/// A rate limit typed in a form: empty is none.
fn typed_rate_limit(raw: &str) -> Result<Option<RateLimit>, fal_core::RateLimitError> {
    match raw.trim() {
        "" => Ok(None),
        text => RateLimit::parse(text).map(Some),
    }
}

/// The keys page with an error notice, answered with `status`.
async fn refused(
    state: &AppState,
    s: &Signed,
    message: &str,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let notice = format!(
        "<div class=\"error\" role=\"alert\">{}</div>",
        escape(message)
    );
    let mut resp = render_keys(state, s, &notice).await?;
    *resp.status_mut() = status;
    Ok(resp)
}

pub(super) async fn generate(
    State(state): State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    Form(form): Form<GenerateForm>,
) -> Result<Response, ApiError> {
    let (s, admin) = match form_admin(&state, &headers, origin, &form.csrf).await {
        Ok(both) => both,
        Err(response) => return Ok(response),
    };
    let Ok(scope) = form.scope.parse::<Scope>() else {
        return render_keys(
            &state,
            &s,
            "<div class=\"error\" role=\"alert\">Choose a scope: API or ADMIN.</div>",
        )
        .await;
    };
    let alias = match Alias::parse(&form.alias) {
        Ok(alias) => alias,
        Err(e) => {
            let message = format!("The key was not generated: {e}.");
            return refused(&state, &s, &message, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    let limit = match typed_rate_limit(&form.rate_limit) {
        Ok(limit) => limit,
        Err(e) => {
            let message = format!("The key was not generated: {e}.");
            return refused(&state, &s, &message, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    let expiry = match chosen_expiry(&form, state.clock().now()) {
        Ok(expiry) => expiry,
        Err(e) => {
            let message = format!("The key was not generated: {e}.");
            return refused(&state, &s, &message, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    let created = admin
        .create_key(scope, alias.into_string(), limit, expiry)
        .await?;
    show_once(&state, &s, &created)
}

/// Keeps a new key's secret for one showing, and sends the browser there.
fn show_once(state: &AppState, s: &Signed, created: &CreatedKey) -> Result<Response, ApiError> {
    let flash = SessionToken::generate("", state.rng())?.expose().to_owned();
    state.flashes().put(
        flash.clone(),
        s.principal.session_id.clone().unwrap_or_default(),
        created.key.record.key_id.to_string(),
        SecretString::from(created.secret.expose().to_owned()),
        state.clock().now(),
    );
    Ok(redirect(&format!("/dashboard/keys/created/{flash}")))
}

/// The per-key roll form.
#[derive(Deserialize)]
pub(super) struct RollForm {
    #[serde(default)]
    csrf: String,
    /// How long the old pair keeps working (`0` to `7d`).
    #[serde(default)]
    grace: String,
}

/// Rolls a key: the new pair is shown once, as a generated key is; a key
/// that cannot be rolled is shown as an error with the reason.
pub(super) async fn roll(
    State(state): State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    Path(key_id): Path<String>,
    Form(form): Form<RollForm>,
) -> Result<Response, ApiError> {
    let (s, admin) = match form_admin(&state, &headers, origin, &form.csrf).await {
        Ok(both) => both,
        Err(response) => return Ok(response),
    };
    let grace = match form.grace.trim() {
        "" => Ok(Grace::default()),
        g => g.parse::<Grace>(),
    };
    let grace = match grace {
        Ok(g) => g,
        Err(e) => {
            let message = format!("The key was not rolled: {e}.");
            return refused(&state, &s, &message, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    let Ok(id) = key_id.parse::<KeyId>() else {
        return refused(&state, &s, "No such key.", StatusCode::NOT_FOUND).await;
    };
    match admin.roll_key(&id, grace).await {
        Ok(rolled) => show_once(&state, &s, &rolled.created),
        Err(ApiError::NotFound(_)) => {
            refused(&state, &s, "No such key.", StatusCode::NOT_FOUND).await
        }
        Err(ApiError::Status { status, detail, .. }) => {
            refused(
                &state,
                &s,
                &format!("The key was not rolled: {detail}"),
                status,
            )
            .await
        }
        Err(e) => Err(e),
    }
}

/// The one-time secret page. Only a GET uses the link up: axum answers
/// HEAD with the GET handler, and a link checker or prefetcher sending HEAD
/// must not burn the secret before its owner sees it.
pub(super) async fn created(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path(flash): Path<String>,
) -> Result<Response, ApiError> {
    let Some(s) = signed_in(&state, &headers).await else {
        return Ok(redirect("/dashboard/login"));
    };
    if method != Method::GET {
        return Ok(page("Key generated", &nav(&state, &s), "").into_response());
    }
    let session = s.principal.session_id.clone().unwrap_or_default();
    let body = match state.flashes().take(&flash, &session, state.clock().now()) {
        Some((key_id, secret)) => render(
            CREATED,
            &[("key_id", &key_id), ("key_secret", secret.expose_secret())],
        ),
        None => SHOWN.to_owned(),
    };
    Ok(page("Key generated", &nav(&state, &s), &body).into_response())
}

pub(super) async fn confirm_revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key_id): Path<String>,
) -> Result<Response, ApiError> {
    let Some(s) = signed_in(&state, &headers).await else {
        return Ok(redirect("/dashboard/login"));
    };
    let csrf = state.sessions().csrf_token(&s.token);
    let proof: CsrfChecked = state
        .sessions()
        .check_csrf(&s.token, &csrf)
        .ok_or_else(|| ApiError::Internal("csrf".into()))?;
    // Only reads: nothing is recorded, so no origin is needed.
    let admin = state.dashboard_admin(s.principal.clone(), &proof, Origin::default())?;
    // Show the key only if it is the user's own.
    let found = all_keys(&admin)
        .await?
        .into_iter()
        .find(|k| k.key_id.to_string() == key_id);
    let Some(k) = found else {
        return Ok((
            StatusCode::NOT_FOUND,
            page(
                "Not found",
                &nav(&state, &s),
                "<h1>No such key</h1><p><a href=\"/dashboard/keys\">Back to keys</a></p>",
            ),
        )
            .into_response());
    };
    let body = render(
        CONFIRM,
        &[
            ("key_id", &k.key_id.to_string()),
            (
                "alias",
                if k.alias.is_empty() {
                    "no alias"
                } else {
                    &k.alias
                },
            ),
            ("scope", k.scope.as_str()),
            ("csrf", &csrf),
        ],
    );
    Ok(page("Revoke key", &nav(&state, &s), &body).into_response())
}

pub(super) async fn revoke(
    State(state): State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    Path(key_id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ApiError> {
    let (s, admin) = match form_admin(&state, &headers, origin, &form.csrf).await {
        Ok(both) => both,
        Err(response) => return Ok(response),
    };
    let revoked = match key_id.parse::<KeyId>() {
        Ok(id) => admin.revoke_key(&id).await?,
        Err(_) => false,
    };
    let notice = if revoked {
        format!(
            "<div class=\"notice\" role=\"status\">Key <code>{}</code> was revoked.</div>",
            escape(&key_id)
        )
    } else {
        "<div class=\"error\" role=\"alert\">No such key.</div>".to_owned()
    };
    let mut resp = render_keys(&state, &s, &notice).await?;
    if !revoked {
        *resp.status_mut() = StatusCode::NOT_FOUND;
    }
    Ok(resp)
}

/// The per-key rate limit form.
#[derive(Deserialize)]
pub(super) struct RateLimitForm {
    #[serde(default)]
    csrf: String,
    /// Empty lifts the limit.
    #[serde(default)]
    rate_limit: String,
}

/// Sets or (empty) lifts a key's rate limit, then shows the keys page with
/// what changed; an invalid limit is shown as an error (422), a key that is
/// not the user's (or is revoked) as "No such key." (404).
pub(super) async fn set_rate_limit(
    State(state): State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    Path(key_id): Path<String>,
    Form(form): Form<RateLimitForm>,
) -> Result<Response, ApiError> {
    let (s, admin) = match form_admin(&state, &headers, origin, &form.csrf).await {
        Ok(both) => both,
        Err(response) => return Ok(response),
    };
    let limit = match typed_rate_limit(&form.rate_limit) {
        Ok(limit) => limit,
        Err(e) => {
            let message = format!("The rate limit was not changed: {e}.");
            return refused(&state, &s, &message, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    let found = match key_id.parse::<KeyId>() {
        Ok(id) => admin.set_key_rate_limit(&id, limit).await?,
        Err(_) => false,
    };
    if !found {
        return refused(&state, &s, "No such key.", StatusCode::NOT_FOUND).await;
    }
    let what = match limit {
        Some(l) => format!("is now limited to <code>{}</code>", escape(&l.to_string())),
        None => "has no rate limit now".to_owned(),
    };
    let notice = format!(
        "<div class=\"notice\" role=\"status\">Key <code>{}</code> {what}.</div>",
        escape(&key_id)
    );
    render_keys(&state, &s, &notice).await
}
