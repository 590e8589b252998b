//! Sign-in routes: the CLI's device flow, token refresh and logout, and the
//! dashboard's web flow.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use fal_core::token::SessionToken;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use fal_core::AuditKind;

use super::ApiJson;
use crate::audit::Origin;
use crate::cookies::{self, OurCookie};
use crate::error::ApiError;
use crate::extract::Caller;
use crate::github::{DevicePoll, Github};
use crate::response_headers::no_store;
use crate::state::AppState;

fn github(state: &AppState) -> Result<&Github, ApiError> {
    state.github().ok_or_else(|| ApiError::Status {
        status: StatusCode::NOT_IMPLEMENTED,
        code: "github_not_configured",
        detail: "GitHub sign-in is not configured on this server: start fal serve with \
                 --github-client-id and --github-client-secret (or use a key pair: \
                 FAL_KEY_ID/FAL_KEY_SECRET)"
            .into(),
    })
}

/// `GET /auth/github`: whether GitHub sign-in is available here.
pub async fn status(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "configured": state.github().is_some() }))
}

/// `POST /auth/device`: starts the device flow.
pub async fn device_start(State(state): State<AppState>) -> Result<Response, ApiError> {
    let code = github(&state)?.device_code(state.clock().now()).await?;
    // The device code is the attempt's secret: no cache keeps it.
    Ok(no_store(Json(
        serde_json::to_value(code).unwrap_or_default(),
    )))
}

/// `POST /auth/device/token` body.
#[derive(Deserialize)]
pub struct DevicePollBody {
    device_code: String,
}

fn user_json(u: &fal_store::User) -> Value {
    json!({"user_id": u.user_id.as_str(), "nickname": u.nickname, "full_name": u.full_name})
}

/// `POST /auth/device/token`: one poll. 202 while pending (with the interval
/// to use), 200 with tokens when done.
pub async fn device_poll(
    State(state): State<AppState>,
    origin: Origin,
    ApiJson(body): ApiJson<DevicePollBody>,
) -> Result<Response, ApiError> {
    let gh = github(&state)?;
    let status = |code: StatusCode, c: &'static str, detail: &str| ApiError::Status {
        status: code,
        code: c,
        detail: detail.into(),
    };
    match gh
        .poll_device(&body.device_code, state.clock().now())
        .await?
    {
        DevicePoll::Pending => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"status": "authorization_pending"})),
        )
            .into_response()),
        DevicePoll::SlowDown(interval) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"status": "slow_down", "interval": interval})),
        )
            .into_response()),
        DevicePoll::Expired => Err(status(
            StatusCode::GONE,
            "expired_token",
            "The code expired before it was entered: run `fal auth login` again",
        )),
        DevicePoll::Denied => Err(status(
            StatusCode::FORBIDDEN,
            "access_denied",
            "Access was denied on GitHub",
        )),
        DevicePoll::Unknown => Err(status(
            StatusCode::BAD_REQUEST,
            "unknown_device_code",
            "GitHub does not know this device code, or it was already used: send the \
             device_code POST /auth/device answered with, or run `fal auth login` again",
        )),
        DevicePoll::Token(token) => {
            let user = gh
                .sign_in(&token, state.users().as_ref(), state.clock(), state.rng())
                .await?;
            let issued = state
                .sessions()
                .issue_cli(&user.user_id, Some(&token))
                .await?;
            signed_in(&state, &user.user_id, &issued.session_id, "cli", &origin).await?;
            Ok(no_store(Json(json!({
                "access_token": issued.access.expose(),
                "refresh_token": issued.refresh.expose(),
                "expires_in": issued.expires_in,
                "user": user_json(&user),
            }))))
        }
    }
}

/// `POST /auth/refresh` body.
#[derive(Deserialize)]
pub struct RefreshBody {
    refresh_token: String,
}

/// `POST /auth/refresh`: rotates the tokens of a CLI session, after
/// checking with GitHub that the user is still allowed (allow-lists and org
/// membership, with the GitHub token kept sealed since sign-in). A user no
/// longer allowed gets 401 and the session ends; when GitHub cannot be
/// reached the answer is 503 and the session is kept, so a retry may work.
pub async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<Response, ApiError> {
    let grant = state.sessions().begin_refresh(&body.refresh_token).await?;
    let allowed = match (state.github(), &grant.github_token) {
        (Some(gh), Some(token)) => {
            let github_id = state
                .users()
                .user(&grant.record.user_id)
                .await?
                .and_then(|u| u.github_id);
            match gh.still_allowed(token, github_id).await {
                Ok(allowed) => allowed,
                Err(e) => {
                    let mut resp = e.into_response();
                    resp.headers_mut()
                        .insert("retry-after", HeaderValue::from_static("30"));
                    return Ok(resp);
                }
            }
        }
        // No GitHub to ask, or no token kept: the access cannot be
        // confirmed, so the session ends (sign in again).
        _ => false,
    };
    if !allowed {
        state.sessions().revoke(&grant.record.session_id).await?;
        return Err(ApiError::Status {
            status: StatusCode::UNAUTHORIZED,
            code: "access_withdrawn",
            detail: "This server no longer allows your GitHub account (or could not confirm it): \
                     run `fal auth login` again, or ask its operator"
                .into(),
        });
    }
    let issued = state.sessions().finish_refresh(grant).await?;
    Ok(no_store(Json(json!({
        "access_token": issued.access.expose(),
        "refresh_token": issued.refresh.expose(),
        "expires_in": issued.expires_in,
    }))))
}

