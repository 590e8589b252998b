//! The dashboard: server-rendered pages to sign in, list, generate,
//! rate-limit and revoke keys (those in [`keys`]). Every flow works without JavaScript; `app.js` only adds
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
use fal_core::{Principal, Scope};
use serde::Deserialize;

use crate::auth::AuthFailure;
use crate::cookies::{self, OurCookie};
use crate::error::ApiError;
use crate::extract::ClientIp;
use crate::state::AppState;

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
        .route(
            "/dashboard/keys/{key_id}/revoke",
            get(keys::confirm_revoke).post(keys::revoke),
        )
        .route(
            "/dashboard/keys/{key_id}/rate-limit",
            post(keys::set_rate_limit),
        )
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
    let pair = format!("{}:{}", form.key_id.trim(), form.key_secret.trim());
    let verified = match parse_key_pair(&pair) {
        Ok(creds) => state.verifier().verify(&creds).await,
        Err(_) => Err(AuthFailure::Malformed),
    };
    let principal = verified.map_err(|f| state.note_failure(client, f)).ok();
    let Some(principal) = principal else {
        return login_form(
            &state,
            Some("No user found for Key ID and Secret"),
            StatusCode::UNAUTHORIZED,
        );
    };
    if principal.scope != Scope::Admin {
        return login_form(
            &state,
            Some(
                "This is an API-scope key: it can call models but cannot sign in to the dashboard. Use an ADMIN key.",
            ),
            StatusCode::FORBIDDEN,
        );
    }
    // A new session at every sign-in (no fixation).
    // Opened with this key: revoking the key ends the session.
    let (token, ttl) = state
        .sessions()
        .issue_web(&principal.user_id, principal.key_id)
        .await?;
    let mut resp = redirect("/dashboard/keys");
    let tls = state.tls();
    let h = resp.headers_mut();
    if let Some(v) = cookies::set(OurCookie::Session, tls, token.expose(), ttl.as_secs()) {
        h.append(SET_COOKIE, v);
    }
    h.append(SET_COOKIE, cookies::clear(OurCookie::LoginCsrf, tls));
    Ok(resp)
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
    csrf: &str,
) -> Result<(Signed, crate::auth::Admin), Response> {
    let Some(s) = signed_in(state, headers).await else {
        return Err(redirect("/dashboard/login"));
    };
    let Some(proof) = state.sessions().check_csrf(&s.token, csrf) else {
        return Err(forbidden());
    };
    match state.dashboard_admin(s.principal.clone(), &proof) {
        Ok(admin) => Ok((s, admin)),
        Err(e) => Err(e.into_response()),
    }
}

fn forbidden() -> Response {
    (StatusCode::FORBIDDEN, page("Forbidden", "", "<h1>Forbidden</h1><p>The form's security token is missing or wrong. Go back, reload the page and try again.</p>")).into_response()
}

async fn logout(
    State(state): State<AppState>,
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
    }
    let mut resp = redirect("/dashboard/login");
    resp.headers_mut()
        .append(SET_COOKIE, cookies::clear(OurCookie::Session, state.tls()));
    Ok(resp)
}
