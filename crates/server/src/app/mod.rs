//! Building the application from a [`Config`] and serving it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use fal_core::{
    Clock, KeyId, KeyRecord, KeySecret, RandomSource, Scope, SecretHasher, UserId, mint_key,
};
use fal_store::{AppRecord, KeyAdmin, MetaStore, NewKey, SqlStore, StoreError, User};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::auth::Verifier;
use crate::config::Config;
use crate::gateway::reach::ReachPolicy;
use crate::gateway::{AppDirectory, UpstreamClient};
use crate::quota::RateLimiter;
use crate::state::{AppState, StateParts};

mod listen;
mod metrics_listener;
mod serve;
use crate::pepper::{self, PepperError};
#[cfg(feature = "testing")]
pub use serve::RunningServer;

/// `fal_meta` row holding the fingerprint of the pepper the database was
/// initialised with.
const PEPPER_FINGERPRINT: &str = "pepper_fingerprint";

/// Why the server could not start (or a recovery could not run).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The pepper could not be read or created.
    #[error(transparent)]
    Pepper(#[from] PepperError),
    /// The pepper is not the one the database was initialised with.
    #[error(
        "the pepper in {path} is not the one this database was initialised with: every key would be refused. \
         Point --pepper-file (FAL_PEPPER_FILE) at the deployment's pepper file"
    )]
    PepperMismatch {
        /// The pepper file in use.
        path: String,
    },
    /// Recovery found no bootstrap user.
    #[error("this database has no bootstrap admin user yet: start `fal serve` once to create it")]
    NoBootstrapUser,
    /// Recovery found no database in the data directory.
    #[error(
        "no fal data in {0} (no fal.db there); nothing was created. \
         Is this the right data directory (--data-dir / FAL_DATA_DIR), or is the database elsewhere (--database-url)?"
    )]
    NoData(String),
    /// Recovery found no pepper file.
    #[error("no pepper file at {0}: is this the right data directory (--data-dir / FAL_DATA_DIR)?")]
    NoPepper(String),
    /// No randomness.
    #[error(transparent)]
    Random(#[from] fal_core::random::RandomError),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// Something at start-up failed (the demo app, the upstream client).
    #[error("{0}")]
    Io(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {}", describe_bind(.source))]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Why an address could not be bound, in words that say what to do.
fn describe_bind(source: &std::io::Error) -> String {
    if source.kind() == std::io::ErrorKind::AddrInUse {
        "address already in use: another `fal serve` or another program is serving it \
         (stop it, or choose another address with --listen)"
            .to_owned()
    } else {
        source.to_string()
    }
}

/// An ADMIN key printed once: at the first start, or by recovery.
pub struct BootstrapKey {
    /// The key's id.
    pub key_id: KeyId,
    /// Its secret (shown once, then dropped).
    pub secret: KeySecret,
}

/// A built application, ready to serve.
pub struct App {
    /// The configuration it was built from.
    config: Config,
    /// The storage.
    store: SqlStore,
    /// Handlers' shared state.
    state: AppState,
    /// Set only on the very first start.
    bootstrap: Option<BootstrapKey>,
    /// The built-in demo upstream (`--demo`), stopped with the server.
    demo_task: Option<JoinHandle<()>>,
    /// Rate-limit leases to take from the shared count (PostgreSQL), until
    /// the server starts the task that takes them.
    lease_queue: std::sync::Mutex<Option<crate::quota::LeaseQueue>>,
    /// HTTPS, when configured: loaded at build, so a bad pair fails at start.
    tls: Option<Arc<crate::tls::Tls>>,
}

/// An upstream client, or the start-up error that says why there is none.
fn new_upstream_client(
    policy: ReachPolicy,
    metrics: &crate::metrics::Metrics,
) -> Result<UpstreamClient, StartError> {
    UpstreamClient::new(policy, metrics.pool().clone())
        .map_err(|e| StartError::Io(format!("cannot set up the upstream client: {e}")))
}

/// Starts the demo upstream on a loopback port; returns its app record.
async fn start_demo(
    clock: &dyn Clock,
    owner: &UserId,
) -> Result<(AppRecord, JoinHandle<()>), StartError> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| StartError::Io(format!("cannot start the demo app: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Io(format!("cannot start the demo app: {e}")))?;
    let router = crate::gateway::echo::router();
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "demo app stopped");
        }
    });
    let app = AppRecord {
        owner: "fal-ai".into(),
        name: "echo".into(),
        upstream: format!("http://{addr}"),
        timeout_ms: 60_000,
        concurrency: None,
        created_by: owner.clone(),
        created_at: clock.now(),
    };
    Ok((app, task))
}

