//! Authentication and the handles that authorise.
//!
//! [`Verifier`] turns an `Authorization` header into a [`Principal`]. It
//! keeps a bounded cache of key records (never secrets) and batches
//! `last_used_at` in memory, so a cached verification is one keyed hash and
//! no database work.
//!
//! Authorisation is by construction: key management is reachable only
//! through an [`Admin`] value, and the only way to get one is the extractor
//! below, which refuses any principal without ADMIN scope. [`AppState`]
//! keeps the key-management store in a private field, so a handler that
//! forgets to ask for [`Admin`] has no way to manage keys: it does not compile.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use fal_core::header::{AuthHeader, parse_authorization};
use fal_core::verify::verify;
use fal_core::{
    Clock, Credentials, HeaderError, KeyId, KeyRecord, KeySecret, Principal, RandomSource, Scope,
    SecretHasher, Timestamp, mint_key,
};
use fal_store::{
    AppAdmin, Cursor, KeyAdmin, KeyLookup, KeyPage, NewKey, StoreError, UserAdmin, Users,
};

use crate::gateway::{AppDirectory, RequestIds, UpstreamClient};

use crate::error::ApiError;

mod apps;
mod operator;
pub use operator::Operator;

/// A cached key record, when it was read, and its latest use.
struct Cached {
    /// The record as storage had it.
    record: KeyRecord,
    /// When it was read, to bound how long it is trusted.
    fetched_at: Timestamp,
    /// Latest successful use (ms), not yet written back. Kept here so the
    /// hot path records a use with one atomic store and no lock.
    last_used: AtomicI64,
    /// Whether this entry sits in the verifier's pending list; only the use
    /// that sets it takes the list's lock.
    dirty: AtomicBool,
}

impl Cached {
    fn new(record: KeyRecord, fetched_at: Timestamp) -> Cached {
        Cached {
            record,
            fetched_at,
            last_used: AtomicI64::new(i64::MIN),
            dirty: AtomicBool::new(false),
        }
    }
}

/// Uses pending write-back beyond which an early flush is asked for.
pub const PENDING_SOFT_LIMIT: usize = 10_000;

/// Verifies credentials against storage, through a bounded cache.
pub struct Verifier {
    /// HMAC keyed with the pepper.
    hasher: SecretHasher,
    /// Where records come from on a cache miss.
    lookup: Arc<dyn KeyLookup>,
    /// key id → record; bounded (CLOCK-Pro eviction), never holds secrets.
    cache: quick_cache::sync::Cache<KeyId, Arc<Cached>>,
    /// Now.
    clock: Arc<dyn Clock>,
    /// Records older than this are read again.
    max_staleness_ms: i64,
    /// Sessions from GitHub sign-in, for `Bearer` tokens.
    sessions: Option<Arc<crate::sessions::Sessions>>,
    /// Entries used since the last write-back of `last_used_at`.
    pending: Mutex<Vec<Arc<Cached>>>,
    /// Wakes the write-back task early when `pending` grows past
    /// [`PENDING_SOFT_LIMIT`], so memory stays bounded however many keys
    /// are used between two periodic flushes.
    flush_soon: tokio::sync::Notify,
}

/// Why a request is not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credentials.
    Missing,
    /// Unsupported scheme.
    UnsupportedScheme,
    /// Malformed `Key` header.
    Malformed,
    /// Unknown, wrong or revoked.
    Invalid,
    /// Storage is down and the key is not in cache.
    Unavailable,
    /// A session token that is unknown, expired or logged out.
    InvalidSession,
}

impl From<AuthFailure> for ApiError {
    fn from(f: AuthFailure) -> Self {
        match f {
            AuthFailure::Missing => ApiError::MissingCredentials,
            AuthFailure::UnsupportedScheme => ApiError::UnsupportedScheme,
            AuthFailure::Malformed => ApiError::MalformedKey,
            AuthFailure::Invalid => ApiError::InvalidCredentials,
            AuthFailure::Unavailable => ApiError::Unavailable,
            AuthFailure::InvalidSession => ApiError::Status {
                status: axum::http::StatusCode::UNAUTHORIZED,
                code: "invalid_session",
                detail: "This login has expired or was ended: run `fal auth login` again \
                         (or set FAL_KEY_ID and FAL_KEY_SECRET)"
                    .into(),
            },
        }
    }
}

