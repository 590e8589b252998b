//! Short-lived app tokens (fal's `POST /tokens/`): minted for a key's or a
//! session's caller, checked without storage by any server that shares
//! the pepper (the signing key derives from it), and refused once what
//! minted them is revoked or expires: the key through the verifier's cache (within
//! its staleness bound), the session as a session is checked.

use fal_core::app_token::looks_like_jwt;
use fal_core::header::{AuthHeader, parse_authorization};
use fal_core::random::RandomError;
use fal_core::usage::Outcome;
use fal_core::{
    AllowedApps, AppToken, AppTokenClaims, AppTokenError, Principal, RandomSource, Refusal,
};

use super::Verifier;
use crate::auth::AuthFailure;

/// The longest a token may live, in seconds.
pub const MAX_TOKEN_SECONDS: i64 = 3_600;

/// How long a token lives when its caller does not say (fal's clients
/// ask for this).
pub const DEFAULT_TOKEN_SECONDS: i64 = 120;

impl Verifier {
    /// A token for `principal` (a key's or a session's caller, never a
    /// token's) that may call `apps` for `seconds` (at most
    /// [`MAX_TOKEN_SECONDS`]). `None` inside: `principal` has neither a
    /// key nor a session to tie the token to.
    pub fn mint_token(
        &self,
        principal: &Principal,
        apps: AllowedApps,
        seconds: i64,
        rng: &dyn RandomSource,
    ) -> Result<Option<AppToken>, RandomError> {
        if principal.is_app_token() || principal.key_id.is_none() == principal.session_id.is_none()
        {
            return Ok(None);
        }
        let mut id = [0u8; 16];
        rng.fill(&mut id)?;
        let issued_at = self.clock.now().millis().div_euclid(1000);
        let expires_at = issued_at.saturating_add(seconds.clamp(1, MAX_TOKEN_SECONDS));
        let claims = AppTokenClaims {
            user_id: principal.user_id.clone(),
            key_id: principal.key_id,
            session_id: principal.session_id.clone(),
            scope: principal.scope,
            apps,
            issued_at,
            expires_at,
            token_id: hex::encode(id),
        };
        Ok(Some(self.token_key.sign(&claims)))
    }

    /// Authenticates a model call: its `Authorization` header, which may
    /// carry a short-lived token as `Bearer`, or without one, a token in
    /// the query (`?fal_jwt_token=`). A token's caller is limited to its
    /// apps ([`Principal::may_call`]), which the caller of this checks.
    pub async fn authenticate_model(
        &self,
        header: Option<&str>,
        query_token: Option<&str>,
    ) -> Result<Principal, AuthFailure> {
        match (header, query_token) {
            (Some(value), _) => match parse_authorization(value) {
                Ok(AuthHeader::Bearer(token)) if looks_like_jwt(token) => {
                    self.authenticate_token(token).await
                }
                _ => self.authenticate(Some(value)).await,
            },
            (None, Some(token)) => self.authenticate_token(token).await,
            (None, None) => Err(AuthFailure::Missing),
        }
    }

    /// Who a token speaks for, if it is ours, unexpired, and what minted
    /// it is still good.
    async fn authenticate_token(&self, token: &str) -> Result<Principal, AuthFailure> {
        let claims = self
            .token_key
            .open(token, self.clock.now())
            .map_err(|e| match e {
                AppTokenError::Invalid => AuthFailure::Invalid,
                AppTokenError::Expired => AuthFailure::TokenExpired,
            })?;
        let mut principal = Principal {
            user_id: claims.user_id,
            key_id: claims.key_id,
            session_id: claims.session_id,
            scope: claims.scope,
            quota: None,
            apps: Some(claims.apps),
        };
        if let Some(key_id) = principal.key_id {
            let now = self.clock.now();
            let entry = match self.fresh(&key_id, now) {
                Some(entry) => Some(entry),
                None => self.read(&key_id).await?,
            };
            let entry = entry.ok_or(AuthFailure::Invalid)?;
            if entry.record.user_id != principal.user_id {
                return Err(AuthFailure::Invalid);
            }
            // The token proves its minter held the secret: it may learn
            // why the key stopped working.
            if let Some(why) = entry.record.refusal(now) {
                self.count(key_id, now, Outcome::Refused(Refusal::of(why)));
                return Err(why.into());
            }
            self.charge(&entry, &mut principal, now)?;
        } else if let Some(session_id) = &principal.session_id {
            let sessions = self.sessions.as_ref().ok_or(AuthFailure::InvalidSession)?;
            sessions.check_live(session_id, &principal.user_id).await?;
        }
        tracing::debug!(token_id = %claims.token_id, "app token accepted");
        Ok(principal)
    }
}