/// Opens storage and checks that the pepper belongs to it.
async fn open_checked(
    config: &Config,
    clock: &dyn Clock,
    pepper: &fal_core::Pepper,
) -> Result<(SqlStore, SecretHasher), StartError> {
    let store = SqlStore::open_with(
        &config.database_url(),
        clock.now(),
        fal_store::CommitSync::Full,
        config.queue_sync,
    )
    .await?;
    let hasher = SecretHasher::new(pepper);
    let mine = hasher.pepper_fingerprint();
    let recorded = store.meta_set_if_absent(PEPPER_FINGERPRINT, &mine).await?;
    if recorded != mine {
        return Err(StartError::PepperMismatch {
            path: config.pepper_path().display().to_string(),
        });
    }
    Ok((store, hasher))
}

fn mint(
    rng: &dyn RandomSource,
    hasher: &SecretHasher,
    user_id: &UserId,
    alias: &str,
    clock: &dyn Clock,
) -> Result<(NewKey, KeySecret), StartError> {
    let (record, secret) = mint_key(rng, hasher, user_id, Scope::Admin)?;
    let key = NewKey {
        record,
        alias: alias.to_owned(),
        created_at: clock.now(),
        lifetime: None,
    };
    Ok((key, secret))
}

impl App {
    /// Builds the application: pepper, storage, migrations, bootstrap.
    pub async fn build(
        config: Config,
        clock: Arc<dyn Clock>,
        rng: Arc<dyn RandomSource>,
    ) -> Result<App, StartError> {
        let tls = match &config.tls {
            Some(files) => Some(Arc::new(crate::tls::Tls::load(
                files,
                clock.clone(),
                rng.clone(),
            )?)),
            None => None,
        };
        crate::files::create_private_dir(&config.data_dir).map_err(|source| PepperError::Io {
            path: config.data_dir.clone(),
            source,
        })?;
        if config.database_url.is_none() {
            let db = config.sqlite_path();
            crate::files::create_private_file(&db)
                .map_err(|e| StartError::Io(format!("cannot create {}: {e}", db.display())))?;
        }
        let (pepper, _) = pepper::load_or_create(&config.pepper_path(), rng.as_ref())?;
        let (store, hasher) = open_checked(&config, clock.as_ref(), &pepper).await?;

        let mut bootstrap = None;
        if store.bootstrap_user().await?.is_none() {
            let user = User {
                user_id: UserId::generate(rng.as_ref())?,
                nickname: "admin".into(),
                full_name: "Bootstrap administrator".into(),
                github_id: None,
                created_at: clock.now(),
            };
            let (key, secret) = mint(
                rng.as_ref(),
                &hasher,
                &user.user_id,
                "bootstrap",
                clock.as_ref(),
            )?;
            if store.create_bootstrap(&user, &key).await? {
                bootstrap = Some(BootstrapKey {
                    key_id: key.record.key_id,
                    secret,
                });
            }
        }

        let shared = Arc::new(store.clone());
        let metrics = Arc::new(crate::metrics::Metrics::new().with_store(store.clone()));
        let sessions = Arc::new(crate::auth::sessions::Sessions::new(
            shared.clone(),
            hasher.clone(),
            clock.clone(),
            rng.clone(),
            config.session_ttl,
        ));
        // Alone on SQLite, a server holds each key's whole limit; servers
        // sharing PostgreSQL lease calls from the count they share.
        let (limiter, lease_queue) = match store.backend() {
            fal_store::Backend::Sqlite => (RateLimiter::local(config.cache_capacity), None),
            fal_store::Backend::Postgres => {
                let (limiter, queue) = RateLimiter::shared(config.cache_capacity);
                (limiter, Some(queue))
            }
        };
        let verifier = Arc::new(
            Verifier::new(
                hasher,
                shared.clone(),
                clock.clone(),
                config.cache_capacity,
                config.max_staleness,
            )
            .with_sessions(sessions.clone())
            .with_rate_limiter(Arc::new(limiter))
            .with_metrics(metrics.clone()),
        );
        let github = config.github.clone().map(|g| {
            Arc::new(crate::github::Github::new(g).with_public_base(config.public_base()))
        });
        let (builtin, demo_task) = if config.demo {
            let owner = store
                .bootstrap_user()
                .await?
                .ok_or(StartError::NoBootstrapUser)?;
            let (app, task) = start_demo(clock.as_ref(), &owner).await?;
            (vec![app], Some(task))
        } else {
            (Vec::new(), None)
        };
        let apps = Arc::new(AppDirectory::new(
            shared.clone(),
            clock.clone(),
            config.max_staleness,
            builtin,
        ));
        let key_admin: Arc<dyn KeyAdmin> = shared.clone();
        let operator_list =
            crate::operators::OperatorList::parse(&config.operators).map_err(StartError::Io)?;
        let operators = Arc::new(crate::operators::Operators::new(
            operator_list,
            store.bootstrap_user().await?,
            shared.clone(),
            clock.clone(),
            config.max_staleness,
        ));
        let upstream = new_upstream_client(
            ReachPolicy::new(operators.clone(), config.allow_metadata_upstreams),
            &metrics,
        )?;
        let queue = {
            let mut q = crate::queue::QueueConfig::new(&config.data_dir);
            q.retention = config.queue_retention;
            q.concurrency = config.queue_concurrency.max(1);
            q.lease = config
                .queue_lease
                .max(std::time::Duration::from_millis(300));
            q.public_base = config.public_url.clone();
            let client = new_upstream_client(upstream.policy().clone(), &metrics)?;
            let store: Arc<dyn fal_store::queue::QueueStore> = shared.clone();
            let queue = crate::queue::Queue::new(
                store,
                clock.clone(),
                rng.as_ref(),
                apps.clone(),
                client,
                q,
            )
            .map_err(|e| StartError::Io(format!("cannot start the queue: {e}")))?
            .with_key_check(verifier.clone());
            Arc::new(queue)
        };
        let audit = Arc::new(crate::audit::AuditLog::new(
            shared.clone(),
            clock.clone(),
            config.audit_retention,
        ));
        let throttle = Arc::new(crate::throttle::Throttle::new(
            config.throttle.clone(),
            clock.clone(),
        ));
        let scanning = Arc::new(crate::secret_scanning::ScanningKeys::new(
            config.secret_scanning_keys_url.clone(),
            clock.clone(),
        ));
        let state = AppState::new(StateParts {
            verifier,
            throttle,
            key_admin,
            leaked_keys: shared.clone(),
            app_admin: shared.clone(),
            user_admin: shared.clone(),
            operators,
            apps,
            upstream,
            users: shared,
            clock,
            rng,
            github,
            sessions,
            tls: config.tls.is_some(),
            queue: Some(queue),
            scanning,
            audit,
            health: Arc::new(crate::health::Health::new(store.clone())),
            metrics,
        })?;
        Ok(App {
            config,
            store,
            state,
            bootstrap,
            demo_task,
            lease_queue: std::sync::Mutex::new(lease_queue),
            tls,
        })
    }