/// `POST /auth/logout`: ends the caller's session (bearer token), and the
/// one holding `refresh_token` in the body. With neither it is refused
/// (401): the dashboard's cookie is not a credential here (the dashboard
/// has its own logout form, with its CSRF token), and answering 204 to a
/// cookie would look like a logout while the session lived on.
pub async fn logout(
    State(state): State<AppState>,
    origin: Origin,
    caller: Result<Caller, ApiError>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let refresh = serde_json::from_slice::<RefreshBody>(&body).ok();
    match caller {
        Err(e) if refresh.is_none() => return Err(e),
        Err(_) => {}
        Ok(Caller(p)) => {
            if let Some(id) = &p.session_id {
                state.sessions().revoke(id).await?;
                let audit = state.audit();
                let event = audit.by(AuditKind::SessionSignedOut, &p, &origin);
                audit.record(event).await?;
            }
        }
    }
    if let Some(b) = refresh
        && let Some(ended) = state.sessions().revoke_by_refresh(&b.refresh_token).await?
    {
        let audit = state.audit();
        let mut event = audit.event(AuditKind::SessionSignedOut, Some(&ended.user_id), &origin);
        event.actor.user_id = Some(ended.user_id.clone());
        event.actor.session_id = Some(ended.session_id);
        audit.record(event).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Records a GitHub sign-in of `user_id` into the new session
/// `session_id`, by `via` (`cli` or `dashboard`).
async fn signed_in(
    state: &AppState,
    user_id: &fal_core::UserId,
    session_id: &str,
    via: &str,
    origin: &Origin,
) -> Result<(), ApiError> {
    let audit = state.audit();
    let mut event = audit.event(AuditKind::SessionSignedIn, Some(user_id), origin);
    event.actor.user_id = Some(user_id.clone());
    event.actor.session_id = Some(session_id.to_owned());
    event.detail.insert("method".into(), "github".into());
    event.detail.insert("via".into(), via.into());
    audit.record(event).await
}

/// Unpadded base64url (RFC 4648 §5), as PKCE's S256 challenge uses it.
/// Pinned to RFC 7636's worked example by a test; the fake GitHub in the
/// tests checks challenges with it too.
pub fn b64url(bytes: &[u8]) -> String {
    fal_core::app_token::encode(bytes)
}

/// `GET /auth/github/login`: the web flow's first step.
pub async fn web_login(State(state): State<AppState>) -> Result<Response, ApiError> {
    let gh = github(&state)?;
    let callback = gh.callback_url()?;
    let st = SessionToken::generate("", state.rng())?;
    let verifier = SessionToken::generate("", state.rng())?;
    let challenge = b64url(&Sha256::digest(verifier.expose().as_bytes()));
    let url = gh.authorize_url(callback, st.expose(), &challenge);
    let value = format!("{}.{}", st.expose(), verifier.expose());
    let cookie = cookies::set(OurCookie::OAuth, state.tls(), &value, 600)
        .ok_or_else(|| ApiError::Internal("cookie".into()))?;
    let mut resp = StatusCode::SEE_OTHER.into_response();
    let h = resp.headers_mut();
    h.insert(
        LOCATION,
        HeaderValue::from_str(&url).map_err(|_| ApiError::Internal("url".into()))?,
    );
    h.insert(SET_COOKIE, cookie);
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Web flow callback query.
#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /auth/github/callback`: checks `state`, exchanges the code with its
/// PKCE verifier, signs the user in, and sets a fresh session cookie.
pub async fn web_callback(
    State(state): State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, ApiError> {
    let gh = github(&state)?;
    let bad = |detail: &str| ApiError::Status {
        status: StatusCode::BAD_REQUEST,
        code: "bad_oauth_state",
        detail: detail.into(),
    };
    if let Some(e) = q.error {
        return Err(bad(&format!(
            "GitHub sign-in did not complete ({e}); start again"
        )));
    }
    let stored = cookies::read(&headers, OurCookie::OAuth, state.tls())
        .ok_or_else(|| bad("The sign-in expired or was started elsewhere; start again"))?;
    let (st, verifier) = stored
        .split_once('.')
        .ok_or_else(|| bad("Malformed sign-in cookie; start again"))?;
    let given = q.state.unwrap_or_default();
    // An empty state (given or stored) proves nothing: a cookie planted with
    // an empty state would match any callback without one.
    if st.is_empty() || verifier.is_empty() || !crate::auth::sessions::same_secret(st, &given) {
        return Err(bad("The sign-in's state does not match; start again"));
    }
    let code = q
        .code
        .ok_or_else(|| bad("GitHub sent no code; start again"))?;
    let token = gh
        .exchange_code(&code, verifier, gh.callback_url()?)
        .await?;
    let user = gh
        .sign_in(&token, state.users().as_ref(), state.clock(), state.rng())
        .await?;
    let (session, ttl, session_id) = state
        .sessions()
        .issue_web(&user.user_id, None, None)
        .await?;
    signed_in(&state, &user.user_id, &session_id, "dashboard", &origin).await?;
    let tls = state.tls();
    let session = cookies::set(OurCookie::Session, tls, session.expose(), ttl.as_secs())
        .ok_or_else(|| ApiError::Internal("cookie".into()))?;
    let mut resp = StatusCode::SEE_OTHER.into_response();
    let h = resp.headers_mut();
    h.insert(LOCATION, HeaderValue::from_static("/dashboard/keys"));
    h.append(SET_COOKIE, session);
    h.append(SET_COOKIE, cookies::clear(OurCookie::OAuth, tls));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64url_matches_rfc7636_example() {
        // The RFC 7636 appendix B verifier; the expected value was computed with
        // Python's hashlib and base64.urlsafe_b64encode.
        use sha2::Digest;
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = super::b64url(&sha2::Sha256::digest(verifier.as_bytes()));
        assert_eq!(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }
}
