//! What a handler can ask for: [`Caller`], any authenticated principal,
//! and [`Admin`], an ADMIN one (the only way to key and app management;
//! see [`crate::auth::admin`]). Both read only the `Authorization` header,
//! under failed-auth throttling by [`ClientIp`].

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use fal_core::Principal;

use crate::audit::Origin;
use crate::auth::{Admin, AuthFailure};
use crate::error::ApiError;
use crate::quota::QuotaSlot;
use crate::state::AppState;
use crate::throttle::X_FORWARDED_FOR;

/// The client's address, as failed-auth throttling counts it: the TCP
/// peer, or behind a trusted proxy the address it forwarded for (see
/// [`crate::throttle::TrustedProxies::client`]). `None` for a request that
/// did not come over a connection the server accepted (the router called
/// in-process).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl ClientIp {
    /// The client of the request with these parts.
    pub fn of(parts: &Parts, state: &AppState) -> ClientIp {
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
            return ClientIp(None);
        };
        let forwarded = parts.headers.get_all(X_FORWARDED_FOR);
        let forwarded = forwarded.iter().map(|v| v.as_bytes());
        ClientIp(Some(state.throttle().client(peer.ip(), forwarded)))
    }
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, std::convert::Infallible> {
        Ok(ClientIp::of(parts, state))
    }
}

impl Origin {
    /// Where the request with these parts came from: its client's address
    /// as [`ClientIp`] finds it, and its user agent, cut short.
    pub fn of(parts: &Parts, state: &AppState) -> Origin {
        Origin::from_headers(ClientIp::of(parts, state).0, &parts.headers)
    }

    /// The origin of a request from `client` with these headers.
    pub fn from_headers(client: Option<IpAddr>, headers: &axum::http::HeaderMap) -> Origin {
        let agent = headers.get(axum::http::header::USER_AGENT);
        Origin {
            source: client,
            user_agent: agent
                .and_then(|v| v.to_str().ok())
                .and_then(fal_core::UserAgent::new),
        }
    }
}

impl FromRequestParts<AppState> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, std::convert::Infallible> {
        Ok(Origin::of(parts, state))
    }
}

/// Any authenticated caller, of either scope (never a short-lived app
/// token's: those only call models, see [`ModelCaller`]).
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

/// A model call's caller: any authenticated principal, or a short-lived
/// app token's, sent as `Authorization: Bearer <token>` or, without an
/// `Authorization` header, as `?fal_jwt_token=<token>`. A token's caller
/// may call only its apps: the handler checks [`Principal::may_call`].
#[derive(Debug, Clone)]
pub struct ModelCaller(pub Principal);

/// The query parameter fal's clients put a short-lived token in.
pub const TOKEN_QUERY: &str = "fal_jwt_token";

/// The value of `?fal_jwt_token=` in `query`, if any (the first).
pub fn query_token(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix(TOKEN_QUERY)?.strip_prefix('='))
}

/// `query` without its `fal_jwt_token` pairs (an upstream never sees the
/// token); as it came when it has none. `None` when nothing is left.
pub fn query_without_token(query: Option<&str>) -> Option<std::borrow::Cow<'_, str>> {
    let query = query?;
    let is_token = |pair: &&str| pair.split('=').next() == Some(TOKEN_QUERY);
    if !query.split('&').any(|pair| is_token(&pair)) {
        return Some(query.into());
    }
    let kept: Vec<&str> = query.split('&').filter(|p| !is_token(p)).collect();
    let kept = kept.join("&");
    (!kept.is_empty()).then_some(kept.into())
}

async fn principal_of(
    parts: &Parts,
    state: &AppState,
    model_call: bool,
) -> Result<Principal, ApiError> {
    // A blocked client is refused before anything is parsed or hashed.
    let ClientIp(client) = ClientIp::of(parts, state);
    state.refuse_if_blocked(client).await?;
    let header = match parts.headers.get(AUTHORIZATION) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| state.note_failure(client, AuthFailure::Malformed))?,
        ),
    };
    // Only explicit credentials: the dashboard's session cookie counts
    // nowhere here (not even for GET), since a browser attaches it to any
    // request a link or another site makes, and /run or /auth/verify would
    // then act as the signed-in user. Only /dashboard pages read it.
    let verifier = state.verifier();
    let found = if model_call {
        let token = query_token(parts.uri.query());
        verifier.authenticate_model(header, token).await
    } else {
        verifier.authenticate(header).await
    };
    if let Ok(p) = &found {
        crate::request_log::note_key(p.key_id);
        crate::metrics::note_scope(p.scope);
    }
    found.map_err(|f| {
        if matches!(f, AuthFailure::KeyExpired(_)) {
            state.note_expired_use(header, Origin::from_headers(client, &parts.headers));
        }
        state.note_failure(client, f)
    })
}

impl FromRequestParts<AppState> for ModelCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = principal_of(parts, state, true).await?;
        if let (Some(quota), Some(slot)) = (principal.quota, parts.extensions.get::<QuotaSlot>()) {
            slot.fill(quota);
        }
        tracing::debug!(
            user_id = %principal.user_id,
            key_id = ?principal.key_id.map(|k| k.to_string()),
            scope = %principal.scope,
            app_token = principal.is_app_token(),
            "authenticated"
        );
        Ok(ModelCaller(principal))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(c) = parts.extensions.get::<Caller>() {
            return Ok(c.clone());
        }
        let caller = Caller(principal_of(parts, state, false).await?);
        if let (Some(quota), Some(slot)) = (caller.0.quota, parts.extensions.get::<QuotaSlot>()) {
            slot.fill(quota);
        }
        tracing::debug!(
            user_id = %caller.0.user_id,
            key_id = ?caller.0.key_id.map(|k| k.to_string()),
            scope = %caller.0.scope,
            "authenticated"
        );
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Caller(principal) = Caller::from_request_parts(parts, state).await?;
        let admin = Admin::for_principal(principal, state.admin_stores())?;
        Ok(admin.with_origin(Origin::of(parts, state)))
    }
}

impl AppState {
    /// The key-management handle for a dashboard form: only for a session
    /// principal with ADMIN scope, and only with proof that the form carried
    /// its session's CSRF token.
    /// `origin` is where the form came from, for the audit log.
    pub fn dashboard_admin(
        &self,
        principal: Principal,
        csrf: &crate::auth::sessions::CsrfChecked,
        origin: Origin,
    ) -> Result<Admin, ApiError> {
        Ok(Admin::for_dashboard(principal, csrf, self.admin_stores())?.with_origin(origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_read_from_the_query_and_taken_out_of_it() {
        assert_eq!(query_token(Some("a=1&fal_jwt_token=x.y.z")), Some("x.y.z"));
        assert_eq!(query_token(Some("fal_jwt_tokens=x")), None);
        assert_eq!(query_token(None), None);
        let strip = |q| query_without_token(q).map(|c| c.into_owned());
        assert_eq!(
            strip(Some("a=1&fal_jwt_token=t&b=2")).as_deref(),
            Some("a=1&b=2")
        );
        assert_eq!(strip(Some("fal_jwt_token=t")), None);
        // Without a token, the query goes on exactly as it came.
        assert_eq!(strip(Some("")).as_deref(), Some(""));
        assert_eq!(strip(Some("a&&b=")).as_deref(), Some("a&&b="));
    }
}
