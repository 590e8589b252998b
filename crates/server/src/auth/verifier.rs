//! [`Verifier`]: an `Authorization` header to a [`Principal`], through a
//! bounded cache of key records (never secrets), with `last_used_at` and
//! each key's hourly usage counts batched in memory, so that a cached
//! verification is one keyed hash and no database work.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fal_core::header::{AuthHeader, parse_authorization};
use fal_core::usage::{Outcome, retained_since};
use fal_core::verify::verify;
use fal_core::{
    Clock, Credentials, HeaderError, KeyId, KeyRecord, Principal, Refusal, SecretHasher, Timestamp,
    UserId,
};
use fal_store::{KeyLookup, StoreError};

use super::AuthFailure;
use super::legacy_ids::LegacyIds;
use super::sessions::Sessions;
use crate::quota::RateLimiter;
use fal_core::AppTokenKey;
use fal_core::app_token::looks_like_jwt;

mod records;
pub mod tokens;
mod usage;

use usage::UsageCounter;

/// A cached key record, when it was read, and its latest use.
struct Cached {
    /// The record as storage had it.
    record: KeyRecord,
    /// When it was read, to bound how long it is trusted.
    fetched_at: Timestamp,
    /// Latest successful use (ms), not yet written back. Kept here so the
    /// hot path records a use with one atomic store and no lock.
    last_used: AtomicI64,
    /// The use last written back (ms), or [`PENDING`] while the entry sits
    /// in the verifier's pending list: only the use that puts it there
    /// takes the list's lock, and a use within [`LAST_USE_RESOLUTION_MS`]
    /// of the one written is not written again.
    flushed: AtomicI64,
}

/// [`Cached::flushed`] while the entry waits in the pending list.
const PENDING: i64 = i64::MAX;

/// How stale a key's `last_used_at` may be: a use this soon after the one
/// last written back is not written. One hour, so that a million keys in
/// use cost a few hundred writes a second rather than one per key per flush
/// (a key's first use after a server starts is always written).
pub const LAST_USE_RESOLUTION_MS: i64 = 60 * 60 * 1000;

impl Cached {
    fn new(record: KeyRecord, fetched_at: Timestamp) -> Cached {
        Cached {
            record,
            fetched_at,
            last_used: AtomicI64::new(i64::MIN),
            flushed: AtomicI64::new(i64::MIN),
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
    /// Records older than this are read again, unless the change feed
    /// vouches for them.
    max_staleness_ms: i64,
    /// When the last round of the key change feed that read the log to its
    /// end started (ms; `i64::MIN` before the first): every cached record
    /// is current as of then (see [`super::key_feed`]).
    feed_current_at: AtomicI64,
    /// Ids without a tag that may exist (minted before ids had one).
    legacy: LegacyIds,
    /// Signs and checks short-lived app tokens (see [`tokens`]).
    token_key: AppTokenKey,
    /// Sessions from GitHub sign-in, for `Bearer` tokens.
    sessions: Option<Arc<Sessions>>,
    /// Keys' rate limits.
    limiter: Arc<RateLimiter>,
    /// Entries used since the last write-back of `last_used_at`.
    pending: Mutex<Vec<Arc<Cached>>>,
    /// Wakes the write-back task early when `pending` grows past
    /// [`PENDING_SOFT_LIMIT`] (or `usage` holds as many keys' hours), so
    /// memory stays bounded however many keys are used between two
    /// periodic flushes.
    flush_soon: tokio::sync::Notify,
    /// Calls per key and hour, by outcome, since the last write-back.
    usage: UsageCounter,
    /// Verification's time, cached or not (`/metrics`).
    metrics: Arc<crate::metrics::Metrics>,
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
            token_key: AppTokenKey::derive(&hasher),
            hasher,
            lookup,
            cache: quick_cache::sync::Cache::new(usize::try_from(capacity).unwrap_or(usize::MAX)),
            clock,
            max_staleness_ms: i64::try_from(max_staleness.as_millis()).unwrap_or(i64::MAX),
            feed_current_at: AtomicI64::new(i64::MIN),
            legacy: LegacyIds::default(),
            sessions: None,
            limiter: Arc::new(RateLimiter::local(capacity)),
            pending: Mutex::new(Vec::new()),
            flush_soon: tokio::sync::Notify::new(),
            usage: UsageCounter::new(PENDING_SOFT_LIMIT),
            metrics: Arc::default(),
        }
    }