impl Verifier {
    /// A verifier over `lookup` with a cache of `capacity` records.
    pub fn new(
        hasher: SecretHasher,
        lookup: Arc<dyn KeyLookup>,
        clock: Arc<dyn Clock>,
        capacity: u64,
        max_staleness: Duration,
    ) -> Verifier {
        Verifier {
            hasher,
            lookup,
            cache: quick_cache::sync::Cache::new(usize::try_from(capacity).unwrap_or(usize::MAX)),
            clock,
            max_staleness_ms: i64::try_from(max_staleness.as_millis()).unwrap_or(i64::MAX),
            sessions: None,
            pending: Mutex::new(Vec::new()),
            flush_soon: tokio::sync::Notify::new(),
        }
    }

    /// Also accepts session tokens (`Authorization: Bearer`).
    pub fn with_sessions(mut self, sessions: Arc<crate::sessions::Sessions>) -> Verifier {
        self.sessions = Some(sessions);
        self
    }

    /// Authenticates the dashboard's session cookie (only the dashboard
    /// calls this; the API and the gateway never read cookies).
    pub async fn authenticate_cookie(&self, token: &str) -> Result<Principal, AuthFailure> {
        match &self.sessions {
            Some(s) => s.authenticate_cookie(token).await,
            None => Err(AuthFailure::InvalidSession),
        }
    }

    /// The hasher, for minting keys.
    pub fn hasher(&self) -> &SecretHasher {
        &self.hasher
    }

