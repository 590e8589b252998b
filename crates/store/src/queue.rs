//! The request queue's records and [`QueueStore`]: requests accepted for
//! later are stored before they are acknowledged, claimed by one worker at
//! a time under a lease (another server takes a request over when its
//! claimer's lease runs out), completed once, and kept until retention.

use async_trait::async_trait;
use fal_core::{KeyId, Timestamp, UserId};

use crate::StoreError;

/// What a cancelled request's `error` says.
pub const CANCELLED: &str = "Request was cancelled";

/// Where a queued request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueStatus {
    /// Waiting for a worker.
    InQueue,
    /// A worker is running it.
    InProgress,
    /// Answered, failed or cancelled.
    Completed,
}

impl QueueStatus {
    /// As stored and as fal's clients read it.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueStatus::InQueue => "IN_QUEUE",
            QueueStatus::InProgress => "IN_PROGRESS",
            QueueStatus::Completed => "COMPLETED",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<QueueStatus> {
        match s {
            "IN_QUEUE" => Some(QueueStatus::InQueue),
            "IN_PROGRESS" => Some(QueueStatus::InProgress),
            "COMPLETED" => Some(QueueStatus::Completed),
            _ => None,
        }
    }
}

/// A request to queue.
#[derive(Clone)]
pub struct NewQueued {
    /// Its id (a UUID), handed to the client.
    pub request_id: String,
    /// Whose.
    pub user_id: UserId,
    /// With which key (None for a session).
    pub key_id: Option<KeyId>,
    /// The app's owner.
    pub owner: String,
    /// The app's name.
    pub name: String,
    /// What follows the app's name, with the query (`/x?y=1`, or empty).
    pub path: String,
    /// The HTTP method.
    pub method: String,
    /// The body's `Content-Type`.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
    /// 0 normal, 1 low: normal first.
    pub priority: i64,
    /// Where to `POST` the result.
    pub webhook: Option<String>,
    /// The client's own timeout for the model call, when shorter than the app's.
    pub timeout_ms: Option<i64>,
    /// When it was accepted.
    pub created_at: Timestamp,
}

impl std::fmt::Debug for NewQueued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewQueued")
            .field("request_id", &self.request_id)
            .field("app", &format_args!("{}/{}", self.owner, self.name))
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// A stored request as a worker runs it: what [`QueueStore::claim`] returns.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The request as accepted.
    pub request: NewQueued,
    /// How many times it was claimed before (a claimer that died).
    pub attempts: i64,
}

/// What a worker asks [`QueueStore::claim_many`] for.
#[derive(Debug, Clone, Copy)]
pub struct ClaimAsk<'a> {
    /// The app, as `(owner, name)`.
    pub app: (&'a str, &'a str),
    /// The claimer, as claims name it.
    pub worker: &'a str,
    /// Now: leases that ended before it are dead.
    pub now: Timestamp,
    /// Until when the claims hold unrenewed.
    pub lease_until: Timestamp,
    /// The most of the app's requests running at once, across servers.
    pub running: i64,
    /// The most requests to claim (the worker's free slots).
    pub want: u32,
    /// Also take over requests whose claimer's lease ran out (and complete
    /// as cancelled those a cancel was asked for): the periodic sweep does,
    /// a wake-up for a new request need not look.
    pub take_over: bool,
}

/// What [`QueueStore::claim_many`] got.
#[derive(Debug, Clone, Default)]
pub struct Claims {
    /// The requests now held, those taken over first, then in queue order.
    pub requests: Vec<Claimed>,
    /// No waiting request was left behind: fewer were claimed than the
    /// app's running limit and `want` allowed. `false` when the limit or
    /// `want` stopped the claim (more may wait).
    pub exhausted: bool,
}

/// What a status answer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueView {
    /// The id.
    pub request_id: String,
    /// Whose (only they may see it).
    pub user_id: UserId,
    /// The app's owner.
    pub owner: String,
    /// The app's name.
    pub name: String,
    /// Where it is.
    pub status: QueueStatus,
    /// A cancel was asked for.
    pub cancel_requested: bool,
    /// Accepted at.
    pub created_at: Timestamp,
    /// Claimed at (latest claim).
    pub started_at: Option<Timestamp>,
    /// Completed at.
    pub completed_at: Option<Timestamp>,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// The kind of failure (`cancelled`, `upstream_error`, …).
    pub error_type: Option<String>,
}

/// A completed request's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueResult {
    /// The model's HTTP status (or ours, when the call failed).
    pub status_code: i64,
    /// Its `Content-Type`.
    pub content_type: Option<String>,
    /// The body when kept in the row.
    pub body: Option<Vec<u8>>,
    /// The file (name under the data directory's results folder) holding
    /// the body when it was too large for a row.
    pub file: Option<String>,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// The kind of failure.
    pub error_type: Option<String>,
}

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// It was waiting: completed as cancelled, it never reaches the model.
    WasQueued,
    /// It is running: its worker drops the call.
    WasRunning,
    /// Too late.
    AlreadyCompleted,
    /// No such request.
    NotFound,
}

