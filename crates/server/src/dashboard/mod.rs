//! The dashboard: server-rendered pages to sign in, list, generate,
//! rate-limit and revoke keys (those in [`keys`]), and see what was done
//! ([`activity`], the audit log). Every flow works without JavaScript; `app.js` only adds
//! copy buttons.
//!
//! Security: the session is an HttpOnly, SameSite=Lax cookie (Secure under
//! TLS), a new one at every sign-in, revoked at sign-out, expiring
//! server-side. Every form carries a CSRF token (bound to the session, or a
//! double-submit cookie before sign-in), and key management is reachable
//! only with the [`CsrfChecked`] proof. Pages are sent with a strict
//! Content-Security-Policy, `X-Frame-Options: DENY` and
//! `Cache-Control: no-store`. A new secret is shown through a one-time
//! link (post, redirect, get): reloading or going back never shows it again.

use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use fal_core::header::parse_key_pair;
use fal_core::token::SessionToken;
use fal_core::{AuditKind, Principal, Scope};
use serde::Deserialize;

use crate::audit::Origin;
use crate::auth::AuthFailure;
use crate::cookies::{self, OurCookie};
use crate::error::ApiError;
use crate::extract::ClientIp;
use crate::state::AppState;

mod activity;
mod chart;
mod keys;
mod templates;

pub use templates::{escape, render};

const LAYOUT: &str = include_str!("../../templates/layout.html");
const LOGIN: &str = include_str!("../../templates/login.html");
const KEYS: &str = include_str!("../../templates/keys.html");
const KEY_ROW: &str = include_str!("../../templates/key_row.html");
const CREATED: &str = include_str!("../../templates/created.html");
const SHOWN: &str = include_str!("../../templates/shown.html");
const CONFIRM: &str = include_str!("../../templates/confirm_revoke.html");
const NAV: &str = include_str!("../../templates/nav.html");
const ACTIVITY: &str = include_str!("../../templates/activity.html");
const ACTIVITY_ROW: &str = include_str!("../../templates/activity_row.html");
const CSS: &str = include_str!("../../static/app.css");
const JS: &str = include_str!("../../static/app.js");

fn page(title: &str, nav: &str, body: &str) -> Html<String> {
    Html(render(
        LAYOUT,
        &[("title", title), ("nav", nav), ("body", body)],
    ))
}

/// The dashboard's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(|| async { redirect("/dashboard/keys") }))
        .route("/dashboard/login", get(login_page).post(login))
        .route("/dashboard/logout", post(logout))
        .route("/dashboard/keys", get(keys::keys_page).post(keys::generate))
        .route("/dashboard/keys/created/{flash}", get(keys::created))
        .route("/dashboard/activity", get(activity::activity_page))
        .route(
            "/dashboard/keys/{key_id}/revoke",
            get(keys::confirm_revoke).post(keys::revoke),
        )
        .route(
            "/dashboard/keys/{key_id}/rate-limit",
            post(keys::set_rate_limit),
        )
        .route("/dashboard/keys/{key_id}/roll", post(keys::roll))
        .route(
            "/dashboard/static/app.css",
            get(|| async { ([(CONTENT_TYPE, "text/css")], CSS) }),
        )
        .route(
            "/dashboard/static/app.js",
            get(|| async { ([(CONTENT_TYPE, "text/javascript")], JS) }),
        )
        .layer(axum::middleware::from_fn(
            crate::response_headers::dashboard,
        ))
}

fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

/// The signed-in dashboard user: principal and session token.
struct Signed {
    principal: Principal,
    token: String,
    nickname: String,
}

async fn signed_in(state: &AppState, headers: &HeaderMap) -> Option<Signed> {
    let token = cookies::read(headers, OurCookie::Session, state.tls())?;
    let principal = state.verifier().authenticate_cookie(&token).await.ok()?;
    crate::metrics::note_scope(principal.scope);
    let nickname = state
        .users()
        .user(&principal.user_id)
        .await
        .ok()
        .flatten()
        .map(|u| u.nickname)
        .unwrap_or_default();
    Some(Signed {
        principal,
        token,
        nickname,
    })
}

fn nav(state: &AppState, s: &Signed) -> String {
    render(
        NAV,
        &[
            ("nickname", &s.nickname),
            ("csrf", &state.sessions().csrf_token(&s.token)),
        ],
    )
}

fn login_form(
    state: &AppState,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let csrf = SessionToken::generate("", state.rng())?;
    let github = if state.github().is_some() {
        "<section class=\"card\" aria-labelledby=\"gh\"><h2 id=\"gh\">Sign in with GitHub</h2>\
         <p class=\"hint\">For people with a GitHub account this server allows.</p>\
         <a class=\"button\" href=\"/auth/github/login\">Sign in with GitHub</a></section>"
    } else {
        ""
    };
    let error = error
        .map(|e| format!("<div class=\"error\" role=\"alert\">{}</div>", escape(e)))
        .unwrap_or_default();
    let body = render(
        LOGIN,
        &[
            ("csrf", csrf.expose()),
            ("github", github),
            ("error", &error),
        ],
    );
    let mut resp = (status, page("Sign in", "", &body)).into_response();
    if let Some(v) = cookies::set(OurCookie::LoginCsrf, state.tls(), csrf.expose(), 3600) {
        resp.headers_mut().append(SET_COOKIE, v);
    }
    Ok(resp)
}

async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if signed_in(&state, &headers).await.is_some() {
        return Ok(redirect("/dashboard/keys"));
    }
    login_form(&state, None, StatusCode::OK)
}

/// Sign-in form.
#[derive(Deserialize)]
struct LoginForm {
    csrf: String,
    key_id: String,
    key_secret: String,
}

