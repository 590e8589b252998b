//! [`Admin`]: an ADMIN principal, and the only handle to key and app
//! management. The stores it works through sit in [`AdminStores`]'s private
//! fields, so code without an `Admin` cannot reach them: a handler that
//! forgets to ask for one does not compile. [`Admin::for_principal`] is the
//! one place an `Admin` is made, and it refuses API-scope principals.
//!
//! Checked by the compiler, and by these examples. Code outside `auth` can
//! ask for an `Admin`, which only [`Admin::for_principal`] gives:
//!
//! ```
//! use std::sync::Arc;
//! use fal_server::auth::{Admin, AdminStores};
//! fn ask(p: fal_core::Principal, s: &Arc<AdminStores>) -> Option<Admin> {
//!     Admin::for_principal(p, s).ok()
//! }
//! ```
//!
//! but it cannot reach the stores without one:
//!
//! ```compile_fail,E0616
//! fn bypass(state: &fal_server::state::AppState) {
//!     let _ = &state.admin_stores().key_admin;
//! }
//! ```
//!
//! nor make one by hand:
//!
//! ```compile_fail,E0451
//! use std::sync::Arc;
//! use fal_server::auth::{Admin, AdminStores};
//! fn forge(principal: fal_core::Principal, stores: Arc<AdminStores>) -> Admin {
//!     Admin { principal, stores }
//! }
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use fal_core::usage::{Hour, retained_since};
use fal_core::{
    AuditEvent, AuditKind, Clock, ExpiryPolicy, Grace, KeyId, KeySecret, Principal, RandomSource,
    RateLimit, Scope, Timestamp, UsageCounts, mint_key,
};
use fal_store::{
    AppAdmin, AuditCursor, AuditFilter, AuditPage, Cursor, KeyAdmin, KeyPage, KeySummary,
    LeakedKeys, NewKey, RollOutcome, UserAdmin, Users,
};

use super::sessions::CsrfChecked;
use super::verifier::Verifier;
use crate::audit::{AuditLog, Origin};
use crate::error::ApiError;
use crate::gateway::AppDirectory;
use crate::gateway::reach::ReachPolicy;
use crate::operators::Operators;

/// What administration works through. The fields are private to
/// [`crate::auth`]: only [`Admin`] (and the [`super::Operator`] it becomes)
/// uses them.
pub struct AdminStores {
    /// Key management.
    pub(super) key_admin: Arc<dyn KeyAdmin>,
    /// Keys by secret, for leaked-key reports (see [`super::leaks`]).
    pub(super) leaked_keys: Arc<dyn LeakedKeys>,
    /// App management.
    pub(super) app_admin: Arc<dyn AppAdmin>,
    /// User administration (for [`super::Operator`] only).
    pub(super) user_admin: Arc<dyn UserAdmin>,
    /// Users, for namespaces.
    pub(super) users: Arc<dyn Users>,
    /// Who the operators are.
    pub(super) operators: Arc<Operators>,
    /// The app directory, told of changes.
    pub(super) apps: Arc<AppDirectory>,
    /// The verifier: its hasher mints keys; told of revocations.
    pub(super) verifier: Arc<Verifier>,
    /// Which addresses upstreams may be on.
    pub(super) policy: ReachPolicy,
    /// Now.
    pub(super) clock: Arc<dyn Clock>,
    /// Randomness for new keys.
    pub(super) rng: Arc<dyn RandomSource>,
    /// The audit log: every change made through an [`Admin`] is recorded.
    pub(super) audit: Arc<AuditLog>,
}