/// A webhook due for (another) attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDue {
    /// The request.
    pub request_id: String,
    /// The URL.
    pub url: String,
    /// Attempts made so far.
    pub attempts: i64,
}

/// The queue's storage.
#[async_trait]
pub trait QueueStore: Send + Sync {
    /// Stores a request (and, on PostgreSQL, wakes the servers); returns
    /// its queue position (see [`QueueStore::enqueue_many`]).
    async fn enqueue(&self, request: &NewQueued) -> Result<u64, StoreError>;
    /// Stores several requests, all or none, in one commit (on SQLite, one
    /// sync to disk) for all of them, and one wake-up per app on
    /// PostgreSQL. Returns each one's queue position as it was stored: how
    /// many waiting requests of its app, stored before it, have its
    /// priority or a more urgent one (requests stored in the same
    /// millisecond may then run in another order: by id).
    async fn enqueue_many(&self, requests: &[NewQueued]) -> Result<Vec<u64>, StoreError>;
    /// A request's state.
    async fn queue_view(&self, request_id: &str) -> Result<Option<QueueView>, StoreError>;
    /// How many requests for the same app would run before this waiting one.
    async fn queue_position(&self, request_id: &str) -> Result<u64, StoreError>;
    /// The apps with waiting requests, or running ones whose lease ran out
    /// before `now`.
    async fn apps_with_work(&self, now: Timestamp) -> Result<Vec<(String, String)>, StoreError>;
    /// Claims up to `ask.want` requests of an app for a worker (see
    /// [`ClaimAsk`]): the oldest waiting ones (normal before low) and, when
    /// `ask.take_over`, first those whose claimer's lease ran out; never
    /// more than leave `ask.running` of the app's requests under live
    /// claims across every server. At most one worker ever holds a request.
    async fn claim_many(&self, ask: ClaimAsk<'_>) -> Result<Claims, StoreError>;
    /// Claims the next request of `owner/name` for `worker` until
    /// `lease_until` (one [`QueueStore::claim_many`] that also takes over
    /// requests whose lease ran out before `now`).
    async fn claim(
        &self,
        app: (&str, &str),
        worker: &str,
        now: Timestamp,
        lease_until: Timestamp,
        running: i64,
    ) -> Result<Option<Claimed>, StoreError> {
        let ask = ClaimAsk {
            app,
            worker,
            now,
            lease_until,
            running,
            want: 1,
            take_over: true,
        };
        Ok(self.claim_many(ask).await?.requests.pop())
    }
    /// Extends `worker`'s lease; `None` when it no longer holds the
    /// request, else whether a cancel was asked for.
    async fn renew_claim(
        &self,
        request_id: &str,
        worker: &str,
        lease_until: Timestamp,
    ) -> Result<Option<bool>, StoreError>;
    /// Completes requests `worker` holds, each with its answer, in one
    /// write; for each, false when the worker no longer holds it (another
    /// took it over), so a request completes exactly once.
    async fn complete_many(
        &self,
        worker: &str,
        done: &[(&str, &QueueResult)],
        at: Timestamp,
    ) -> Result<Vec<bool>, StoreError>;
    /// Completes one request (see [`QueueStore::complete_many`]).
    async fn complete(
        &self,
        request_id: &str,
        worker: &str,
        result: &QueueResult,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = self
            .complete_many(worker, &[(request_id, result)], at)
            .await?;
        Ok(done.first().copied().unwrap_or(false))
    }
    /// Cancels a request.
    async fn cancel(&self, request_id: &str, at: Timestamp) -> Result<CancelOutcome, StoreError>;
    /// A completed request's answer.
    async fn queue_result(&self, request_id: &str) -> Result<Option<QueueResult>, StoreError>;
    /// Webhooks due at `now`, at most `limit`.
    async fn due_webhooks(&self, now: Timestamp, limit: u32)
    -> Result<Vec<WebhookDue>, StoreError>;
    /// Records a webhook attempt: delivered (or given up: `next` is None
    /// and `delivered` false), or to try again at `next`.
    async fn webhook_attempted(
        &self,
        request_id: &str,
        delivered: bool,
        next: Option<Timestamp>,
    ) -> Result<(), StoreError>;
    /// Deletes requests completed before `before`; returns one entry per
    /// request deleted, with the result file it had (for the caller to
    /// delete).
    async fn prune_queue(&self, before: Timestamp) -> Result<Vec<Option<String>>, StoreError>;
}
