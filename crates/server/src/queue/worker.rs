//! This server's queue workers: claim the waiting requests of each app (at
//! most the app's `concurrency` at once across the cluster, else
//! [`super::QueueConfig::concurrency`]), call the
//! app through the same gateway as `/run`, renew the claim while the call
//! runs (dropping it when a cancel is asked for, or the claim was lost),
//! and store the answer.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use fal_core::{Principal, Scope, Timestamp};
use fal_store::AppRecord;
use fal_store::queue::{ClaimAsk, Claimed, NewQueued, QueueResult};

use super::Queue;
use crate::error::ApiError;
use crate::gateway::forward::{forward, target};

/// How often the workers look for work without being woken: for requests
/// whose claimer died (their lease ran out), and wake-ups that were lost.
pub const SWEEP_EVERY: Duration = Duration::from_secs(2);

/// Largest answer a worker keeps.
pub const MAX_ANSWER: usize = 512 * 1024 * 1024;

/// Runs the workers until the task is dropped.
pub async fn run(queue: Arc<Queue>) {
    loop {
        queue.dispatch().await;
        tokio::select! {
            () = queue.wake.notified() => {}
            () = tokio::time::sleep(SWEEP_EVERY) => {
                queue.sweep.store(true, std::sync::atomic::Ordering::Release);
            }
        }
    }
}

/// Why a running call was stopped before it answered.
enum Stopped {
    /// A cancel was asked for.
    Cancelled,
    /// Another server took the request over (this one's lease ran out).
    Lost,
}

impl Queue {
    /// Claims what this server has room for.
    async fn dispatch(self: &Arc<Self>) {
        let mut apps = std::mem::take(&mut *self.hints.lock().unwrap_or_else(|p| p.into_inner()));
        let sweeping = self.sweep.swap(false, std::sync::atomic::Ordering::AcqRel);
        if sweeping {
            match self.store.apps_with_work(self.clock.now()).await {
                Ok(all) => {
                    for app in all {
                        if !apps.contains(&app) {
                            apps.push(app);
                        }
                    }
                }
                Err(e) => {
                    self.sweep.store(true, std::sync::atomic::Ordering::Release);
                    tracing::warn!(error = %e, "could not look for queued requests");
                }
            }
        }
        for (owner, name) in apps {
            // The app's own limit, else the servers' default; an app gone
            // since gets the default (its requests end as a 404).
            let limit = match self.apps.find(&owner, &name).await {
                Ok(Some(app)) => app.concurrency.and_then(|n| usize::try_from(n).ok()),
                _ => None,
            }
            .unwrap_or(self.config.concurrency)
            .max(1);
            let want = self.take_slots(&owner, &name, limit);
            if want == 0 {
                continue;
            }
            let now = self.clock.now();
            let ask = ClaimAsk {
                app: (&owner, &name),
                worker: &self.worker_id,
                now,
                lease_until: self.lease_from(now),
                running: i64::try_from(limit).unwrap_or(i64::MAX),
                want: u32::try_from(want).unwrap_or(u32::MAX),
                take_over: sweeping,
            };
            let claims = match self.store.claim_many(ask).await {
                Ok(claims) => claims,
                Err(e) => {
                    // Tried again when a slot frees, or at the next sweep.
                    self.settle_slots(&owner, &name, want, true);
                    tracing::warn!(error = %e, "could not claim queued requests");
                    continue;
                }
            };
            let unused = want.saturating_sub(claims.requests.len());
            if self.settle_slots(&owner, &name, unused, !claims.exhausted) {
                self.wake_app(&owner, &name);
            }
            for c in claims.requests {
                let queue = self.clone();
                tokio::spawn(async move {
                    let (owner, name) = (c.request.owner.clone(), c.request.name.clone());
                    queue.run_one(c).await;
                    if queue.finished(&owner, &name) {
                        queue.wake_app(&owner, &name);
                    }
                });
            }
        }
    }