/// Everything [`AdminStores`] is made of.
pub struct AdminParts {
    /// Key management.
    pub key_admin: Arc<dyn KeyAdmin>,
    /// Keys by secret, for leaked-key reports.
    pub leaked_keys: Arc<dyn LeakedKeys>,
    /// App management.
    pub app_admin: Arc<dyn AppAdmin>,
    /// User administration.
    pub user_admin: Arc<dyn UserAdmin>,
    /// Users.
    pub users: Arc<dyn Users>,
    /// Who the operators are.
    pub operators: Arc<Operators>,
    /// The app directory.
    pub apps: Arc<AppDirectory>,
    /// The verifier.
    pub verifier: Arc<Verifier>,
    /// Which addresses upstreams may be on.
    pub policy: ReachPolicy,
    /// Now.
    pub clock: Arc<dyn Clock>,
    /// Randomness.
    pub rng: Arc<dyn RandomSource>,
    /// The audit log.
    pub audit: Arc<AuditLog>,
}

impl AdminStores {
    /// The stores, sealed.
    pub fn new(p: AdminParts) -> AdminStores {
        AdminStores {
            key_admin: p.key_admin,
            leaked_keys: p.leaked_keys,
            app_admin: p.app_admin,
            user_admin: p.user_admin,
            users: p.users,
            operators: p.operators,
            apps: p.apps,
            verifier: p.verifier,
            policy: p.policy,
            clock: p.clock,
            rng: p.rng,
            audit: p.audit,
        }
    }
}

/// An ADMIN principal, and the only handle to key management. Every
/// operation is bound to the principal's own user.
pub struct Admin {
    /// Who is acting.
    pub(super) principal: Principal,
    /// What this handle may use.
    pub(super) stores: Arc<AdminStores>,
    /// Where the request came from, for the audit log.
    pub(super) origin: Origin,
}

impl Admin {
    /// The one place an `Admin` is made: refuses any principal without
    /// ADMIN scope (403 naming both scopes).
    pub fn for_principal(
        principal: Principal,
        stores: &Arc<AdminStores>,
    ) -> Result<Admin, ApiError> {
        if principal.scope != Scope::Admin {
            return Err(ApiError::InsufficientScope {
                needed: Scope::Admin,
                has: principal.scope,
            });
        }
        Ok(Admin {
            principal,
            stores: stores.clone(),
            origin: Origin::default(),
        })
    }

    /// This handle, noting where its request came from (what its changes
    /// are recorded with in the audit log).
    pub fn with_origin(mut self, origin: Origin) -> Admin {
        self.origin = origin;
        self
    }

    /// The key-management handle for a dashboard form: only for a session
    /// principal with ADMIN scope, and only with proof that the form carried
    /// its session's CSRF token.
    pub fn for_dashboard(
        principal: Principal,
        _csrf: &CsrfChecked,
        stores: &Arc<AdminStores>,
    ) -> Result<Admin, ApiError> {
        Admin::for_principal(principal, stores)
    }
}

/// A key just created: the only value that ever holds its secret.
pub struct CreatedKey {
    /// What was stored.
    pub key: NewKey,
    /// The secret, to show once.
    pub secret: KeySecret,
}

impl Admin {
    /// Who is acting.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Creates a key for the acting user, limited to `rate_limit` calls
    /// (unlimited when `None`), expiring as `expiry` says.
    pub async fn create_key(
        &self,
        scope: Scope,
        alias: String,
        rate_limit: Option<RateLimit>,
        expiry: ExpiryPolicy,
    ) -> Result<CreatedKey, ApiError> {
        let s = &self.stores;
        let (mut record, secret) = mint_key(
            s.rng.as_ref(),
            s.verifier.hasher(),
            &self.principal.user_id,
            scope,
        )?;
        let now = s.clock.now();
        record.rate_limit = rate_limit;
        record.expires_at = expiry.deadline(now);
        let key = NewKey {
            record,
            alias,
            created_at: now,
            lifetime: expiry.lifetime(),
        };
        s.key_admin.create_key(&key).await?;
        tracing::info!(key_id = %key.record.key_id, scope = %scope, user_id = %self.principal.user_id, "key created");
        let mut event = self.event(AuditKind::KeyGenerated);
        event.key_id = Some(key.record.key_id);
        event.detail.insert("scope".into(), scope.as_str().into());
        event
            .detail
            .insert("alias".into(), key.alias.clone().into());
        if let Some(limit) = rate_limit {
            event
                .detail
                .insert("rate_limit".into(), limit.to_string().into());
        }
        s.audit.record(event).await?;
        Ok(CreatedKey { key, secret })
    }

