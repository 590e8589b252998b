//! [`AppState`]: what every handler and the front door share, at the root
//! of what uses it (as kanidm's `https/mod.rs` holds its `ServerState`).
//! Features never hold it; they import it. Its parts come from the
//! features below it (`auth`, `gateway`, `github`, `flashes`, `queue`,
//! `metrics`), which never import it back.

use std::net::IpAddr;
use std::sync::Arc;

use fal_core::{Clock, RandomSource};
use fal_store::{AppAdmin, KeyAdmin, LeakedKeys, UserAdmin, Users};

use crate::audit::AuditLog;
use crate::auth::sessions::Sessions;
use crate::auth::{AdminParts, AdminStores, AuthFailure, Verifier};
use crate::error::ApiError;
use crate::flashes::Flashes;
use crate::gateway::{AppDirectory, RequestIds, UpstreamClient};
use crate::github::Github;
use crate::metrics::requests::AppRequests;
use crate::metrics::{CallerScope, Metrics, RequestCounter, Route};
use crate::operators::Operators;
use crate::queue::Queue;
use crate::secret_scanning::ScanningKeys;
use crate::throttle::Throttle;

/// Shared state of the application. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    /// Authenticates requests.
    verifier: Arc<Verifier>,
    /// Failed-auth counts per client address.
    throttle: Arc<Throttle>,
    /// Key, app and user management, reachable only through
    /// [`crate::auth::Admin`].
    admin: Arc<AdminStores>,
    /// Who the operators are.
    operators: Arc<Operators>,
    /// Finds apps for the gateway.
    apps: Arc<AppDirectory>,
    /// Talks to upstreams (one per worker: see [`AppState::for_worker`]).
    upstream: UpstreamClient,
    /// Makes request ids (shared by all workers, so ids stay unique).
    request_ids: Arc<RequestIds>,
    /// GitHub sign-in, when configured.
    github: Option<Arc<Github>>,
    /// Sessions after GitHub sign-in.
    sessions: Arc<Sessions>,
    /// Whether served over TLS (cookies get `Secure`).
    tls: bool,
    /// One-time links to newly created secrets (dashboard).
    flashes: Arc<Flashes>,
    /// Users, for `GET /users/current`.
    users: Arc<dyn Users>,
    /// Now.
    clock: Arc<dyn Clock>,
    /// Randomness.
    rng: Arc<dyn RandomSource>,
    /// The request queue (`/queue/…`).
    queue: Option<Arc<Queue>>,
    /// The keys secret scanning reports are signed with.
    scanning: Arc<ScanningKeys>,
    /// The audit log.
    audit: Arc<AuditLog>,
    /// Readiness (`/readyz`).
    health: Arc<crate::health::Health>,
    /// What `/metrics` shows.
    metrics: Arc<Metrics>,
    /// Counts requests (one per worker: see [`RequestCounter`]).
    requests: RequestCounter,
}

/// Everything [`AppState`] is assembled from.
pub struct StateParts {
    /// Authenticates requests.
    pub verifier: Arc<Verifier>,
    /// Failed-auth counts per client address.
    pub throttle: Arc<Throttle>,
    /// Key management (sealed inside [`AdminStores`]).
    pub key_admin: Arc<dyn KeyAdmin>,
    /// Keys by secret (sealed inside [`AdminStores`]).
    pub leaked_keys: Arc<dyn LeakedKeys>,
    /// App management (sealed inside [`AdminStores`]).
    pub app_admin: Arc<dyn AppAdmin>,
    /// User administration (sealed inside [`AdminStores`]).
    pub user_admin: Arc<dyn UserAdmin>,
    /// Who the operators are.
    pub operators: Arc<Operators>,
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
    pub github: Option<Arc<Github>>,
    /// Sessions.
    pub sessions: Arc<Sessions>,
    /// Served over TLS.
    pub tls: bool,
    /// The request queue.
    pub queue: Option<Arc<Queue>>,
    /// The keys secret scanning reports are signed with.
    pub scanning: Arc<ScanningKeys>,
    /// The audit log.
    pub audit: Arc<AuditLog>,
    /// Readiness.
    pub health: Arc<crate::health::Health>,
    /// What `/metrics` shows.
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// Assembles the state.
    pub fn new(p: StateParts) -> Result<AppState, fal_core::random::RandomError> {
        let request_ids = Arc::new(RequestIds::new(p.rng.as_ref())?);
        let admin = Arc::new(AdminStores::new(AdminParts {
            key_admin: p.key_admin,
            leaked_keys: p.leaked_keys,
            app_admin: p.app_admin,
            user_admin: p.user_admin,
            users: p.users.clone(),
            operators: p.operators.clone(),
            apps: p.apps.clone(),
            verifier: p.verifier.clone(),
            policy: p.upstream.policy().clone(),
            clock: p.clock.clone(),
            rng: p.rng.clone(),
            audit: p.audit.clone(),
        }));
        Ok(AppState {
            inner: Arc::new(Shared {
                verifier: p.verifier,
                throttle: p.throttle,
                admin,
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
                queue: p.queue,
                scanning: p.scanning,
                audit: p.audit,
                health: p.health,
                requests: p.metrics.request_counter(),
                metrics: p.metrics,
            }),
        })
    }

