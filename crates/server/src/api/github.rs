//! Sign-in routes: the CLI's device flow, token refresh and logout, and the
//! dashboard's web flow.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use fal_core::token::SessionToken;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use fal_core::AuditKind;

use super::ApiJson;
use crate::audit::Origin;
use crate::cookies::{self, OurCookie};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Caller;
use crate::github::{DevicePoll, Github};
use crate::response_headers::no_store;
use crate::state::AppState;

fn github(state: &AppState) -> Result<&Github, ApiError> {
    state.github().ok_or_else(|| ApiError::Status {
        // The caller asked for something this server does not offer: a
        // 4xx, not a server fault for 5xx alerts to count.
        status: StatusCode::NOT_FOUND,
        code: "github_not_configured",
        detail: "GitHub sign-in is not configured on this server: start fal serve with \
                 --github-client-id and --github-client-secret (or use a key pair: \
                 FAL_KEY_ID/FAL_KEY_SECRET)"
            .into(),
    })
}

/// `GET /auth/github`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GithubStatus {
    /// GitHub sign-in is available here.
    configured: bool,
}

/// `GET /auth/github`: whether GitHub sign-in is available here.
#[utoipa::path(
    get,
    path = "/auth/github",
    operation_id = "auth_status",
    tag = "auth",
    responses((status = 200, description = "Whether GitHub sign-in is configured", body = GithubStatus))
)]
pub async fn status(State(state): State<AppState>) -> Json<GithubStatus> {
    Json(GithubStatus {
        configured: state.github().is_some(),
    })
}

/// `POST /auth/device`: starts the device flow.
#[utoipa::path(
    post,
    path = "/auth/device",
    operation_id = "auth_device_start",
    tag = "auth",
    responses(
        (status = 200, description = "GitHub's device code (`Cache-Control: no-store`)", body = crate::github::DeviceCode),
        (status = 404, description = "GitHub sign-in is not configured here (`github_not_configured`)", body = ErrorBody),
        (status = 429, description = "Too many sign-ins under way", body = ErrorBody),
        (status = 503, description = "GitHub cannot be reached (`github_unavailable`)", body = ErrorBody),
    )
)]
pub async fn device_start(State(state): State<AppState>) -> Result<Response, ApiError> {
    let code = github(&state)?.device_code(state.clock().now()).await?;
    // The device code is the attempt's secret: no cache keeps it.
    Ok(no_store(Json(code)))
}

/// `POST /auth/device/token` while the user has not finished.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Pending {
    /// `authorization_pending` or `slow_down`.
    status: &'static str,
    /// With `slow_down`: the seconds to wait between polls from now on.
    #[serde(skip_serializing_if = "Option::is_none")]
    interval: Option<u64>,
}

/// A session's tokens.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Tokens {
    /// `Authorization: Bearer <access_token>`.
    access_token: String,
    /// For `POST /auth/refresh`.
    refresh_token: String,
    /// Seconds the access token lives.
    expires_in: u64,
    /// Who signed in (`POST /auth/device/token` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    user: Option<Value>,
}

/// `POST /auth/device/token` body.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct DevicePollBody {
    device_code: String,
}

fn user_json(u: &fal_store::User) -> Value {
    json!({"user_id": u.user_id.as_str(), "nickname": u.nickname, "full_name": u.full_name})
}

/// `POST /auth/device/token`: one poll. 202 while pending (with the interval
/// to use), 200 with tokens when done.
#[utoipa::path(
    post,
    path = "/auth/device/token",
    operation_id = "auth_device_poll",
    tag = "auth",
    request_body = DevicePollBody,
    responses(
        (status = 200, description = "Signed in: the session's tokens (`Cache-Control: no-store`)", body = Tokens),
        (status = 202, description = "Not yet: poll again after the interval", body = Pending),
        (status = 400, description = "A device code GitHub does not know (`unknown_device_code`)", body = ErrorBody),
        (status = 403, description = "Denied on GitHub (`access_denied`), or not allowed here", body = ErrorBody),
        (status = 404, description = "GitHub sign-in is not configured here", body = ErrorBody),
        (status = 410, description = "The code expired (`expired_token`)", body = ErrorBody),
        (status = 503, description = "GitHub cannot be reached", body = ErrorBody),
    )
)]
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
            Json(Pending {
                status: "authorization_pending",
                interval: None,
            }),
        )
            .into_response()),
        DevicePoll::SlowDown(interval) => Ok((
            StatusCode::ACCEPTED,
            Json(Pending {
                status: "slow_down",
                interval: Some(interval),
            }),
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
            Ok(no_store(Json(Tokens {
                access_token: issued.access.expose().to_owned(),
                refresh_token: issued.refresh.expose().to_owned(),
                expires_in: issued.expires_in,
                user: Some(user_json(&user)),
            })))
        }
    }
}