    /// A page of the acting user's keys.
    pub async fn list_keys(&self, limit: u32, after: Option<&Cursor>) -> Result<KeyPage, ApiError> {
        Ok(self
            .stores
            .key_admin
            .list_keys(&self.principal.user_id, limit, after)
            .await?)
    }

    /// One of the acting user's unrevoked keys as listed (one query);
    /// `None` when the user has no such key.
    pub async fn find_key(&self, key_id: &KeyId) -> Result<Option<KeySummary>, ApiError> {
        let s = &self.stores;
        Ok(s.key_admin
            .key_summary(&self.principal.user_id, key_id)
            .await?)
    }

    /// Revokes one of the acting user's keys; `false` when the user has no
    /// such key. Takes effect on this server at once.
    pub async fn revoke_key(&self, key_id: &KeyId) -> Result<bool, ApiError> {
        let s = &self.stores;
        // Revoking an already revoked key again changes nothing, and
        // records nothing.
        let live = self.find_key(key_id).await?.is_some();
        let found = s
            .key_admin
            .revoke_key(&self.principal.user_id, key_id, s.clock.now())
            .await?;
        if found {
            s.verifier.invalidate(key_id);
            tracing::info!(key_id = %key_id, user_id = %self.principal.user_id, "key revoked");
        }
        if found && live {
            let mut event = self.event(AuditKind::KeyRevoked);
            event.key_id = Some(*key_id);
            s.audit.record(event).await?;
        }
        Ok(found)
    }

    /// Sets (or with `None` lifts) the rate limit of one of the acting
    /// user's unrevoked keys; `false` when the user has no such key. Other
    /// servers learn it from the key change log; this one at once.
    pub async fn set_key_rate_limit(
        &self,
        key_id: &KeyId,
        limit: Option<RateLimit>,
    ) -> Result<bool, ApiError> {
        let s = &self.stores;
        let found = s
            .key_admin
            .set_rate_limit(&self.principal.user_id, key_id, limit, s.clock.now())
            .await?;
        if found {
            s.verifier.invalidate(key_id);
            let limit = limit.map_or_else(|| "none".to_owned(), |l| l.to_string());
            tracing::info!(key_id = %key_id, user_id = %self.principal.user_id, rate_limit = %limit, "key rate limit set");
        }
        Ok(found)
    }
}

/// A key just rolled: the new pair (shown once) and the old one's end.
pub struct RolledKey {
    /// The new key, and its secret.
    pub created: CreatedKey,
    /// The key it replaces.
    pub old_key_id: KeyId,
    /// When the old pair stops working.
    pub old_until: Timestamp,
}

