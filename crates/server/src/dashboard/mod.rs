//! The dashboard: server-rendered pages to sign in, list, generate and
//! revoke keys. Every flow works without JavaScript; `app.js` only adds
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

use axum::extract::{Path, State};
use axum::http::header::{CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use fal_core::header::parse_key_pair;
use fal_core::token::SessionToken;
use fal_core::{Alias, KeyId, Principal, Scope};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::auth::AuthFailure;
use crate::auth::sessions::CsrfChecked;
use crate::cookies::{self, OurCookie};
use crate::error::ApiError;
use crate::extract::ClientIp;
use crate::state::AppState;

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
        .route("/dashboard/keys", get(keys_page).post(generate))
        .route("/dashboard/keys/created/{flash}", get(created))
        .route(
            "/dashboard/keys/{key_id}/revoke",
            get(confirm_revoke).post(revoke),
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

async fn keys_page(
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
    let admin = state.dashboard_admin(s.principal.clone(), &proof)?;
    let mut rows = String::new();
    for k in &all_keys(&admin).await? {
        {
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
                ],
            ));
        }
    }
    if rows.is_empty() {
        rows = "      <tr><td colspan=\"6\">No keys yet.</td></tr>".into();
    }
    let body = render(
        KEYS,
        &[("csrf", &csrf), ("rows", &rows), ("notice", notice)],
    );
    Ok(page("Keys", &nav(state, s), &body).into_response())
}

/// Generate form.
#[derive(Deserialize)]
struct GenerateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    alias: String,
}

async fn generate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<GenerateForm>,
) -> Result<Response, ApiError> {
    let (s, admin) = match form_admin(&state, &headers, &form.csrf).await {
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
            let notice = format!(
                "<div class=\"error\" role=\"alert\">The key was not generated: {}.</div>",
                escape(&e.to_string())
            );
            let mut resp = render_keys(&state, &s, &notice).await?;
            *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            return Ok(resp);
        }
    };
    let created = admin.create_key(scope, alias.into_string()).await?;
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

/// The one-time secret page. Only a GET uses the link up: axum answers
/// HEAD with the GET handler, and a link checker or prefetcher sending HEAD
/// must not burn the secret before its owner sees it.
async fn created(
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

async fn confirm_revoke(
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
    let admin = state.dashboard_admin(s.principal.clone(), &proof)?;
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

async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key_id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ApiError> {
    let (s, admin) = match form_admin(&state, &headers, &form.csrf).await {
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
