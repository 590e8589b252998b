//! The audit log: who did what to a user's keys, apps and sessions, when
//! and from where. [`AuditLog`] writes events ([`fal_core::AuditEvent`])
//! through [`fal_store::AuditStore`] and prunes them after retention.
//!
//! What is recorded: management actions only (keys generated, rolled,
//! revoked; apps added and removed; sign-ins, refused sign-ins and
//! sign-outs), never a model call, so the gateway's path does no audit
//! work. An event names its actor by ids (user, key, session), its client
//! by address and user agent; never a secret, token, cookie or hash.
//!
//! Failure is loud: an action writes its event in the same request, after
//! the action, and a failed write is logged and answered as an error (503
//! when the database is down), so an action never reports success without
//! its event. The action itself has happened then (a key generated whose
//! event could not be written exists, its secret never shown); the client
//! sees the error and may retry or revoke.
//!
//! Imports only the error type; the state, `auth` and the handlers import
//! it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use fal_core::{
    AuditActor, AuditEvent, AuditKind, Clock, KeyId, Principal, Timestamp, UserAgent, UserId,
};
use fal_store::{AuditCursor, AuditFilter, AuditPage, AuditStore};

use crate::error::ApiError;

/// Where a request came from, as the audit log keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The client's address: the TCP peer, or behind a trusted proxy the
    /// address it forwarded for (as failed-auth throttling counts it).
    pub source: Option<IpAddr>,
    /// Its `User-Agent`, cut short.
    pub user_agent: Option<UserAgent>,
}

/// Writes, reads and prunes the audit log.
pub struct AuditLog {
    /// Storage.
    store: Arc<dyn AuditStore>,
    /// Now.
    clock: Arc<dyn Clock>,
    /// How long events are kept.
    retention: Duration,
    /// When each key's last `key.expired_on_use` was recorded (ms): at
    /// most one an hour per key, however often a client retries it.
    expired_seen: std::sync::Mutex<std::collections::HashMap<KeyId, i64>>,
}

/// At most one `key.expired_on_use` event per key in this long (ms).
const EXPIRED_USE_EVERY_MS: i64 = 3_600_000;

impl AuditLog {
    /// The log over `store`, keeping events for `retention`.
    pub fn new(store: Arc<dyn AuditStore>, clock: Arc<dyn Clock>, retention: Duration) -> AuditLog {
        AuditLog {
            store,
            clock,
            retention,
            expired_seen: Default::default(),
        }
    }

    /// Whether a use of expired `key_id` now is the first in an hour (and
    /// so gets an event); notes it.
    pub fn first_expired_use(&self, key_id: KeyId) -> bool {
        let now = self.clock.now().millis();
        let mut seen = self.expired_seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() > 100_000 {
            seen.retain(|_, at| now - *at < EXPIRED_USE_EVERY_MS);
        }
        match seen.get(&key_id) {
            Some(at) if now - *at < EXPIRED_USE_EVERY_MS => false,
            _ => {
                seen.insert(key_id, now);
                true
            }
        }
    }

    /// An event of `kind` now, in `owner`'s log, from `origin`.
    pub fn event(&self, kind: AuditKind, owner: Option<&UserId>, origin: &Origin) -> AuditEvent {
        let mut e = AuditEvent::new(kind, self.clock.now(), owner.cloned());
        e.source = origin.source;
        e.user_agent = origin.user_agent.clone();
        e
    }

    /// An event of `kind` done by `principal` (in its user's log).
    pub fn by(&self, kind: AuditKind, principal: &Principal, origin: &Origin) -> AuditEvent {
        let mut e = self.event(kind, Some(&principal.user_id), origin);
        e.actor = actor(principal);
        e
    }

    /// Writes `event`. A failure is logged and returned (see the module's
    /// documentation).
    pub async fn record(&self, event: AuditEvent) -> Result<(), ApiError> {
        match self.store.append_audit(&event).await {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::error!(error = %e, kind = %event.kind, "could not write an audit event");
                Err(e.into())
            }
        }
    }

    /// Records that `principal` rolled its user's key `key_id` (a new
    /// secret replaced the old one).
    pub async fn key_rolled(
        &self,
        principal: &Principal,
        key_id: KeyId,
        origin: &Origin,
    ) -> Result<(), ApiError> {
        let mut e = self.by(AuditKind::KeyRolled, principal, origin);
        e.key_id = Some(key_id);
        self.record(e).await
    }

    /// Records that `owner`'s key `key_id`, past its expiry, was presented
    /// (and refused) by a client at `origin`. No actor: the caller is not
    /// authenticated.
    pub async fn key_expired_on_use(
        &self,
        owner: &UserId,
        key_id: KeyId,
        origin: &Origin,
    ) -> Result<(), ApiError> {
        let mut e = self.event(AuditKind::KeyExpiredOnUse, Some(owner), origin);
        e.key_id = Some(key_id);
        self.record(e).await
    }

    /// Records that `owner`'s key `key_id` was revoked because it was
    /// reported leaked; `reporter` says by whom (e.g. `github`) and `url`,
    /// when given, where it was found.
    pub async fn key_leaked_revoked(
        &self,
        owner: &UserId,
        key_id: KeyId,
        reporter: &str,
        url: Option<&str>,
        origin: &Origin,
    ) -> Result<(), ApiError> {
        let mut e = self.event(AuditKind::KeyLeakedRevoked, Some(owner), origin);
        e.key_id = Some(key_id);
        e.detail.insert("reporter".into(), reporter.into());
        if let Some(url) = url {
            e.detail.insert("url".into(), url.into());
        }
        self.record(e).await
    }

    /// A page of `user_id`'s events, newest first.
    pub async fn page(
        &self,
        user_id: &UserId,
        filter: &AuditFilter,
        limit: u32,
        after: Option<&AuditCursor>,
    ) -> Result<AuditPage, ApiError> {
        Ok(self.store.list_audit(user_id, filter, limit, after).await?)
    }

    /// Deletes events older than the retention period; returns how many.
    pub async fn prune(&self) -> Result<u64, ApiError> {
        let keep = i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX);
        let before = Timestamp(self.clock.now().millis().saturating_sub(keep));
        Ok(self.store.prune_audit(before).await?)
    }
}

/// Who `principal` is, by ids only.
pub fn actor(principal: &Principal) -> AuditActor {
    AuditActor {
        user_id: Some(principal.user_id.clone()),
        key_id: principal.key_id,
        session_id: principal.session_id.clone(),
    }
}

/// Prunes the log every `every`, for as long as the server runs.
pub async fn prune_every(log: Arc<AuditLog>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match log.prune().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "deleted audit events past retention"),
            Err(e) => tracing::warn!(error = %e, "could not delete old audit events"),
        }
    }
}
