//! Serving a built [`App`]: one listener per core (or one in the
//! background for tests), the background tasks (usage write-back, change
//! notifications), and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fal_store::SqlStore;
use tokio::net::TcpListener;
#[cfg(feature = "testing")]
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{App, StartError, new_upstream_client};
use crate::auth::Verifier;
use crate::auth::key_feed::KeyFeed;
use crate::gateway::AppDirectory;

impl App {
    /// Binds the configured address and serves in a background task
    /// (tests and benchmarks: feature `testing`).
    #[cfg(feature = "testing")]
    pub async fn spawn(self) -> Result<RunningServer, StartError> {
        let addr = self.config.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?;
        let metrics = self.bind_metrics().await?;
        let metrics_addr = super::metrics_listener::local(&metrics);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(self.serve_with(listener, metrics, async {
            let _ = rx.await;
        }));
        Ok(RunningServer {
            addr: local,
            metrics_addr,
            shutdown: Some(tx),
            task,
        })
    }

    /// Serves with `workers` threads, each running its own single-threaded
    /// runtime with its own listener on `addr` (SO_REUSEPORT among its own workers only: a
    /// second server on the address fails, see `listen.rs`) and its own
    /// upstream connections, as nginx runs worker processes: a request is
    /// handled start to finish on one thread, with no cross-thread wake-ups.
    /// `on_listening` is told the bound address, and the metrics listener's
    /// (`--metrics-listen`). Stops like [`App::serve`].
    pub async fn serve_per_core(
        self,
        addr: SocketAddr,
        workers: usize,
        on_listening: impl FnOnce(SocketAddr, Option<SocketAddr>),
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let bind_err = |source| StartError::Bind { addr, source };
        let listeners = super::listen::bind_workers(addr, workers).map_err(bind_err)?;
        let local = listeners[0].local_addr().map_err(bind_err)?;
        let metrics = self.bind_metrics().await?;
        on_listening(local, super::metrics_listener::local(&metrics));

        let tls = self.tls_acceptor();
        let limits = self.front_limits();
        let mut background = self.start_background();
        if let Some(listener) = metrics {
            background.push(self.serve_metrics(listener));
        }
        let health = self.state.health().clone();
        background.push(tokio::spawn(async move {
            health.log_at_start(Duration::from_secs(5)).await;
        }));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut threads = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let policy = self.state.upstream().policy().clone();
            let upstream = new_upstream_client(policy, self.state.metrics())?;
            let limits = limits.clone();
            let state = self.state.for_worker(upstream);
            let router = crate::router::router(state.clone(), self.body_limits());
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

    fn tls_acceptor(&self) -> Option<tokio_rustls::TlsAcceptor> {
        self.tls.as_ref().map(|t| t.acceptor())
    }

    /// Starts the background tasks: write-back of `last_used_at` and key
    /// usage, usage pruning, and the change-notification follower.
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
        let queue = self.state.queue_handle();
        let follower = tokio::spawn(follow_changes(
            self.store.clone(),
            verifier.clone(),
            self.state.apps().clone(),
            queue.clone(),
            self.state.health().clone(),
            self.state.metrics().clone(),
        ));
        let pruner = tokio::spawn(prune_usage(verifier.clone()));
        let key_log = tokio::spawn(follow_key_log(verifier, self.config.max_staleness));
        let mut tasks = vec![flusher, follower, key_log, pruner];
        if let (Some(tls), Some(every)) = (&self.tls, self.config.tls_watch_interval) {
            tasks.push(tokio::spawn(tls.clone().watch(every)));
        }
        if let Some(queue) = queue {
            tasks.push(tokio::spawn(crate::queue::worker::run(queue.clone())));
            tasks.push(tokio::spawn(crate::queue::webhooks::run(queue.clone())));
            let every = std::time::Duration::from_secs(3600);
            tasks.push(tokio::spawn(crate::queue::prune_every(queue, every)));
        }
        let every = std::time::Duration::from_secs(3600);
        let audit = self.state.audit_handle();
        tasks.push(tokio::spawn(crate::audit::prune_every(audit, every)));
        // SQLite: the WAL is copied into the database here, not by the
        // queue's commits (see `SqlStore::checkpoint`).
        let store = self.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                match store.checkpoint().await {
                    Ok(done) if done.restarted && !done.turn_held.is_zero() => {
                        tracing::debug!(
                            frames = done.wal_frames,
                            passes = done.passes,
                            turn_held_ms = done.turn_held.as_secs_f64() * 1e3,
                            "the WAL starts again"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "could not checkpoint the database"),
                }
            }
        }));
        let queue = self.lease_queue.lock().ok().and_then(|mut q| q.take());
        if let Some(queue) = queue {
            let counts: Arc<dyn fal_store::RateCounts> = Arc::new(self.store.clone());
            tasks.push(tokio::spawn(crate::quota::leases::run(
                queue,
                counts.clone(),
            )));
            let clock = self.state.verifier().clock().clone();
            let every = crate::quota::leases::PRUNE_INTERVAL;
            tasks.push(tokio::spawn(crate::quota::leases::prune(
                counts, clock, every,
            )));
        }
        tasks
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
        let metrics = self
            .bind_metrics()
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        self.serve_with(listener, metrics, shutdown).await
    }

    /// [`App::serve`], with the metrics listener bound.
    async fn serve_with(
        self,
        listener: TcpListener,
        metrics: Option<TcpListener>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let tls = self.tls_acceptor();
        let mut background = self.start_background();
        if let Some(listener) = metrics {
            background.push(self.serve_metrics(listener));
        }
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
async fn follow_changes(
    store: SqlStore,
    verifier: Arc<Verifier>,
    apps: Arc<AppDirectory>,
    queue: Option<Arc<crate::queue::Queue>>,
    health: Arc<crate::health::Health>,
    metrics: Arc<crate::metrics::Metrics>,
) {
    use crate::metrics::Change as Counted;
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
        health.set_subscribed(true);
        backoff = std::time::Duration::from_millis(100);
        loop {
            match changes.next().await {
                Ok(Change::Key(id)) => {
                    metrics.change_received(Counted::Key);
                    verifier.invalidate(&id);
                }
                Ok(Change::App { owner, name }) => {
                    metrics.change_received(Counted::App);
                    apps.invalidate(&owner, &name);
                }
                Ok(Change::Queued { owner, name }) => {
                    metrics.change_received(Counted::Queued);
                    if let Some(q) = &queue {
                        q.wake_app(&owner, &name);
                    }
                }
                Err(e) => {
                    metrics.changes_interrupted();
                    health.set_subscribed(false);
                    tracing::warn!(error = %e, "change notifications interrupted; resubscribing");
                    break;
                }
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

/// How often the key change log is read: a quarter of the staleness bound
/// (so a missed notification or another process's change is seen well
/// within it), between 20 ms and 1 s.
fn key_log_interval(max_staleness: Duration) -> Duration {
    (max_staleness / 4).clamp(Duration::from_millis(20), Duration::from_secs(1))
}

/// How long the key change log is kept.
const KEY_LOG_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// Reads the key change log every [`key_log_interval`] for the verifier's
/// cache (see [`crate::auth::key_feed`]), and prunes it hourly. A failed
/// round is logged and retried; meanwhile cached records are trusted only
/// within the staleness bound, as without the feed.
async fn follow_key_log(verifier: Arc<Verifier>, max_staleness: Duration) {
    let backoff = Duration::from_secs(1);
    let mut feed = loop {
        match KeyFeed::start(verifier.clone(), max_staleness).await {
            Ok(feed) => break feed,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the key change log; will retry");
                tokio::time::sleep(backoff).await;
            }
        }
    };
    let mut tick = tokio::time::interval(key_log_interval(max_staleness));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pruned_at = i64::MIN;
    loop {
        tick.tick().await;
        if let Err(e) = feed.poll().await {
            tracing::warn!(error = %e, "cannot read the key change log; will retry");
            continue;
        }
        let now = verifier.now();
        if now.millis().saturating_sub(pruned_at) > 60 * 60 * 1000 {
            pruned_at = now.millis();
            let before = fal_core::Timestamp(now.millis().saturating_sub(KEY_LOG_RETENTION_MS));
            if let Err(e) = verifier.prune_key_log(before).await {
                tracing::warn!(error = %e, "cannot prune the key change log");
            }
        }
    }
}

/// Deletes key usage older than its retention (30 days), at start and
/// hourly. Every server does it; the deletes are idempotent.
async fn prune_usage(verifier: Arc<Verifier>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60 * 60));
    loop {
        tick.tick().await;
        if let Err(e) = verifier.prune_usage(verifier.now()).await {
            tracing::warn!(error = %e, "cannot prune key usage; will retry");
        }
    }
}

/// A server running in the background (tests and benchmarks: feature
/// `testing`).
#[cfg(feature = "testing")]
pub struct RunningServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where `--metrics-listen` serves `/metrics`, when given.
    pub metrics_addr: Option<SocketAddr>,
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