    /// Authenticates an `Authorization` header value.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Principal, AuthFailure> {
        let value = header.ok_or(AuthFailure::Missing)?;
        match parse_authorization(value) {
            Ok(AuthHeader::Key(creds)) => self.verify(&creds).await,
            Ok(AuthHeader::Bearer(token)) => match &self.sessions {
                Some(s) => s.authenticate_bearer(token).await,
                None => Err(AuthFailure::InvalidSession),
            },
            Err(HeaderError::Missing) => Err(AuthFailure::Missing),
            Err(HeaderError::UnsupportedScheme) => Err(AuthFailure::UnsupportedScheme),
            Err(HeaderError::MalformedKey) => Err(AuthFailure::Malformed),
            // The id or secret cannot exist: refused before any lookup.
            Err(HeaderError::NoSuchKey) => Err(AuthFailure::Invalid),
        }
    }

    /// Verifies from cache only: `None` when the record is not cached or is
    /// older than the staleness bound. This is the hot path.
    pub fn verify_cached(&self, creds: &Credentials) -> Option<Result<Principal, AuthFailure>> {
        let cached = self.cache.get(&creds.key_id)?;
        let now = self.clock.now();
        if now.millis().saturating_sub(cached.fetched_at.millis()) > self.max_staleness_ms {
            return None;
        }
        Some(self.finish(creds, Some(&cached), now))
    }

    /// Verifies `creds`, reading storage on a cache miss.
    pub async fn verify(&self, creds: &Credentials) -> Result<Principal, AuthFailure> {
        if let Some(result) = self.verify_cached(creds) {
            return result;
        }
        let record = match self.lookup.key_record(&creds.key_id).await {
            Ok(r) => r,
            Err(StoreError::Unavailable(cause)) => {
                tracing::warn!(%cause, "key lookup failed: database unavailable");
                return Err(AuthFailure::Unavailable);
            }
            Err(e) => {
                tracing::error!(error = %e, "key lookup failed");
                return Err(AuthFailure::Unavailable);
            }
        };
        let now = self.clock.now();
        let cached = record.map(|r| {
            let entry = Arc::new(Cached::new(r, now));
            self.cache.insert(entry.record.key_id, entry.clone());
            entry
        });
        self.finish(creds, cached.as_ref(), now)
    }

    fn finish(
        &self,
        creds: &Credentials,
        cached: Option<&Arc<Cached>>,
        now: Timestamp,
    ) -> Result<Principal, AuthFailure> {
        let principal = verify(&self.hasher, creds, cached.map(|c| &c.record))
            .map_err(|_| AuthFailure::Invalid)?;
        if let Some(entry) = cached {
            self.note_use(entry, now);
        }
        Ok(principal)
    }

    /// Records a use: an atomic store, and the pending list's lock only for
    /// the first use since the last write-back.
    fn note_use(&self, entry: &Arc<Cached>, now: Timestamp) {
        if entry.last_used.load(Ordering::Relaxed) < now.millis() {
            entry.last_used.store(now.millis(), Ordering::Relaxed);
        }
        if !entry.dirty.load(Ordering::Relaxed) && !entry.dirty.swap(true, Ordering::AcqRel) {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.push(entry.clone());
            if pending.len() >= PENDING_SOFT_LIMIT {
                self.flush_soon.notify_one();
            }
        }
    }

    /// Completes when enough uses are pending that they should be written
    /// back before the next periodic flush.
    pub async fn flush_requested(&self) {
        self.flush_soon.notified().await;
    }

    /// Drops a cached record, so the next use reads storage again.
    pub fn invalidate(&self, key_id: &KeyId) {
        self.cache.remove(key_id);
    }

    /// Drops every cached record (after notifications may have been lost).
    pub fn invalidate_all(&self) {
        self.cache.clear();
    }

    /// How many records are cached (bounded by the configured capacity).
    pub fn cached_records(&self) -> usize {
        self.cache.len()
    }

    /// Writes pending `last_used_at` values in one batch.
    pub async fn flush_usage(&self) {
        let entries: Vec<Arc<Cached>> =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if entries.is_empty() {
            return;
        }
        // Clear the flag before reading the time, so a use racing with this
        // flush marks the entry again rather than being lost.
        let batch: Vec<(KeyId, Timestamp)> = entries
            .iter()
            .map(|e| {
                e.dirty.store(false, Ordering::Release);
                (
                    e.record.key_id,
                    Timestamp(e.last_used.load(Ordering::Acquire)),
                )
            })
            .collect();
        if let Err(e) = self.lookup.record_key_use(&batch).await {
            tracing::warn!(error = %e, keys = batch.len(), "could not record key use; will retry");
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            for entry in entries {
                if !entry.dirty.swap(true, Ordering::AcqRel) {
                    pending.push(entry);
                }
            }
        }
    }
}

/// Shared state of the application.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    /// Authenticates requests.
    verifier: Arc<Verifier>,
    /// Key management. Private: reachable only through [`Admin`].
    key_admin: Arc<dyn KeyAdmin>,
    /// App management. Private: reachable only through [`Admin`].
    app_admin: Arc<dyn AppAdmin>,
    /// User administration. Private: reachable only through [`Operator`].
    user_admin: Arc<dyn UserAdmin>,
    /// Who the operators are.
    operators: Arc<crate::operators::Operators>,
    /// Finds apps for the gateway.
    apps: Arc<AppDirectory>,
    /// Talks to upstreams.
    upstream: UpstreamClient,
    /// Makes request ids (shared by all workers, so ids stay unique).
    request_ids: Arc<RequestIds>,
    /// GitHub sign-in, when configured.
    github: Option<Arc<crate::github::Github>>,
    /// Sessions after GitHub sign-in.
    sessions: Arc<crate::sessions::Sessions>,
    /// Whether served over TLS (cookies get `Secure`).
    tls: bool,
    /// One-time links to newly created secrets (dashboard).
    flashes: Arc<crate::dashboard::Flashes>,
    /// Users, for `GET /users/current`.
    users: Arc<dyn Users>,
    /// Now.
    clock: Arc<dyn Clock>,
    /// Randomness for new keys.
    rng: Arc<dyn RandomSource>,
}