    /// The audit log (tests run its retention by hand).
    pub fn audit(&self) -> Arc<crate::audit::AuditLog> {
        self.state.audit_handle()
    }

    /// The request queue (tests run its retention by hand).
    pub fn queue(&self) -> Option<Arc<crate::queue::Queue>> {
        self.state.queue_handle()
    }

    /// The ADMIN key created on the very first start, to print once. Later
    /// starts return `None`: the secret is not kept anywhere.
    pub fn take_bootstrap_key(&mut self) -> Option<BootstrapKey> {
        self.bootstrap.take()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The router with every route and middleware.
    pub fn router(&self) -> Router {
        crate::router::router(self.state.clone(), self.body_limits())
    }

    /// Request body bounds from the configuration.
    fn body_limits(&self) -> crate::limits::BodyLimits {
        crate::limits::BodyLimits::from_config(&self.config)
    }

    /// The front door's bounds, with one connection cap for all workers.
    fn front_limits(&self) -> crate::limits::FrontLimits {
        crate::limits::FrontLimits::from_config(&self.config)
    }

    /// The server's TLS, when it serves HTTPS: `fal serve` reloads it on
    /// SIGHUP.
    pub fn tls(&self) -> Option<Arc<crate::tls::Tls>> {
        self.tls.clone()
    }
}

/// Creates a new ADMIN key for the bootstrap admin user, working on the
/// database directly (the server need not run). For a lost bootstrap key.
pub async fn recover_admin_key(
    config: &Config,
    clock: &dyn Clock,
    rng: &dyn RandomSource,
) -> Result<BootstrapKey, StartError> {
    // Nothing is created on a directory that holds no fal data: not even the
    // database file that opening SQLite would make.
    if config.database_url.is_none() && !config.sqlite_path().is_file() {
        return Err(StartError::NoData(config.data_dir.display().to_string()));
    }
    let path = config.pepper_path();
    if !path.exists() {
        return Err(StartError::NoPepper(path.display().to_string()));
    }
    let pepper = pepper::load(&path)?;
    let (store, hasher) = open_checked(config, clock, &pepper).await?;
    let user = store
        .bootstrap_user()
        .await?
        .ok_or(StartError::NoBootstrapUser)?;
    let (key, secret) = mint(rng, &hasher, &user, "recovered", clock)?;
    store.create_key(&key).await?;
    // Recorded as any new key is (no client: it was made on the host).
    let mut event = fal_core::AuditEvent::new(
        fal_core::AuditKind::KeyGenerated,
        clock.now(),
        Some(user.clone()),
    );
    event.actor.user_id = Some(user.clone());
    event.key_id = Some(key.record.key_id);
    event.detail.insert("scope".into(), "ADMIN".into());
    event.detail.insert("alias".into(), "recovered".into());
    event.detail.insert("via".into(), "recovery".into());
    fal_store::AuditStore::append_audit(&store, &event).await?;
    store.close().await;
    Ok(BootstrapKey {
        key_id: key.record.key_id,
        secret,
    })
}

/// The queue checks a request's key through the verifier's cache, as a
/// request's own authentication does.
#[async_trait::async_trait]
impl crate::queue::KeyCheck for Verifier {
    async fn key_record(&self, key_id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.current_record(key_id).await
    }
}