    fn lease_from(&self, now: Timestamp) -> Timestamp {
        now.plus_millis(i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX))
    }

    /// Takes the app's free slots (up to `limit` running here) for a
    /// claim; none left marks it as having a backlog.
    fn take_slots(&self, owner: &str, name: &str, limit: usize) -> usize {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let app = slots
            .entry((owner.to_owned(), name.to_owned()))
            .or_default();
        let free = limit.saturating_sub(app.running);
        if free == 0 {
            app.backlog = true;
            return 0;
        }
        app.running += free;
        app.claiming = true;
        app.freed_while_claiming = 0;
        free
    }

    /// Ends a claim of the app: gives back its `unused` slots, and notes
    /// whether requests may still wait (`backlog`). Returns whether the
    /// app should be looked at again at once: it has a backlog and a slot
    /// was freed while the claim ran (that request's end did not wake it).
    fn settle_slots(&self, owner: &str, name: &str, unused: usize, backlog: bool) -> bool {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let Some(app) = slots.get_mut(&(owner.to_owned(), name.to_owned())) else {
            return false;
        };
        app.running = app.running.saturating_sub(unused);
        app.backlog = backlog;
        app.claiming = false;
        backlog && app.freed_while_claiming > 0
    }

    /// A request of the app ended here: frees its slot. Returns whether
    /// requests may wait for it.
    fn finished(&self, owner: &str, name: &str) -> bool {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let Some(app) = slots.get_mut(&(owner.to_owned(), name.to_owned())) else {
            return false;
        };
        app.running = app.running.saturating_sub(1);
        if app.claiming {
            app.freed_while_claiming += 1;
        }
        app.backlog
    }

    /// Runs one claimed request to its end, and stores the answer.
    async fn run_one(&self, c: Claimed) {
        let r = &c.request;
        let waited = self
            .clock
            .now()
            .millis()
            .saturating_sub(r.created_at.millis());
        let result = match r.timeout_ms {
            // The client's X-Fal-Request-Timeout bounds the wait to start.
            Some(t) if waited > t && c.attempts == 0 => failed(
                504,
                format!("The request did not start within its timeout of {t} ms"),
                "request_timeout",
            ),
            _ => {
                let call = self.call(r);
                tokio::select! {
                    answer = call => answer,
                    stopped = self.watch_claim(&r.request_id) => match stopped {
                        Stopped::Cancelled => failed(
                            499,
                            fal_store::queue::CANCELLED.into(),
                            "cancelled",
                        ),
                        Stopped::Lost => {
                            tracing::warn!(request_id = %r.request_id, "lost the claim on a queued request; another server runs it");
                            return;
                        }
                    },
                }
            }
        };
        let result = match self.keep(&r.request_id, result).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "could not keep a queued request's answer");
                failed(500, "The answer could not be kept".into(), "internal")
            }
        };
        // Answers ready while another is being stored go in one write.
        let (store, worker, at) = (self.store.clone(), self.worker_id.clone(), self.clock.now());
        let done = self
            .answers
            .commit((r.request_id.clone(), result), move |answers| async move {
                let done: Vec<(&str, &QueueResult)> =
                    answers.iter().map(|(id, a)| (id.as_str(), a)).collect();
                store.complete_many(&worker, &done, at).await
            })
            .await;
        match done {
            // Only a request with a webhook has one to deliver.
            Ok(true) if r.webhook.is_some() => self.webhooks_due.notify_one(),
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(request_id = %r.request_id, "a queued request was completed elsewhere")
            }
            Err(e) => tracing::error!(error = %e, "could not complete a queued request"),
        }
    }

    /// Renews the claim while the call runs: returns when a cancel was
    /// asked for, or the claim was lost.
    async fn watch_claim(&self, request_id: &str) -> Stopped {
        let every = (self.config.lease / 3).min(Duration::from_secs(1));
        loop {
            tokio::time::sleep(every).await;
            let lease_until = self.lease_from(self.clock.now());
            match self
                .store
                .renew_claim(request_id, &self.worker_id, lease_until)
                .await
            {
                Ok(Some(false)) => {}
                Ok(Some(true)) => return Stopped::Cancelled,
                Ok(None) => return Stopped::Lost,
                Err(e) => tracing::warn!(error = %e, "could not renew a queue claim"),
            }
        }
    }

    /// Calls the app with the stored request, as `/run` would for its
    /// caller, if the key that queued it still may.
    async fn call(&self, r: &NewQueued) -> QueueResult {
        if let Some(refused) = self.key_refused(r).await {
            return refused;
        }
        let app = match self.apps.find(&r.owner, &r.name).await {
            Ok(Some(app)) => app,
            Ok(None) => {
                let detail = format!("No app {}/{} is registered here", r.owner, r.name);
                return failed(404, detail, "not_found");
            }
            Err(e) => {
                return failed(
                    503,
                    format!("The app could not be looked up: {e}"),
                    "unavailable",
                );
            }
        };
        match self.forward(&app, r).await {
            Ok(result) => result,
            Err(e) => {
                let status = i64::from(e.status().as_u16());
                failed(status, e.to_string(), e.code())
            }
        }
    }

    /// The answer for a request whose key was revoked (or deleted) since
    /// it was queued; `None` when it may run. A lookup that fails lets it
    /// run: the key was valid when the request was accepted.
    async fn key_refused(&self, r: &NewQueued) -> Option<QueueResult> {
        let (Some(keys), Some(key_id)) = (&self.keys, r.key_id) else {
            return None;
        };
        match keys.key_record(&key_id).await {
            Ok(Some(record)) if !record.revoked && !record.expired(self.clock.now()) => None,
            Ok(Some(record)) if !record.revoked => Some(failed(
                401,
                "The key that queued this request expired before it ran".into(),
                "key_expired",
            )),
            Ok(_) => Some(failed(
                401,
                "The key that queued this request was revoked before it ran".into(),
                "key_revoked",
            )),
            Err(e) => {
                tracing::warn!(error = %e, "could not check a queued request's key; running it");
                None
            }
        }
    }

    async fn forward(&self, app: &AppRecord, r: &NewQueued) -> Result<QueueResult, ApiError> {
        let principal = Principal {
            user_id: r.user_id.clone(),
            key_id: r.key_id,
            session_id: None,
            scope: Scope::Api,
            quota: None,
            apps: None,
        };
        let (tail, query) = match r.path.split_once('?') {
            Some((t, q)) => (t, Some(q)),
            None => (r.path.as_str(), None),
        };
        let url = target(&app.upstream, tail, query).ok_or_else(|| {
            ApiError::Internal(format!("bad upstream URL for {}/{}", app.owner, app.name))
        })?;
        let mut request = axum::http::Request::builder()
            .method(r.method.as_str())
            .uri(format!("/run/{}/{}{tail}", app.owner, app.name));
        if let Some(ct) = &r.content_type {
            request = request.header(CONTENT_TYPE, ct);
        }
        let request = request
            .body(Body::from(r.body.clone()))
            .map_err(|e| ApiError::Internal(format!("queued request: {e}")))?;
        let answer = forward(
            &self.upstream,
            app,
            &principal,
            request,
            &url,
            &r.request_id,
        )
        .await;
        let answer = answer.unwrap_or_else(IntoResponse::into_response);
        let status = answer.status().as_u16();
        let content_type = answer
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = axum::body::to_bytes(answer.into_body(), MAX_ANSWER)
            .await
            .map_err(|e| {
                ApiError::BadGateway(format!("The app's answer could not be read: {e}"))
            })?;
        let (error, error_type) = if status >= 400 {
            let (detail, code) = error_of(&body, status);
            (Some(detail), Some(code))
        } else {
            (None, None)
        };
        Ok(QueueResult {
            status_code: i64::from(status),
            content_type,
            body: Some(body.to_vec()),
            file: None,
            error,
            error_type,
        })
    }

    /// Moves a large answer's body to a file (0600, in a 0700 folder).
    async fn keep(
        &self,
        request_id: &str,
        mut result: QueueResult,
    ) -> std::io::Result<QueueResult> {
        let large = result
            .body
            .as_ref()
            .is_some_and(|b| b.len() > self.config.inline_limit);
        if !large {
            return Ok(result);
        }
        let dir = self.config.results_dir.clone();
        let name = format!("{request_id}.bin");
        let path = dir.join(&name);
        let body = result.body.take().unwrap_or_default();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            crate::files::create_private_dir(&dir)?;
            crate::files::create_private_file(&path)?;
            std::fs::write(&path, body)
        })
        .await
        .map_err(std::io::Error::other)??;
        result.file = Some(name);
        Ok(result)
    }
}

/// A failed request's answer: our JSON error shape.
fn failed(status: i64, detail: String, code: &str) -> QueueResult {
    let body = serde_json::json!({"detail": detail, "code": code}).to_string();
    QueueResult {
        status_code: status,
        content_type: Some("application/json".into()),
        body: Some(body.into_bytes()),
        file: None,
        error: Some(detail),
        error_type: Some(code.to_owned()),
    }
}

/// What a failed answer says: our `{"detail","code"}` or an app's own
/// `detail`, else its status.
fn error_of(body: &[u8], status: u16) -> (String, String) {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|j| j.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let detail = field("detail").unwrap_or_else(|| format!("The app answered {status}"));
    let code = field("code").unwrap_or_else(|| "upstream_error".into());
    (detail, code)
}
