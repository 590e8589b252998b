//! Webhooks (`?fal_webhook=URL` on a submit): when the request completes,
//! its result is `POST`ed to the URL as fal sends it (`{"request_id",
//! "gateway_request_id", "status": "OK"|"ERROR", "payload"}`), retried with
//! backoff for a bounded time, from their own task, so an unreachable
//! webhook never holds up the queue. The schedule is stored with the
//! request, so deliveries survive a restart.
//!
//! Webhook URLs get the same stance as app upstreams (`crate::addresses`):
//! checked when submitted and again at every connection, only global
//! addresses unless the submitting user is an operator.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::{Method, Request, Uri};
use fal_core::{Timestamp, UserId};
use fal_store::queue::{QueueStore, WebhookDue};

use super::Queue;
use crate::gateway::reach::{refusal_in, resolve};

/// Attempts before a webhook is given up.
pub const MAX_ATTEMPTS: i64 = 10;
/// Longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// How long one attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a webhook URL is refused at submit.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Not an absolute `http(s)` URL.
    #[error("fal_webhook must be an absolute http:// or https:// URL, not {0:?}")]
    Malformed(String),
    /// Its host does not resolve.
    #[error("fal_webhook's host {0} does not resolve")]
    Unresolved(String),
    /// It points somewhere this user's webhooks may not go.
    #[error("fal_webhook is refused: {0}")]
    Refused(String),
}

/// Checks a webhook URL for `user` (see the module's documentation).
pub async fn check(queue: &Queue, user: &UserId, url: &str) -> Result<Uri, WebhookError> {
    let malformed = || WebhookError::Malformed(url.to_owned());
    let uri: Uri = url.parse().map_err(|_| malformed())?;
    let port = match uri.scheme_str() {
        Some("http") => uri.port_u16().unwrap_or(80),
        Some("https") => uri.port_u16().unwrap_or(443),
        _ => return Err(malformed()),
    };
    let host = uri.host().ok_or_else(malformed)?.trim_matches(['[', ']']);
    let reach = queue.upstream.policy().reach_of_user(user).await;
    match resolve(host, port, reach).await {
        Ok(_) => Ok(uri),
        Err(e) => match refusal_in(&e) {
            Some(r) => Err(WebhookError::Refused(r.detail.clone())),
            None => Err(WebhookError::Unresolved(host.to_owned())),
        },
    }
}

/// Delivers due webhooks until the task is dropped.
pub async fn run(queue: Arc<Queue>) {
    let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
    loop {
        let due = queue
            .store
            .due_webhooks(queue.clock.now(), 64)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "could not look for due webhooks");
                Vec::new()
            });
        for hook in due {
            let fresh = in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(hook.request_id.clone());
            if !fresh {
                continue;
            }
            let (queue, in_flight) = (queue.clone(), in_flight.clone());
            tokio::spawn(async move {
                let id = hook.request_id.clone();
                queue.deliver(hook).await;
                in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
            });
        }
        tokio::select! {
            () = queue.webhooks_due.notified() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// The wait after `attempts` failed attempts: 1 s, 2 s, 4 s… up to
/// [`MAX_BACKOFF`]; `None` once [`MAX_ATTEMPTS`] have failed.
pub fn backoff(attempts: i64) -> Option<Duration> {
    if attempts >= MAX_ATTEMPTS {
        return None;
    }
    let secs = 1u64 << attempts.clamp(0, 20);
    Some(Duration::from_secs(secs).min(MAX_BACKOFF))
}

impl Queue {
    /// One attempt at `hook`, and its outcome recorded.
    async fn deliver(&self, hook: WebhookDue) {
        let delivered = match self.attempt(&hook).await {
            Ok(()) => true,
            Err(why) => {
                tracing::info!(request_id = %hook.request_id, attempt = hook.attempts + 1, %why, "webhook not delivered");
                false
            }
        };
        let next = if delivered {
            None
        } else {
            backoff(hook.attempts + 1).map(|wait| {
                let ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
                Timestamp(self.clock.now().millis().saturating_add(ms))
            })
        };
        if !delivered && next.is_none() {
            tracing::warn!(request_id = %hook.request_id, "webhook given up after {MAX_ATTEMPTS} attempts");
        }
        let store: &dyn QueueStore = self.store.as_ref();
        if let Err(e) = store
            .webhook_attempted(&hook.request_id, delivered, next)
            .await
        {
            tracing::warn!(error = %e, "could not record a webhook attempt");
        }
    }

    async fn attempt(&self, hook: &WebhookDue) -> Result<(), String> {
        let view = self
            .store
            .queue_view(&hook.request_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the request is gone")?;
        let result = self
            .result(&hook.request_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the request has no result")?;
        let payload: serde_json::Value = result
            .body
            .as_deref()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(serde_json::Value::Null);
        let mut body = serde_json::json!({
            "request_id": hook.request_id,
            "gateway_request_id": hook.request_id,
            "status": if result.error.is_none() { "OK" } else { "ERROR" },
            "payload": payload,
        });
        if let Some(e) = &result.error {
            body["error"] = e.clone().into();
        }
        let uri: Uri = hook.url.parse().map_err(|_| "bad URL")?;
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .map_err(|e| e.to_string())?;
        let reach = self.upstream.policy().reach_of_user(&view.user_id).await;
        let sent = tokio::time::timeout(ATTEMPT_TIMEOUT, self.upstream.request(request, reach));
        match sent.await {
            Err(_) => Err("timed out".into()),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(r)) if r.status().is_success() => Ok(()),
            Ok(Ok(r)) => Err(format!("answered {}", r.status())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap_then_gives_up() {
        let waits: Vec<u64> = (0..MAX_ATTEMPTS)
            .map(|a| backoff(a).unwrap().as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]);
        assert_eq!(backoff(MAX_ATTEMPTS), None);
        assert_eq!(backoff(9), Some(Duration::from_secs(512)));
    }
}
