//! Building the application from a [`Config`] and serving it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::Request;
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::Response;
use fal_core::{Clock, KeyId, KeySecret, RandomSource, Scope, SecretHasher, UserId, mint_key};
use fal_store::{AppRecord, KeyAdmin, MetaStore, NewKey, SqlStore, StoreError, User};
use tokio::net::TcpListener;
#[cfg(feature = "testing")]
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::auth::{AppState, StateParts, Verifier};
use crate::config::Config;
use crate::error::ApiError;
use crate::gateway::{AppDirectory, upstream_client};
use crate::pepper::{self, PepperError};

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
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
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
}

/// An upstream client, or the start-up error that says why there is none.
fn new_upstream_client(allow_metadata: bool) -> Result<crate::gateway::UpstreamClient, StartError> {
    upstream_client(allow_metadata)
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
    let router = Router::new().fallback(crate::gateway::echo);
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
    let store = SqlStore::open(&config.database_url(), clock.now()).await?;
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
        let sessions = Arc::new(crate::sessions::Sessions::new(
            shared.clone(),
            hasher.clone(),
            clock.clone(),
            rng.clone(),
            config.session_ttl,
        ));
        let verifier = Arc::new(
            Verifier::new(
                hasher,
                shared.clone(),
                clock.clone(),
                config.cache_capacity,
                config.max_staleness,
            )
            .with_sessions(sessions.clone()),
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
        let upstream = new_upstream_client(config.allow_metadata_upstreams)?;
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
        let state = AppState::new(StateParts {
            verifier,
            key_admin,
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
        })?;
        Ok(App {
            config,
            store,
            state,
            bootstrap,
            demo_task,
        })
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
        router(self.state.clone(), self.body_limits())
    }

    /// Request body bounds from the configuration.
    fn body_limits(&self) -> crate::limits::BodyLimits {
        crate::limits::BodyLimits::from_config(&self.config)
    }

    /// The front door's bounds, with one connection cap for all workers.
    fn front_limits(&self) -> crate::limits::FrontLimits {
        crate::limits::FrontLimits::from_config(&self.config)
    }

    /// Checks that the TLS files (if any) load, so a bad pair fails at start.
    pub fn check_tls(&self) -> Result<(), StartError> {
        if let Some(files) = &self.config.tls {
            crate::tls::acceptor(&files.cert, &files.key)?;
        }
        Ok(())
    }

    /// Binds the configured address and serves in a background task
    /// (tests and benchmarks: feature `testing`).
    #[cfg(feature = "testing")]
    pub async fn spawn(self) -> Result<RunningServer, StartError> {
        self.check_tls()?;
        let addr = self.config.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(self.serve(listener, async {
            let _ = rx.await;
        }));
        Ok(RunningServer {
            addr: local,
            shutdown: Some(tx),
            task,
        })
    }

    /// Serves with `workers` threads, each running its own single-threaded
    /// runtime with its own listener on `addr` (SO_REUSEPORT) and its own
    /// upstream connections, as nginx runs worker processes: a request is
    /// handled start to finish on one thread, with no cross-thread wake-ups.
    /// `on_listening` is told the bound address. Stops like [`App::serve`].
    pub async fn serve_per_core(
        self,
        addr: SocketAddr,
        workers: usize,
        on_listening: impl FnOnce(SocketAddr),
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let bind = |addr: SocketAddr| -> std::io::Result<std::net::TcpListener> {
            let socket = if addr.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            #[cfg(unix)]
            socket.set_reuseport(true)?;
            socket.set_nodelay(true)?;
            socket.bind(addr)?;
            socket.listen(4096)?.into_std()
        };
        let bind_err = |source| StartError::Bind { addr, source };
        let first = bind(addr).map_err(bind_err)?;
        let local = first.local_addr().map_err(bind_err)?;
        let mut listeners = vec![first];
        for _ in 1..workers.max(1) {
            listeners.push(bind(local).map_err(bind_err)?);
        }
        on_listening(local);

        let tls = self.tls_acceptor()?;
        let limits = self.front_limits();
        let background = self.start_background();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut threads = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let upstream = new_upstream_client(self.config.allow_metadata_upstreams)?;
            let limits = limits.clone();
            let state = self.state.for_worker(upstream);
            let router = router(state.clone(), self.body_limits());
            let tls = tls.clone();
            let mut stop = stop_rx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("fal-worker-{i}"))
                .spawn(move || -> std::io::Result<()> {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    rt.block_on(async move {
                        let listener = TcpListener::from_std(listener)?;
                        let stopped = async move {
                            let _ = stop.wait_for(|s| *s).await;
                        };
                        crate::front::serve(listener, state, router, tls, limits, stopped).await
                    })
                })
                .map_err(|e| StartError::Io(format!("cannot start a worker thread: {e}")))?;
            threads.push(thread);
        }
        shutdown.await;
        let _ = stop_tx.send(true);
        let joined = tokio::task::spawn_blocking(move || {
            for t in threads {
                match t.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "worker stopped with an error"),
                    Err(_) => tracing::error!("a worker thread panicked"),
                }
            }
        })
        .await;
        if joined.is_err() {
            tracing::error!("could not wait for the worker threads");
        }
        self.stop_background(background).await;
        Ok(())
    }

    fn tls_acceptor(&self) -> Result<Option<tokio_rustls::TlsAcceptor>, StartError> {
        match &self.config.tls {
            Some(files) => Ok(Some(crate::tls::acceptor(&files.cert, &files.key)?)),
            None => Ok(None),
        }
    }

    /// Starts the background tasks: `last_used_at` write-back and the
    /// change-notification follower.
    fn start_background(&self) -> Vec<JoinHandle<()>> {
        let verifier = self.state.verifier().clone();
        let interval = self.config.usage_flush_interval;
        let flusher = tokio::spawn({
            let verifier = verifier.clone();
            async move {
                let mut tick = tokio::time::interval(interval);
                tick.tick().await;
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        () = verifier.flush_requested() => {}
                    }
                    verifier.flush_usage().await;
                }
            }
        });
        let follower = tokio::spawn(follow_changes(
            self.store.clone(),
            verifier,
            self.state.apps().clone(),
        ));
        vec![flusher, follower]
    }

    /// Stops the background tasks, writes back key use, closes the database.
    async fn stop_background(&self, tasks: Vec<JoinHandle<()>>) {
        for t in tasks {
            t.abort();
        }
        if let Some(task) = &self.demo_task {
            task.abort();
        }
        self.state.verifier().flush_usage().await;
        self.store.close().await;
        tracing::info!("server stopped");
    }

    /// Serves on `listener` (on the current runtime) until `shutdown`
    /// completes, then finishes the requests under way, writes back key use
    /// and closes the database.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let tls = self
            .tls_acceptor()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let background = self.start_background();
        let result = crate::front::serve(
            listener,
            self.state.clone(),
            self.router(),
            tls,
            self.front_limits(),
            shutdown,
        )
        .await;
        self.stop_background(background).await;
        result
    }

    /// The verifier (benchmarks measure propagation through it).
    pub fn verifier(&self) -> Arc<Verifier> {
        self.state.verifier().clone()
    }
}

