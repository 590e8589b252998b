//! The server's own sessions after a GitHub sign-in: a short-lived access
//! token and a rotating refresh token for the CLI, one token in an HttpOnly
//! cookie for the dashboard. Only keyed hashes are stored; logout revokes
//! the session server-side, so copies of its tokens stop working.

use std::sync::Arc;
use std::time::Duration;

use fal_core::token::{ACCESS_PREFIX, REFRESH_PREFIX, SessionToken, WEB_PREFIX};
use fal_core::{Clock, KeyId, Principal, RandomSource, Scope, SecretHasher, Timestamp, UserId};
use fal_store::{SessionKind, SessionRecord, SessionStore, StoreError};
use secrecy::SecretString;

use crate::auth::AuthFailure;
use crate::error::ApiError;

/// Session lifetimes.
#[derive(Debug, Clone, Copy)]
pub struct SessionTtl {
    /// Access tokens (CLI).
    pub access: Duration,
    /// Refresh tokens (CLI).
    pub refresh: Duration,
    /// Dashboard cookies.
    pub web: Duration,
}

impl Default for SessionTtl {
    fn default() -> SessionTtl {
        SessionTtl {
            access: Duration::from_secs(15 * 60),
            refresh: Duration::from_secs(30 * 24 * 3600),
            web: Duration::from_secs(12 * 3600),
        }
    }
}

/// Tokens handed to the CLI.
pub struct IssuedTokens {
    /// For `Authorization: Bearer`.
    pub access: SessionToken,
    /// For `POST /auth/refresh`.
    pub refresh: SessionToken,
    /// Seconds the access token lives.
    pub expires_in: u64,
    /// The session's id (for the audit log; not a credential).
    pub session_id: String,
}