impl Admin {
    /// Rolls one of the acting user's keys: a new pair with the same
    /// alias, scope, expiry policy and rate limit; the old pair works until
    /// `grace` ends. Refused (409) for a revoked, expired or already
    /// rolled key; 404 when the user has no such key.
    pub async fn roll_key(&self, key_id: &KeyId, grace: Grace) -> Result<RolledKey, ApiError> {
        let s = &self.stores;
        let user_id = &self.principal.user_id;
        // Only the new id and hash are taken from this: the store copies
        // the scope (and the rest) from the old key, in its transaction.
        let (minted, secret) = mint_key(s.rng.as_ref(), s.verifier.hasher(), user_id, Scope::Api)?;
        let (new_id, new_hash) = (minted.key_id, minted.secret_hash);
        let now = s.clock.now();
        let outcome = s
            .key_admin
            .roll_key(user_id, key_id, new_id, new_hash, grace, now)
            .await?;
        let conflict = |code: &'static str, detail: String| ApiError::Status {
            status: axum::http::StatusCode::CONFLICT,
            code,
            detail,
        };
        match outcome {
            RollOutcome::Rolled { new, old_until } => {
                s.verifier.invalidate(key_id);
                tracing::info!(key_id = %key_id, new_key_id = %new_id, user_id = %user_id, grace = %grace.span(), "key rolled");
                let mut event = self.event(AuditKind::KeyRolled);
                event.key_id = Some(*key_id);
                event
                    .detail
                    .insert("new_key_id".into(), new_id.to_string().into());
                event
                    .detail
                    .insert("grace".into(), grace.span().to_string().into());
                event
                    .detail
                    .insert("old_until".into(), old_until.to_rfc3339().into());
                s.audit.record(event).await?;
                Ok(RolledKey {
                    created: CreatedKey { key: new, secret },
                    old_key_id: *key_id,
                    old_until,
                })
            }
            RollOutcome::NotFound => Err(ApiError::NotFound(format!(
                "No key \"{key_id}\" found for this user"
            ))),
            RollOutcome::Revoked => Err(conflict(
                "key_revoked",
                format!(
                    "Key {key_id} is revoked: a revoked key cannot be rolled; generate a new one"
                ),
            )),
            RollOutcome::Expired(at) => Err(conflict(
                "key_expired",
                format!(
                    "Key {key_id} expired at {}: an expired key cannot be rolled; generate a new one",
                    at.to_rfc3339()
                ),
            )),
            RollOutcome::AlreadyRolled(to) => Err(conflict(
                "key_rolled",
                format!("Key {key_id} was already rolled to {to}: roll that key instead"),
            )),
        }
    }
}

impl Admin {
    /// An audit event of `kind` done by this handle's principal, from its
    /// request's origin.
    pub(super) fn event(&self, kind: AuditKind) -> AuditEvent {
        self.stores.audit.by(kind, &self.principal, &self.origin)
    }

    /// A page of the acting user's own audit events, newest first.
    pub async fn audit_page(
        &self,
        filter: &AuditFilter,
        limit: u32,
        after: Option<&AuditCursor>,
    ) -> Result<AuditPage, ApiError> {
        let s = &self.stores;
        s.audit
            .page(&self.principal.user_id, filter, limit, after)
            .await
    }

    /// The hourly usage of one of the acting user's keys (revoked or not)
    /// from `since` on, oldest first; `None` when the user has no such key.
    pub async fn key_usage(
        &self,
        key_id: &KeyId,
        since: Hour,
    ) -> Result<Option<Vec<(Hour, UsageCounts)>>, ApiError> {
        let s = &self.stores;
        Ok(s.key_admin
            .key_usage(&self.principal.user_id, key_id, since)
            .await?)
    }

    /// The hourly usage of all the acting user's keys from `since` on, by
    /// key (one query, for the keys page).
    pub async fn all_key_usage(
        &self,
        since: Hour,
    ) -> Result<HashMap<KeyId, Vec<(Hour, UsageCounts)>>, ApiError> {
        let s = &self.stores;
        let rows = s
            .key_admin
            .user_key_usage(&self.principal.user_id, since)
            .await?;
        let mut by_key: HashMap<KeyId, Vec<(Hour, UsageCounts)>> = HashMap::new();
        for r in rows {
            by_key.entry(r.key_id).or_default().push((r.hour, r.counts));
        }
        Ok(by_key)
    }

    /// Calls accepted in the retention window (30 days), per key of the
    /// acting user's that has any.
    pub async fn key_requests(&self) -> Result<HashMap<KeyId, u64>, ApiError> {
        let s = &self.stores;
        let since = retained_since(s.clock.now());
        let rows = s
            .key_admin
            .key_requests(&self.principal.user_id, since)
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// The current time, for records this handle creates.
    pub fn now(&self) -> Timestamp {
        self.stores.clock.now()
    }
}