async fn login(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, ApiError> {
    let expected = cookies::read(&headers, OurCookie::LoginCsrf, state.tls()).unwrap_or_default();
    if expected.is_empty() || expected != form.csrf {
        return login_form(
            &state,
            Some("The form expired; please sign in again."),
            StatusCode::FORBIDDEN,
        );
    }
    // Failed sign-ins count as failed API calls do (429 past the limit).
    state.refuse_if_blocked(client).await?;
    let origin = Origin::from_headers(client, &headers);
    let pair = format!("{}:{}", form.key_id.trim(), form.key_secret.trim());
    let verified = match parse_key_pair(&pair) {
        Ok(creds) => state.verifier().verify(&creds).await,
        Err(_) => Err(AuthFailure::Malformed),
    };
    let principal = match verified {
        Ok(p) => p,
        Err(f) => {
            // Counted before anything else can fail. The right secret of a
            // revoked, expired or rolled key is told why, as the API tells
            // it; anything else the one message.
            let told = matches!(
                f,
                AuthFailure::KeyRevoked | AuthFailure::KeyExpired(_) | AuthFailure::KeyRolled(_)
            );
            if matches!(f, AuthFailure::KeyExpired(_)) {
                state.note_expired_use(Some(&format!("Key {pair}")), origin.clone());
            }
            let refusal = state.note_failure(client, f);
            if f.is_refusal() {
                sign_in_failed(&state, form.key_id.trim(), &origin).await?;
            }
            let message = match refusal {
                ApiError::Status { detail, .. } if told => detail,
                _ => "No user found for Key ID and Secret".to_owned(),
            };
            return login_form(&state, Some(&message), StatusCode::UNAUTHORIZED);
        }
    };
    if principal.scope != Scope::Admin {
        let audit = state.audit();
        let mut event = audit.by(AuditKind::SessionSignInFailed, &principal, &origin);
        event.key_id = principal.key_id;
        event.detail.insert("reason".into(), "api_scope".into());
        audit.record(event).await?;
        return login_form(
            &state,
            Some(
                "This is an API-scope key: it can call models but cannot sign in to the dashboard. Use an ADMIN key.",
            ),
            StatusCode::FORBIDDEN,
        );
    }
    // A new session at every sign-in (no fixation).
    // Opened with this key: revoking or rolling the key ends the session,
    // and so does its expiry (its record is cached: it just verified).
    let key_expires_at = principal
        .key_id
        .and_then(|id| state.verifier().cached_expiry(&id));
    let (token, ttl, session_id) = state
        .sessions()
        .issue_web(&principal.user_id, principal.key_id, key_expires_at)
        .await?;
    let audit = state.audit();
    let mut event = audit.by(AuditKind::SessionSignedIn, &principal, &origin);
    event.actor.session_id = Some(session_id);
    event.detail.insert("method".into(), "key".into());
    event.detail.insert("via".into(), "dashboard".into());
    audit.record(event).await?;
    let mut resp = redirect("/dashboard/keys");
    let tls = state.tls();
    let h = resp.headers_mut();
    if let Some(v) = cookies::set(OurCookie::Session, tls, token.expose(), ttl.as_secs()) {
        h.append(SET_COOKIE, v);
    }
    h.append(SET_COOKIE, cookies::clear(OurCookie::LoginCsrf, tls));
    Ok(resp)
}

/// Records a refused sign-in: in the log of the owner of the key it named
/// when there is such a key (never the typed text otherwise, which may be
/// a secret typed in the wrong field), else in nobody's.
async fn sign_in_failed(state: &AppState, key_id: &str, origin: &Origin) -> Result<(), ApiError> {
    let key_id = key_id.parse::<fal_core::KeyId>().ok();
    let owner = match &key_id {
        Some(id) => state.verifier().owner_of(id).await,
        None => None,
    };
    let audit = state.audit();
    let mut event = audit.event(AuditKind::SessionSignInFailed, owner.as_ref(), origin);
    event.key_id = key_id.filter(|_| owner.is_some());
    event.detail.insert("reason".into(), "wrong_key".into());
    audit.record(event).await
}

/// Any form with only a CSRF token.
#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// For a form post: the signed-in user and their key-management handle,
/// or the response to send instead (to sign-in, or 403 for a missing or
/// wrong CSRF token).
async fn form_admin(
    state: &AppState,
    headers: &HeaderMap,
    origin: Origin,
    csrf: &str,
) -> Result<(Signed, crate::auth::Admin), Response> {
    let Some(s) = signed_in(state, headers).await else {
        return Err(redirect("/dashboard/login"));
    };
    let Some(proof) = state.sessions().check_csrf(&s.token, csrf) else {
        return Err(forbidden());
    };
    match state.dashboard_admin(s.principal.clone(), &proof, origin) {
        Ok(admin) => Ok((s, admin)),
        Err(e) => Err(e.into_response()),
    }
}

fn forbidden() -> Response {
    (StatusCode::FORBIDDEN, page("Forbidden", "", "<h1>Forbidden</h1><p>The form's security token is missing or wrong. Go back, reload the page and try again.</p>")).into_response()
}

async fn logout(
    State(state): State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ApiError> {
    let Some(s) = signed_in(&state, &headers).await else {
        return Ok(redirect("/dashboard/login"));
    };
    if state.sessions().check_csrf(&s.token, &form.csrf).is_none() {
        return Ok(forbidden());
    }
    if let Some(id) = &s.principal.session_id {
        state.sessions().revoke(id).await?;
        let audit = state.audit();
        let event = audit.by(AuditKind::SessionSignedOut, &s.principal, &origin);
        audit.record(event).await?;
    }
    let mut resp = redirect("/dashboard/login");
    resp.headers_mut()
        .append(SET_COOKIE, cookies::clear(OurCookie::Session, state.tls()));
    Ok(resp)
}