/// Everything [`AppState`] is assembled from.
pub struct StateParts {
    /// Authenticates requests.
    pub verifier: Arc<Verifier>,
    /// Key management (kept private inside the state).
    pub key_admin: Arc<dyn KeyAdmin>,
    /// App management (kept private inside the state).
    pub app_admin: Arc<dyn AppAdmin>,
    /// User administration (kept private inside the state).
    pub user_admin: Arc<dyn UserAdmin>,
    /// Who the operators are.
    pub operators: Arc<crate::operators::Operators>,
    /// Finds apps.
    pub apps: Arc<AppDirectory>,
    /// Talks to upstreams.
    pub upstream: UpstreamClient,
    /// Users.
    pub users: Arc<dyn Users>,
    /// Now.
    pub clock: Arc<dyn Clock>,
    /// Randomness.
    pub rng: Arc<dyn RandomSource>,
    /// GitHub sign-in, when configured.
    pub github: Option<Arc<crate::github::Github>>,
    /// Sessions.
    pub sessions: Arc<crate::sessions::Sessions>,
    /// Served over TLS.
    pub tls: bool,
}

impl AppState {
    /// Assembles the state.
    pub fn new(p: StateParts) -> Result<AppState, fal_core::random::RandomError> {
        let request_ids = Arc::new(RequestIds::new(p.rng.as_ref())?);
        Ok(AppState {
            inner: Arc::new(Shared {
                verifier: p.verifier,
                key_admin: p.key_admin,
                app_admin: p.app_admin,
                user_admin: p.user_admin,
                operators: p.operators,
                apps: p.apps,
                upstream: p.upstream,
                request_ids,
                users: p.users,
                clock: p.clock,
                rng: p.rng,
                github: p.github,
                sessions: p.sessions,
                tls: p.tls,
                flashes: Arc::default(),
            }),
        })
    }

    /// GitHub sign-in, when configured.
    pub fn github(&self) -> Option<&crate::github::Github> {
        self.inner.github.as_deref()
    }

    /// Sessions.
    pub fn sessions(&self) -> &crate::sessions::Sessions {
        &self.inner.sessions
    }

    /// Now.
    pub fn clock(&self) -> &dyn Clock {
        self.inner.clock.as_ref()
    }

    /// Randomness.
    pub fn rng(&self) -> &dyn RandomSource {
        self.inner.rng.as_ref()
    }

    /// Whether served over TLS.
    pub fn tls(&self) -> bool {
        self.inner.tls
    }

    /// One-time secret links.
    pub fn flashes(&self) -> &crate::dashboard::Flashes {
        &self.inner.flashes
    }

    /// The same state with its own upstream client, for a worker thread
    /// with its own runtime (connections to upstreams stay on that thread).
    pub fn for_worker(&self, upstream: UpstreamClient) -> AppState {
        let s = &self.inner;
        AppState {
            inner: Arc::new(Shared {
                verifier: s.verifier.clone(),
                key_admin: s.key_admin.clone(),
                app_admin: s.app_admin.clone(),
                user_admin: s.user_admin.clone(),
                operators: s.operators.clone(),
                apps: s.apps.clone(),
                upstream,
                request_ids: s.request_ids.clone(),
                users: s.users.clone(),
                clock: s.clock.clone(),
                rng: s.rng.clone(),
                github: s.github.clone(),
                sessions: s.sessions.clone(),
                tls: s.tls,
                flashes: s.flashes.clone(),
            }),
        }
    }

    /// The app directory.
    pub fn apps(&self) -> &Arc<AppDirectory> {
        &self.inner.apps
    }

    /// The upstream client.
    pub fn upstream(&self) -> &UpstreamClient {
        &self.inner.upstream
    }

    /// The request-id generator.
    pub fn request_ids(&self) -> &RequestIds {
        &self.inner.request_ids
    }

    /// The verifier.
    pub fn verifier(&self) -> &Arc<Verifier> {
        &self.inner.verifier
    }