    /// The same state with its own upstream client, for a worker thread
    /// with its own runtime (connections to upstreams stay on that thread).
    pub fn for_worker(&self, upstream: UpstreamClient) -> AppState {
        let s = &self.inner;
        AppState {
            inner: Arc::new(Shared {
                verifier: s.verifier.clone(),
                throttle: s.throttle.clone(),
                admin: s.admin.clone(),
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
                queue: s.queue.clone(),
                scanning: s.scanning.clone(),
                audit: s.audit.clone(),
                health: s.health.clone(),
                metrics: s.metrics.clone(),
                requests: s.metrics.request_counter(),
            }),
        }
    }

    /// What an [`crate::auth::Admin`] works through; useless without one
    /// (its fields are private to `auth`).
    pub fn admin_stores(&self) -> &Arc<AdminStores> {
        &self.inner.admin
    }

    /// GitHub sign-in, when configured.
    pub fn github(&self) -> Option<&Github> {
        self.inner.github.as_deref()
    }

    /// Sessions.
    pub fn sessions(&self) -> &Sessions {
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
    pub fn flashes(&self) -> &Flashes {
        &self.inner.flashes
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

    /// Failed-auth counts per client address.
    pub fn throttle(&self) -> &Throttle {
        &self.inner.throttle
    }

    /// 429 when `client` has sent too many refused credentials: asked
    /// before any hashing or storage work, and answered after
    /// [`crate::throttle::BLOCKED_ANSWER_DELAY`]. `None` (no address known,
    /// as for a router called in-process) is never refused.
    pub async fn refuse_if_blocked(&self, client: Option<IpAddr>) -> Result<(), ApiError> {
        match client.map(|c| self.inner.throttle.check(c)) {
            Some(Err(b)) => {
                self.inner.metrics.refused("too_many_failed_attempts");
                tokio::time::sleep(crate::throttle::BLOCKED_ANSWER_DELAY).await;
                Err(ApiError::TooManyFailedAttempts {
                    retry_after_secs: b.retry_after_secs,
                })
            }
            _ => Ok(()),
        }
    }

    /// Counts `failure` against `client` when it refused presented
    /// credentials (see [`AuthFailure::is_refusal`]); returns it as the
    /// answer.
    pub fn note_failure(&self, client: Option<IpAddr>, failure: AuthFailure) -> ApiError {
        self.inner.metrics.refused(failure.code());
        if let Some(c) = client.filter(|_| failure.is_refusal()) {
            self.inner.throttle.failed(c);
        }
        failure.into()
    }

    /// `key.expired_on_use`: the key an `Authorization` value named was
    /// refused as expired; records it in the key owner's audit log with
    /// `origin`, at most once an hour per key, in a task of its own (the
    /// refusal does not wait for it).
    pub fn note_expired_use(&self, authorization: Option<&str>, origin: crate::audit::Origin) {
        let Some(Ok(fal_core::header::AuthHeader::Key(creds))) =
            authorization.map(fal_core::header::parse_authorization)
        else {
            return;
        };
        let key_id = creds.key_id;
        if !self.audit().first_expired_use(key_id) {
            return;
        }
        let state = self.clone();
        tokio::spawn(async move {
            if let Some(owner) = state.verifier().owner_of(&key_id).await
                && let Err(e) = state
                    .audit()
                    .key_expired_on_use(&owner, key_id, &origin)
                    .await
            {
                tracing::warn!(error = %e, key_id = %key_id, "could not record an expired key's use");
            }
        });
    }

    /// The user store.
    pub fn users(&self) -> &Arc<dyn Users> {
        &self.inner.users
    }

    /// The request queue, shared (for its background tasks).
    pub fn queue_handle(&self) -> Option<Arc<Queue>> {
        self.inner.queue.clone()
    }

    /// The request queue, when this server runs one.
    pub fn queue(&self) -> Option<&Queue> {
        self.inner.queue.as_deref()
    }

    /// The audit log (writing; reading goes through [`crate::auth::Admin`]).
    pub fn audit(&self) -> &AuditLog {
        &self.inner.audit
    }

    /// The audit log, shared (for its pruning task).
    pub fn audit_handle(&self) -> Arc<AuditLog> {
        self.inner.audit.clone()
    }

    /// Readiness, shared (its flag is set by the change follower).
    pub fn health(&self) -> &Arc<crate::health::Health> {
        &self.inner.health
    }

    /// Who the operators are.
    pub fn operators(&self) -> &Operators {
        &self.inner.operators
    }

    /// The keys secret scanning reports are signed with.
    pub fn scanning_keys(&self) -> &ScanningKeys {
        &self.inner.scanning
    }

    /// What `/metrics` shows.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Counts an answered request: `app` (`owner/name`) only once its
    /// handler found it.
    pub fn count_request(&self, route: Route, app: Option<&str>, status: u16, scope: CallerScope) {
        self.inner.requests.count(route, app, status, scope);
    }

    /// This worker's request counters of the app `owner/name`, which
    /// exists.
    pub fn app_requests(&self, app: &str) -> Arc<AppRequests> {
        self.inner.requests.app(app)
    }
}