/// Follows change notifications (PostgreSQL): drops a cached key or app as
/// soon as any server changes it. After every (re)subscription the whole
/// cache is dropped, since notifications sent while not subscribed are lost;
/// while the subscription is down, cached records are trusted only within
/// the staleness bound. Returns at once on SQLite.
async fn follow_changes(store: SqlStore, verifier: Arc<Verifier>, apps: Arc<AppDirectory>) {
    use fal_store::changes::Change;
    let mut backoff = std::time::Duration::from_millis(100);
    let mut first = true;
    loop {
        let mut changes = match store.changes().await {
            Ok(Some(c)) => c,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to change notifications; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(2));
                continue;
            }
        };
        if !first {
            tracing::info!("change notifications resumed; dropping cached records");
        }
        first = false;
        verifier.invalidate_all();
        apps.invalidate_all();
        backoff = std::time::Duration::from_millis(100);
        loop {
            match changes.next().await {
                Ok(Change::Key(id)) => verifier.invalidate(&id),
                Ok(Change::App { owner, name }) => apps.invalidate(&owner, &name),
                Err(e) => {
                    tracing::warn!(error = %e, "change notifications interrupted; resubscribing");
                    break;
                }
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

/// A server running in the background (tests and benchmarks: feature
/// `testing`).
#[cfg(feature = "testing")]
pub struct RunningServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Dropping or sending stops it gracefully.
    shutdown: Option<oneshot::Sender<()>>,
    /// The serving task.
    task: JoinHandle<std::io::Result<()>>,
}

#[cfg(feature = "testing")]
impl RunningServer {
    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops gracefully and waits until everything is written.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Builds the router over `state`, with request bodies bounded by `body`.
pub fn router(state: AppState, body: crate::limits::BodyLimits) -> Router {
    crate::api::routes()
        .merge(crate::dashboard::routes())
        .fallback(fallback)
        .with_state(state)
        .layer(middleware::from_fn(crate::forward_rules::refuse_connect))
        // Ours bounds every body first (413/408 in our JSON shape).
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(
            body,
            crate::limits::bound_body,
        ))
        .layer(middleware::from_fn(crate::response_headers::nosniff))
        .layer(middleware::from_fn(log_request))
}

async fn fallback(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("No route for {method} {}", uri.path()))
}

/// The router's request log line ([`crate::request_log`]).
async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    crate::request_log::request(method.as_str(), &path, response.status().as_u16(), started);
    response
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
    store.close().await;
    Ok(BootstrapKey {
        key_id: key.record.key_id,
        secret,
    })
}