    /// Records verification's time in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Verifier {
        self.metrics = metrics;
        self
    }

    /// Also accepts session tokens (`Authorization: Bearer`).
    pub fn with_sessions(mut self, sessions: Arc<Sessions>) -> Verifier {
        self.sessions = Some(sessions);
        self
    }

    /// Counts keys' rate limits with `limiter` (by default, each key's
    /// whole limit is held here, as for a server that is alone).
    pub fn with_rate_limiter(mut self, limiter: Arc<RateLimiter>) -> Verifier {
        self.limiter = limiter;
        self
    }

    /// Keys' rate limits.
    pub fn rate_limiter(&self) -> &Arc<RateLimiter> {
        &self.limiter
    }

    /// Authenticates the dashboard's session cookie (only the dashboard
    /// calls this; the API and the gateway never read cookies).
    pub async fn authenticate_cookie(&self, token: &str) -> Result<Principal, AuthFailure> {
        match &self.sessions {
            Some(s) => s.authenticate_cookie(token).await,
            None => Err(AuthFailure::InvalidSession),
        }
    }

    /// Caches `records` as read now, while the cache has room: the change
    /// feed fills the cache with every key when it starts, so that a
    /// platform's active keys are all cached from the first call.
    pub(super) fn preload(&self, records: Vec<KeyRecord>) {
        let now = self.clock.now();
        for record in records {
            if self.cache.len() as u64 >= self.cache.capacity() {
                return;
            }
            let entry = Arc::new(Cached::new(record, now));
            self.cache.insert(entry.record.key_id, entry);
        }
    }

    /// The untagged ids that may exist (filled by the change feed).
    pub(super) fn legacy(&self) -> &LegacyIds {
        &self.legacy
    }

    /// Where records come from (for the change feed).
    pub(super) fn lookup(&self) -> &Arc<dyn KeyLookup> {
        &self.lookup
    }

    /// Now (for the change feed).
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Now, as this verifier's clock has it.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Deletes key change log entries made before `before` (retention).
    pub async fn prune_key_log(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.lookup.prune_key_changes(before).await
    }

    /// The hasher, for minting keys.
    pub fn hasher(&self) -> &SecretHasher {
        &self.hasher
    }

    /// Authenticates an `Authorization` header value, for any route but a
    /// model call's: a short-lived app token is refused (see
    /// [`Verifier::authenticate_model`]).
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Principal, AuthFailure> {
        let value = header.ok_or(AuthFailure::Missing)?;
        match parse_authorization(value) {
            Ok(AuthHeader::Key(creds)) => self.verify(&creds).await,
            Ok(AuthHeader::Bearer(token)) if looks_like_jwt(token) => {
                Err(AuthFailure::TokenNotAccepted)
            }
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

    /// Verifies from cache only: `None` when the record is not cached, or
    /// is older than the staleness bound while the change feed has not
    /// vouched for the cache within it either. This is the hot path.
    pub fn verify_cached(&self, creds: &Credentials) -> Option<Result<Principal, AuthFailure>> {
        let now = self.clock.now();
        let cached = self.fresh(&creds.key_id, now)?;
        Some(self.finish(creds, Some(&cached), now))
    }

    /// The cached record of `key_id`, unless it is older than the
    /// staleness bound while the change feed has not vouched for the cache
    /// within it either.
    fn fresh(&self, key_id: &KeyId, now: Timestamp) -> Option<Arc<Cached>> {
        let cached = self.cache.get(key_id)?;
        let age = |since: i64| now.millis().saturating_sub(since);
        if age(cached.fetched_at.millis()) > self.max_staleness_ms
            && age(self.feed_current_at.load(Ordering::Acquire)) > self.max_staleness_ms
        {
            return None;
        }
        Some(cached)
    }

    /// The key change feed read the log to its end in a round that started
    /// at `at`: every cached record is current as of then, so none needs
    /// reading again until `at` is older than the staleness bound.
    pub fn note_feed_current(&self, at: Timestamp) {
        self.feed_current_at
            .fetch_max(at.millis(), Ordering::AcqRel);
    }

    /// Verifies `creds`, reading storage on a cache miss.
    pub async fn verify(&self, creds: &Credentials) -> Result<Principal, AuthFailure> {
        let started = std::time::Instant::now();
        if let Some(result) = self.verify_cached(creds) {
            self.metrics.verified(true, started.elapsed());
            return result;
        }
        let result =
            if !self.hasher.minted_here(&creds.key_id) && !self.legacy.may_exist(&creds.key_id) {
                // A made-up id: refused without reading storage, after the
                // same work as a wrong secret for a known id (see `finish`).
                self.finish(creds, None, self.clock.now())
            } else {
                match self.read(&creds.key_id).await {
                    Ok(cached) => self.finish(creds, cached.as_ref(), self.clock.now()),
                    Err(e) => Err(e),
                }
            };
        self.metrics.verified(false, started.elapsed());
        result
    }

    /// The owner of the key `key_id`, revoked or not, when there is such a
    /// key (from the cache, else storage; a made-up id reads nothing):
    /// whose audit log a refused sign-in naming it goes in.
    pub async fn owner_of(&self, key_id: &KeyId) -> Option<UserId> {
        if let Some(c) = self.cache.get(key_id) {
            return Some(c.record.user_id.clone());
        }
        if !self.hasher.minted_here(key_id) && !self.legacy.may_exist(key_id) {
            return None;
        }
        let cached = self.read(key_id).await.ok()??;
        Some(cached.record.user_id.clone())
    }

    /// Reads `key_id`'s record from storage into the cache.
    async fn read(&self, key_id: &KeyId) -> Result<Option<Arc<Cached>>, AuthFailure> {
        match self.fetch(key_id).await {
            Ok(cached) => Ok(cached),
            Err(StoreError::Unavailable(cause)) => {
                tracing::warn!(%cause, "key lookup failed: database unavailable");
                Err(AuthFailure::Unavailable)
            }
            Err(e) => {
                tracing::error!(error = %e, "key lookup failed");
                Err(AuthFailure::Unavailable)
            }
        }
    }

    fn finish(
        &self,
        creds: &Credentials,
        cached: Option<&Arc<Cached>>,
        now: Timestamp,
    ) -> Result<Principal, AuthFailure> {
        let mut principal = match verify(&self.hasher, creds, cached.map(|c| &c.record), now) {
            Ok(p) => p,
            Err(e) => {
                if let Some(entry) = cached {
                    // Only a record of this id refuses other than Invalid;
                    // Invalid with it at hand is a wrong secret.
                    if entry.record.key_id == creds.key_id {
                        self.count(entry.record.key_id, now, Outcome::Refused(Refusal::of(e)));
                    }
                    // A made-up id costs a tag check too: so does this
                    // refusal, so the two take the same time.
                    std::hint::black_box(self.hasher.minted_here(&creds.key_id));
                } else {
                    // And a known id's refusal is counted: so a made-up
                    // id looks its count up, to take the same time.
                    std::hint::black_box(self.usage.probe(creds.key_id, now));
                }
                // Revoked, expired or rolled only with the right secret.
                return Err(e.into());
            }
        };
        if let Some(entry) = cached {
            self.charge(entry, &mut principal, now)?;
        }
        Ok(principal)
    }

    /// Records a use of the key of `entry` by `principal` (a key's caller,
    /// or a token's minted with that key) and takes the call from the
    /// key's rate limit, if it has one; counts the call accepted, or
    /// refused for the rate limit.
    fn charge(
        &self,
        entry: &Arc<Cached>,
        principal: &mut Principal,
        now: Timestamp,
    ) -> Result<(), AuthFailure> {
        self.note_use(entry, now);
        let key_id = entry.record.key_id;
        if let Some(limit) = entry.record.rate_limit {
            match self.limiter.take(&key_id, limit, now) {
                Ok(quota) => principal.quota = Some(quota),
                Err(refusal) => {
                    self.count(key_id, now, Outcome::Refused(Refusal::RateLimited));
                    return Err(AuthFailure::RateLimited(refusal));
                }
            }
        }
        self.count(key_id, now, Outcome::Accepted);
        Ok(())
    }

    /// Counts a call made with `key_id` in its usage (written back with
    /// `last_used_at`, see [`Verifier::flush_usage`]).
    pub fn count(&self, key_id: KeyId, now: Timestamp, outcome: Outcome) {
        if self.usage.count(key_id, now, outcome) {
            self.flush_soon.notify_one();
        }
    }

    /// Deletes usage counts older than the retention (30 days) at `now`;
    /// returns how many hours were deleted.
    pub async fn prune_usage(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.lookup.prune_key_usage(retained_since(now)).await
    }

    /// Records a use: an atomic store, and the pending list's lock only for
    /// the first use since the last write-back.
    fn note_use(&self, entry: &Arc<Cached>, now: Timestamp) {
        if entry.last_used.load(Ordering::Relaxed) < now.millis() {
            entry.last_used.store(now.millis(), Ordering::Relaxed);
        }
        let flushed = entry.flushed.load(Ordering::Relaxed);
        if flushed == PENDING || now.millis().saturating_sub(flushed) < LAST_USE_RESOLUTION_MS {
            return;
        }
        if entry
            .flushed
            .compare_exchange(flushed, PENDING, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
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

    /// When `key_id` stops working, as its cached record says (`None`: not
    /// cached, or it does not expire).
    pub fn cached_expiry(&self, key_id: &KeyId) -> Option<Timestamp> {
        self.cache.get(key_id)?.record.expires_at
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

    /// The most records the cache holds.
    pub fn cache_capacity(&self) -> u64 {
        self.cache.capacity()
    }

    /// Writes pending `last_used_at` values in one batch, then the usage
    /// counted since the last write-back in another (put back, to be
    /// retried with the next, when it cannot be written).
    pub async fn flush_usage(&self) {
        self.flush_last_use().await;
        let counted = self.usage.drain();
        if counted.is_empty() {
            return;
        }
        if let Err(e) = self.lookup.add_key_usage(&counted).await {
            tracing::warn!(error = %e, rows = counted.len(), "could not record key usage; will retry");
            self.usage.restore(counted);
        }
    }

    /// Writes pending `last_used_at` values in one batch.
    async fn flush_last_use(&self) {
        let entries: Vec<Arc<Cached>> =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if entries.is_empty() {
            return;
        }
        // The entry leaves the pending state with the use written: a later
        // use within the resolution is not written again.
        let batch: Vec<(KeyId, Timestamp)> = entries
            .iter()
            .map(|e| {
                let used = e.last_used.load(Ordering::Acquire);
                e.flushed.store(used, Ordering::Release);
                (e.record.key_id, Timestamp(used))
            })
            .collect();
        if let Err(e) = self.lookup.record_key_use(&batch).await {
            tracing::warn!(error = %e, keys = batch.len(), "could not record key use; will retry");
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            for (entry, (_, used)) in entries.into_iter().zip(&batch) {
                let back = entry.flushed.compare_exchange(
                    used.millis(),
                    PENDING,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
                if back.is_ok() {
                    pending.push(entry);
                }
            }
        }
    }
}