/// `POST /auth/refresh` body.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct RefreshBody {
    refresh_token: String,
}

/// `POST /auth/refresh`: rotates the tokens of a CLI session, after
/// checking with GitHub that the user is still allowed (allow-lists and org
/// membership, with the GitHub token kept sealed since sign-in). A user no
/// longer allowed gets 401 and the session ends; when GitHub cannot be
/// reached the answer is 503 and the session is kept, so a retry may work.
#[utoipa::path(
    post,
    path = "/auth/refresh",
    operation_id = "auth_refresh",
    tag = "auth",
    request_body = RefreshBody,
    responses(
        (status = 200, description = "A new token pair; the old refresh token stops working (`Cache-Control: no-store`)", body = Tokens),
        (status = 401, description = "An unknown or used refresh token, or a user no longer allowed (`access_withdrawn`)", body = ErrorBody),
        (status = 503, description = "GitHub cannot be reached (`Retry-After`; the session is kept)", body = ErrorBody),
    )
)]
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
    Ok(no_store(Json(Tokens {
        access_token: issued.access.expose().to_owned(),
        refresh_token: issued.refresh.expose().to_owned(),
        expires_in: issued.expires_in,
        user: None,
    })))
}

/// `POST /auth/logout`: ends the caller's session (bearer token), and the
/// one holding `refresh_token` in the body. With neither it is refused
/// (401): the dashboard's cookie is not a credential here (the dashboard
/// has its own logout form, with its CSRF token), and answering 204 to a
/// cookie would look like a logout while the session lived on.
#[utoipa::path(
    post,
    path = "/auth/logout",
    operation_id = "auth_logout",
    tag = "auth",
    request_body(content = Option<RefreshBody>, description = "Optional: the session's refresh token"),
    security(("session" = []), ()),
    responses(
        (status = 204, description = "The session ended (both its tokens stop working)"),
        (status = 401, description = "Neither a session's bearer token nor a refresh token", body = ErrorBody),
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    origin: Origin,
    caller: Result<Caller, ApiError>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // No body, or the session's refresh token; anything else is a
    // mistake to report, not to answer 204 to as if a session had ended.
    // Without credentials, a refused body is refused as they are.
    let refresh = if body.iter().all(u8::is_ascii_whitespace) {
        Ok(None)
    } else {
        // `null` is no token, as no body is.
        serde_json::from_slice::<Option<RefreshBody>>(&body).map_err(|e| {
            ApiError::Unprocessable(format!(
                "the body is {{\"refresh_token\": \"…\"}} or empty: {e}"
            ))
        })
    };
    let caller = match (caller, &refresh) {
        (Err(e), Ok(None) | Err(_)) => return Err(e),
        (caller, _) => caller.ok(),
    };
    let refresh = refresh?;
    match caller {
        None => {}
        Some(Caller(p)) => {
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
#[utoipa::path(
    get,
    path = "/auth/github/login",
    operation_id = "auth_web_login",
    tag = "auth",
    responses(
        (status = 303, description = "To GitHub's authorization page (sets the flow's cookie)"),
        (status = 404, description = "GitHub sign-in is not configured here", body = ErrorBody),
    )
)]
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
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /auth/github/callback`: checks `state`, exchanges the code with its
/// PKCE verifier, signs the user in, and sets a fresh session cookie.
#[utoipa::path(
    get,
    path = "/auth/github/callback",
    operation_id = "auth_web_callback",
    tag = "auth",
    params(CallbackQuery),
    responses(
        (status = 303, description = "Signed in: to the dashboard, with a session cookie"),
        (status = 400, description = "A state or cookie that does not match (`bad_oauth_state`)", body = ErrorBody),
        (status = 404, description = "GitHub sign-in is not configured here", body = ErrorBody),
    )
)]
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

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    status,
    device_start,
    device_poll,
    refresh,
    logout,
    web_login,
    web_callback
))]
pub(super) struct Doc;

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