    /// The user store.
    pub fn users(&self) -> &Arc<dyn Users> {
        &self.inner.users
    }

    /// Who the operators are.
    pub fn operators(&self) -> &crate::operators::Operators {
        &self.inner.operators
    }
}

/// Any authenticated caller, of either scope.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

async fn principal_of(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
    let header = match parts.headers.get(AUTHORIZATION) {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| ApiError::MalformedKey)?),
    };
    // Only explicit credentials: the dashboard's session cookie counts
    // nowhere here (not even for GET), since a browser attaches it to any
    // request a link or another site makes, and /run or /auth/verify would
    // then act as the signed-in user. Only /dashboard pages read it.
    let principal = state.inner.verifier.authenticate(header).await?;
    Ok(principal)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(c) = parts.extensions.get::<Caller>() {
            return Ok(c.clone());
        }
        let caller = Caller(principal_of(parts, state).await?);
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

/// An ADMIN principal, and the only handle to key management. Every
/// operation is bound to the principal's own user.
pub struct Admin {
    /// Who is acting.
    principal: Principal,
    /// The state, whose private stores this handle may use.
    state: AppState,
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Caller(principal) = Caller::from_request_parts(parts, state).await?;
        Admin::for_principal(principal, state)
    }
}

impl Admin {
    /// The one place an `Admin` is made: refuses any principal without
    /// ADMIN scope (403 naming both scopes).
    fn for_principal(principal: Principal, state: &AppState) -> Result<Admin, ApiError> {
        if principal.scope != Scope::Admin {
            return Err(ApiError::InsufficientScope {
                needed: Scope::Admin,
                has: principal.scope,
            });
        }
        Ok(Admin {
            principal,
            state: state.clone(),
        })
    }
}

/// A key just created: the only value that ever holds its secret.
pub struct CreatedKey {
    /// What was stored.
    pub key: NewKey,
    /// The secret, to show once.
    pub secret: KeySecret,
}

impl AppState {
    /// The key-management handle for a dashboard form: only for a session
    /// principal with ADMIN scope, and only with proof that the form carried
    /// its session's CSRF token.
    pub fn dashboard_admin(
        &self,
        principal: Principal,
        _csrf: &crate::sessions::CsrfChecked,
    ) -> Result<Admin, ApiError> {
        Admin::for_principal(principal, self)
    }
}

impl Admin {
    /// Who is acting.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Creates a key for the acting user.
    pub async fn create_key(&self, scope: Scope, alias: String) -> Result<CreatedKey, ApiError> {
        let s = &self.state.inner;
        let (record, secret) = mint_key(
            s.rng.as_ref(),
            s.verifier.hasher(),
            &self.principal.user_id,
            scope,
        )?;
        let key = NewKey {
            record,
            alias,
            created_at: s.clock.now(),
        };
        s.key_admin.create_key(&key).await?;
        tracing::info!(key_id = %key.record.key_id, scope = %scope, user_id = %self.principal.user_id, "key created");
        Ok(CreatedKey { key, secret })
    }

    /// A page of the acting user's keys.
    pub async fn list_keys(&self, limit: u32, after: Option<&Cursor>) -> Result<KeyPage, ApiError> {
        Ok(self
            .state
            .inner
            .key_admin
            .list_keys(&self.principal.user_id, limit, after)
            .await?)
    }

    /// Revokes one of the acting user's keys; `false` when the user has no
    /// such key. Takes effect on this server at once.
    pub async fn revoke_key(&self, key_id: &KeyId) -> Result<bool, ApiError> {
        let s = &self.state.inner;
        let found = s
            .key_admin
            .revoke_key(&self.principal.user_id, key_id, s.clock.now())
            .await?;
        if found {
            s.verifier.invalidate(key_id);
            tracing::info!(key_id = %key_id, user_id = %self.principal.user_id, "key revoked");
        }
        Ok(found)
    }
}

impl Admin {
    /// The current time, for records this handle creates.
    pub fn now(&self) -> Timestamp {
        self.state.inner.clock.now()
    }
}
