//! The request queue behind `/queue/…` (fal's queue API): requests are
//! stored before their id is handed out ([`fal_store::queue::QueueStore`]),
//! run by this server's workers ([`worker`]) through the same gateway as
//! `/run`, and their answers kept until retention; webhooks are delivered
//! by [`webhooks`]. The HTTP shapes are in `crate::api::queue`.
//!
//! On SQLite one server runs the queue; on PostgreSQL every server does,
//! each request claimed by exactly one of them under a lease.

mod batch;
pub mod webhooks;
pub mod worker;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fal_core::{Clock, KeyId, KeyRecord, Principal, RandomSource, Timestamp};
use fal_store::StoreError;
use fal_store::queue::{CancelOutcome, NewQueued, QueueResult, QueueStore, QueueView};
use tokio::sync::Notify;

use crate::gateway::{AppDirectory, UpstreamClient};

/// The queue's settings.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// How long a completed request's answer is kept (`--queue-retention`).
    pub retention: Duration,
    /// How many requests of one app this server runs at once.
    pub concurrency: usize,
    /// How long a claim lasts without renewal (a dead server's requests
    /// are taken over after this).
    pub lease: Duration,
    /// Answers larger than this are kept as files, not in a row.
    pub inline_limit: usize,
    /// Where those files go (0700, under the data directory).
    pub results_dir: PathBuf,
    /// The base of the URLs handed to clients (`--public-url`); else each
    /// request's `Host`.
    pub public_base: Option<String>,
}

impl QueueConfig {
    /// Defaults, with answer files under `data_dir`.
    pub fn new(data_dir: &std::path::Path) -> QueueConfig {
        QueueConfig {
            retention: Duration::from_secs(7 * 24 * 3600),
            concurrency: 8,
            lease: Duration::from_secs(30),
            inline_limit: 256 * 1024,
            results_dir: data_dir.join("queue-results"),
            public_base: None,
        }
    }
}

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A result file could not be read or written.
    #[error("result file: {0}")]
    File(String),
    /// No randomness for an id.
    #[error(transparent)]
    Random(#[from] fal_core::random::RandomError),
}

/// Where the workers look up a request's key before running it.
#[async_trait::async_trait]
pub trait KeyCheck: Send + Sync {
    /// The key's record, revoked or not; `None` when there is no such key.
    async fn key_record(&self, key_id: &KeyId) -> Result<Option<KeyRecord>, StoreError>;
}

/// The queue of one server.
pub struct Queue {
    store: Arc<dyn QueueStore>,
    clock: Arc<dyn Clock>,
    apps: Arc<AppDirectory>,
    upstream: UpstreamClient,
    config: QueueConfig,
    /// This server, as claims name it.
    worker_id: String,
    /// Something may be waiting: a request queued here or announced by
    /// another server, or a slot freed.
    wake: Notify,
    /// The apps named by wake-ups since the workers last looked: they look
    /// at these alone, unless [`Queue::sweep`] is set.
    hints: Mutex<Vec<(String, String)>>,
    /// Look at every app with waiting requests (at start, every
    /// [`worker::SWEEP_EVERY`], and after a wake-up that names none).
    sweep: std::sync::atomic::AtomicBool,
    /// Webhooks may be due.
    webhooks_due: Notify,
    /// Each app's requests running here, and whether more may wait.
    slots: Mutex<std::collections::HashMap<(String, String), Slots>>,
    /// Submitted requests, stored together (see [`Queue::submit`]).
    submits: batch::GroupCommit<NewQueued, u64>,
    /// Answers of requests run here, stored together.
    answers: batch::GroupCommit<(String, QueueResult), bool>,
    /// Where a request's key is looked up before it runs: a request of a
    /// key revoked since it was queued does not run.
    keys: Option<Arc<dyn KeyCheck>>,
}

/// One app's share of this server's workers.
#[derive(Debug, Default)]
struct Slots {
    /// Requests running here, and slots held by a claim under way.
    running: usize,
    /// Requests may be waiting: the last claim was stopped by the limit on
    /// running ones, not by an empty queue. A request that ends then
    /// wakes the workers for the app; otherwise only a new request does.
    backlog: bool,
    /// A claim is under way (see [`Slots::freed_while_claiming`]).
    claiming: bool,
    /// Requests that ended while the claim ran.
    freed_while_claiming: usize,
}

impl Queue {
    /// A queue over `store`, running requests through `upstream` (a client
    /// of the runtime the workers run on).
    pub fn new(
        store: Arc<dyn QueueStore>,
        clock: Arc<dyn Clock>,
        rng: &dyn RandomSource,
        apps: Arc<AppDirectory>,
        upstream: UpstreamClient,
        config: QueueConfig,
    ) -> Result<Queue, QueueError> {
        let worker_id = new_id(rng)?;
        Ok(Queue {
            store,
            clock,
            apps,
            upstream,
            config,
            worker_id,
            wake: Notify::new(),
            hints: Mutex::new(Vec::new()),
            sweep: std::sync::atomic::AtomicBool::new(true),
            webhooks_due: Notify::new(),
            slots: Mutex::new(Default::default()),
            submits: batch::GroupCommit::new(),
            answers: batch::GroupCommit::new(),
            keys: None,
        })
    }