/// Compares two secret strings in constant time (for equal lengths; the
/// length itself is not secret).
pub fn same_secret(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Proof that a dashboard form carried the CSRF token of its session. Only
/// [`Sessions::check_csrf`] makes one, and the dashboard's key management
/// needs one, so a form handler that skips the check does not compile.
pub struct CsrfChecked(());

/// Issues, checks, rotates and ends sessions.
pub struct Sessions {
    /// Storage.
    store: Arc<dyn SessionStore>,
    /// Keyed hash (the pepper).
    hasher: SecretHasher,
    /// Now.
    clock: Arc<dyn Clock>,
    /// Randomness for tokens.
    rng: Arc<dyn RandomSource>,
    /// Lifetimes.
    ttl: SessionTtl,
    /// Seals the GitHub tokens kept for re-checks at refresh.
    sealer: crate::sealed::Sealer,
}

/// A refresh token that names a live session, before rotation: the caller
/// re-checks the user's access (GitHub) and then calls
/// [`Sessions::finish_refresh`].
pub struct RefreshGrant {
    /// The session as stored.
    pub record: SessionRecord,
    /// The GitHub token kept at sign-in, opened; `None` for a session made
    /// before tokens were kept, or whose sealed value did not open.
    pub github_token: Option<SecretString>,
    /// Hash of the refresh token presented.
    old_hash: String,
}

fn invalid_refresh() -> ApiError {
    ApiError::Status {
        status: axum::http::StatusCode::UNAUTHORIZED,
        code: "invalid_refresh_token",
        detail: "This login has expired or was ended: run `fal auth login` again".into(),
    }
}

/// Label of the key that seals GitHub tokens.
const GITHUB_TOKEN_SEAL: &str = "fal session github token v1";

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Sessions {
    /// Sessions over `store`.
    pub fn new(
        store: Arc<dyn SessionStore>,
        hasher: SecretHasher,
        clock: Arc<dyn Clock>,
        rng: Arc<dyn RandomSource>,
        ttl: SessionTtl,
    ) -> Sessions {
        Sessions {
            sealer: crate::sealed::Sealer::new(&hasher, GITHUB_TOKEN_SEAL),
            store,
            hasher,
            clock,
            rng,
            ttl,
        }
    }

    fn hash(&self, t: &SessionToken) -> String {
        self.hasher.hash_token(t).to_hex()
    }

    fn session_id(&self) -> Result<String, ApiError> {
        Ok(SessionToken::generate("s_", self.rng.as_ref())?.expose()[2..34].to_owned())
    }

    /// A CLI session for `user_id`, keeping the GitHub token it was signed
    /// in with (sealed) so each refresh can re-check the user's access.
    pub async fn issue_cli(
        &self,
        user_id: &UserId,
        github_token: Option<&SecretString>,
    ) -> Result<IssuedTokens, ApiError> {
        let now = self.clock.now();
        let access = SessionToken::generate(ACCESS_PREFIX, self.rng.as_ref())?;
        let refresh = SessionToken::generate(REFRESH_PREFIX, self.rng.as_ref())?;
        let session_id = self.session_id()?;
        let github_token = match github_token {
            Some(t) => Some(
                self.sealer
                    .seal(t, &session_id, self.rng.as_ref())
                    .map_err(|_| ApiError::Internal("could not seal the GitHub token".into()))?,
            ),
            None => None,
        };
        self.store
            .create_session(&SessionRecord {
                session_id: session_id.clone(),
                user_id: user_id.clone(),
                kind: SessionKind::Cli,
                access_hash: self.hash(&access),
                refresh_hash: Some(self.hash(&refresh)),
                access_expires_at: now.plus_millis(ms(self.ttl.access)),
                refresh_expires_at: Some(now.plus_millis(ms(self.ttl.refresh))),
                created_at: now,
                revoked: false,
                key_id: None,
                github_token,
            })
            .await?;
        Ok(IssuedTokens {
            access,
            refresh,
            expires_in: self.ttl.access.as_secs(),
            session_id,
        })
    }

    /// A dashboard session; returns the cookie's token, its lifetime and
    /// the session's id. `key_id` is the key it was opened with, if any:
    /// revoking or rolling that key ends the session; and it ends by
    /// `key_expires_at`, when the key expires, if that comes before its own
    /// end.
    pub async fn issue_web(
        &self,
        user_id: &UserId,
        key_id: Option<KeyId>,
        key_expires_at: Option<Timestamp>,
    ) -> Result<(SessionToken, Duration, String), ApiError> {
        let now = self.clock.now();
        let own_end = now.plus_millis(ms(self.ttl.web));
        let ends = key_expires_at.map_or(own_end, |t| t.min(own_end));
        let lifetime =
            Duration::from_millis(u64::try_from(ends.millis() - now.millis()).unwrap_or(0));
        let access = SessionToken::generate(WEB_PREFIX, self.rng.as_ref())?;
        let session_id = self.session_id()?;
        self.store
            .create_session(&SessionRecord {
                session_id: session_id.clone(),
                user_id: user_id.clone(),
                kind: SessionKind::Web,
                access_hash: self.hash(&access),
                refresh_hash: None,
                access_expires_at: ends,
                refresh_expires_at: None,
                created_at: now,
                revoked: false,
                key_id,
                github_token: None,
            })
            .await?;
        Ok((access, lifetime, session_id))
    }

    /// Who a CLI access token, sent as `Authorization: Bearer`, belongs
    /// to. A dashboard token is refused here (by its prefix, and by its
    /// session's kind). A session may do what an ADMIN key may do, for its
    /// own user.
    pub async fn authenticate_bearer(&self, token: &str) -> Result<Principal, AuthFailure> {
        self.authenticate(ACCESS_PREFIX, SessionKind::Cli, token)
            .await
    }

    /// Who the dashboard's session cookie belongs to. A CLI token is
    /// refused here, as a dashboard token is refused as a bearer token.
    pub async fn authenticate_cookie(&self, token: &str) -> Result<Principal, AuthFailure> {
        self.authenticate(WEB_PREFIX, SessionKind::Web, token).await
    }

    async fn authenticate(
        &self,
        prefix: &str,
        kind: SessionKind,
        token: &str,
    ) -> Result<Principal, AuthFailure> {
        let token = SessionToken::parse(prefix, token).ok_or(AuthFailure::InvalidSession)?;
        let record = match self.store.session_by_access(&self.hash(&token)).await {
            Ok(r) => r,
            Err(StoreError::Unavailable(_)) => return Err(AuthFailure::Unavailable),
            Err(e) => {
                tracing::error!(error = %e, "session lookup failed");
                return Err(AuthFailure::Unavailable);
            }
        };
        match record {
            Some(r) if r.kind == kind && !r.revoked && r.access_expires_at > self.clock.now() => {
                Ok(Principal {
                    user_id: r.user_id,
                    key_id: None,
                    session_id: Some(r.session_id),
                    scope: Scope::Admin,
                    quota: None,
                    apps: None,
                })
            }
            _ => Err(AuthFailure::InvalidSession),
        }
    }

    /// Whether the CLI session `session_id` of `user_id` is still live
    /// (not ended, and its refresh token not expired): checked for each
    /// call with a short-lived token the session minted.
    pub async fn check_live(&self, session_id: &str, user_id: &UserId) -> Result<(), AuthFailure> {
        let record = match self.store.session_by_id(session_id).await {
            Ok(r) => r,
            Err(StoreError::Unavailable(_)) => return Err(AuthFailure::Unavailable),
            Err(e) => {
                tracing::error!(error = %e, "session lookup failed");
                return Err(AuthFailure::Unavailable);
            }
        };
        let now = self.clock.now();
        match record {
            Some(r)
                if r.kind == SessionKind::Cli
                    && !r.revoked
                    && &r.user_id == user_id
                    && r.refresh_expires_at.is_some_and(|t| t > now) =>
            {
                Ok(())
            }
            _ => Err(AuthFailure::InvalidSession),
        }
    }

    /// First half of a refresh: the live CLI session this refresh token
    /// names. A refresh token that was already spent ends its whole session
    /// (someone holds a copy: OAuth's reuse detection), and is refused.
    pub async fn begin_refresh(&self, refresh: &str) -> Result<RefreshGrant, ApiError> {
        let old = SessionToken::parse(REFRESH_PREFIX, refresh).ok_or_else(invalid_refresh)?;
        let old_hash = self.hash(&old);
        let Some(record) = self.store.session_by_refresh(&old_hash).await? else {
            self.end_if_spent(&old_hash).await?;
            return Err(invalid_refresh());
        };
        let live = !record.revoked
            && record.kind == SessionKind::Cli
            && record
                .refresh_expires_at
                .is_some_and(|t| t > self.clock.now());
        if !live {
            return Err(invalid_refresh());
        }
        let github_token = record.github_token.as_deref().and_then(|sealed| {
            self.sealer
                .open(sealed, &record.session_id)
                .inspect_err(|_| {
                    tracing::warn!(session_id = %record.session_id, "a session's GitHub token did not open")
                })
                .ok()
        });
        Ok(RefreshGrant {
            record,
            github_token,
            old_hash,
        })
    }

    /// Second half of a refresh: rotates both tokens. The refresh token
    /// works once; a concurrent second use is treated as reuse.
    pub async fn finish_refresh(&self, grant: RefreshGrant) -> Result<IssuedTokens, ApiError> {
        let now = self.clock.now();
        let access = SessionToken::generate(ACCESS_PREFIX, self.rng.as_ref())?;
        let new_refresh = SessionToken::generate(REFRESH_PREFIX, self.rng.as_ref())?;
        let rotated = self
            .store
            .rotate_session(
                &grant.old_hash,
                &self.hash(&access),
                &self.hash(&new_refresh),
                now.plus_millis(ms(self.ttl.access)),
                now,
            )
            .await?;
        if !rotated {
            self.end_if_spent(&grant.old_hash).await?;
            return Err(invalid_refresh());
        }
        Ok(IssuedTokens {
            access,
            refresh: new_refresh,
            expires_in: self.ttl.access.as_secs(),
            session_id: grant.record.session_id,
        })
    }

    /// Ends the session whose spent refresh token hashes to `hash`, if any.
    async fn end_if_spent(&self, hash: &str) -> Result<(), ApiError> {
        if let Some(session_id) = self.store.session_of_spent_refresh(hash).await? {
            tracing::warn!(session_id = %session_id, "a spent refresh token was used again; the session is ended");
            self.revoke(&session_id).await?;
        }
        Ok(())
    }

    /// Ends a session.
    pub async fn revoke(&self, session_id: &str) -> Result<(), ApiError> {
        Ok(self
            .store
            .revoke_session(session_id, self.clock.now())
            .await?)
    }

    /// Ends the session holding this refresh token, if any; returns it
    /// when it was live.
    pub async fn revoke_by_refresh(
        &self,
        refresh: &str,
    ) -> Result<Option<SessionRecord>, ApiError> {
        if let Some(t) = SessionToken::parse(REFRESH_PREFIX, refresh)
            && let Some(r) = self.store.session_by_refresh(&self.hash(&t)).await?
        {
            self.revoke(&r.session_id).await?;
            return Ok((!r.revoked).then_some(r));
        }
        Ok(None)
    }

    /// The CSRF token of the session whose token is `session_token`.
    pub fn csrf_token(&self, session_token: &str) -> String {
        self.hasher
            .derive_hex("fal dashboard csrf v1", session_token)
    }

    /// Checks a form's CSRF token against its session, in constant time.
    pub fn check_csrf(&self, session_token: &str, given: &str) -> Option<CsrfChecked> {
        same_secret(&self.csrf_token(session_token), given).then_some(CsrfChecked(()))
    }

    /// Now (for cookies' expiry).
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}