    /// Checks each request's key in `keys` before running it.
    pub fn with_key_check(mut self, keys: Arc<dyn KeyCheck>) -> Queue {
        self.keys = Some(keys);
        self
    }

    /// The settings.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// Now.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Stores a request; once this returns, it will run. Requests
    /// submitted while a commit is under way go together in the next one
    /// ([`batch::GroupCommit`]), each answered only once its commit is
    /// done.
    ///
    /// Returns the request's queue position as it was stored (see
    /// [`QueueStore::enqueue_many`]).
    pub async fn submit(&self, request: &NewQueued) -> Result<u64, QueueError> {
        let store = self.store.clone();
        let position = self
            .submits
            .commit(request.clone(), move |batch| async move {
                store.enqueue_many(&batch).await
            })
            .await?;
        self.wake_app(&request.owner, &request.name);
        Ok(position)
    }

    /// A new request id (a random UUID).
    pub fn new_request_id(rng: &dyn RandomSource) -> Result<String, QueueError> {
        new_id(rng)
    }

    /// `request_id` as `principal` may see it: `None` for another user's
    /// request, the same as for an unknown one.
    pub async fn view(
        &self,
        principal: &Principal,
        request_id: &str,
    ) -> Result<Option<QueueView>, QueueError> {
        let view = self.store.queue_view(request_id).await?;
        Ok(view.filter(|v| v.user_id == principal.user_id))
    }

    /// How many of the app's requests run before this waiting one.
    pub async fn position(&self, request_id: &str) -> Result<u64, QueueError> {
        Ok(self.store.queue_position(request_id).await?)
    }

    /// Cancels a request the caller may see (see [`Queue::view`]).
    pub async fn cancel(&self, request_id: &str) -> Result<CancelOutcome, QueueError> {
        let outcome = self.store.cancel(request_id, self.clock.now()).await?;
        if outcome == CancelOutcome::WasQueued {
            self.webhooks_due.notify_one();
        }
        Ok(outcome)
    }

    /// A completed request's answer, with its body read from its file
    /// when it was kept in one.
    pub async fn result(&self, request_id: &str) -> Result<Option<QueueResult>, QueueError> {
        let Some(mut result) = self.store.queue_result(request_id).await? else {
            return Ok(None);
        };
        if let Some(file) = &result.file {
            let path = self.config.results_dir.join(file);
            let body = tokio::fs::read(&path)
                .await
                .map_err(|e| QueueError::File(format!("{}: {e}", path.display())))?;
            result.body = Some(body);
        }
        Ok(Some(result))
    }

    /// Tells the workers something may be waiting, for any app: they look
    /// at every app with waiting requests.
    pub fn wake(&self) {
        self.sweep.store(true, std::sync::atomic::Ordering::Release);
        self.wake.notify_one();
    }

    /// Tells the workers a request of `owner/name` may be waiting (one was
    /// queued, or one of its slots freed): they look at that app, without
    /// asking storage which apps have work.
    pub fn wake_app(&self, owner: &str, name: &str) {
        {
            let mut hints = self.hints.lock().unwrap_or_else(|p| p.into_inner());
            if !hints.iter().any(|(o, n)| o == owner && n == name) {
                hints.push((owner.to_owned(), name.to_owned()));
            }
        }
        self.wake.notify_one();
    }

    /// Deletes answers past retention, and their files.
    pub async fn prune(&self) -> Result<usize, QueueError> {
        let keep = i64::try_from(self.config.retention.as_millis()).unwrap_or(i64::MAX);
        let before = Timestamp(self.clock.now().millis().saturating_sub(keep));
        let deleted = self.store.prune_queue(before).await?;
        for f in deleted.iter().flatten() {
            let path = self.config.results_dir.join(f);
            if let Err(e) = tokio::fs::remove_file(&path).await
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(file = %path.display(), error = %e, "could not delete a queue result");
            }
        }
        Ok(deleted.len())
    }
}

/// A random UUID (v4) from `rng`.
fn new_id(rng: &dyn RandomSource) -> Result<String, QueueError> {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes)?;
    Ok(uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string())
}

/// Deletes answers past retention every `every`.
pub async fn prune_every(queue: Arc<Queue>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match queue.prune().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(requests = n, "deleted queue answers past retention"),
            Err(e) => tracing::warn!(error = %e, "could not delete old queue answers"),
        }
    }
}
