//! `/queue/…`: fal's queue API, as fal's clients call it
//! (`FAL_QUEUE_RUN_HOST=HOST/queue`):
//! - `POST /queue/OWNER/NAME[/PATH]` submits (`?fal_webhook=`,
//!   `X-Fal-Queue-Priority`, `X-Fal-Request-Timeout`, `X-Fal-Runner-Hint`);
//! - `GET …/requests/ID/status[?logs=1]`, `…/status/stream` (SSE; each
//!   event carries only the log lines not sent before, ending with COMPLETED),
//!   `GET …/requests/ID` (the stored answer), `PUT …/requests/ID/cancel`.
//!
//! A request is visible to its owner only (any of their keys): another
//! user gets the same 404 as for an unknown id. A short-lived app token
//! (`POST /tokens/`, as `Bearer` or `?fal_jwt_token=`) works for its apps'
//! requests only.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, HOST};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use fal_core::Principal;
use fal_store::queue::{CancelOutcome, NewQueued, QueueStatus, QueueView};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::extract::{ModelCaller, query_without_token};
use crate::gateway::GatewayError;
use crate::gateway::rules::may_call;
use crate::h1::headers::X_FAL_REQUEST_ID;
use crate::h1::target::tail_is_safe;
use crate::queue::webhooks::{self, WebhookError};
use crate::queue::{Queue, QueueError};
use crate::state::AppState;

/// How often a status stream looks for a change.
const STREAM_POLL: Duration = Duration::from_millis(100);

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> ApiError {
        match e {
            QueueError::Store(s) => s.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> ApiError {
        match e {
            WebhookError::Refused(_) => ApiError::Status {
                status: StatusCode::FORBIDDEN,
                code: "webhook_refused",
                detail: e.to_string(),
            },
            other => ApiError::Unprocessable(other.to_string()),
        }
    }
}

/// This server's queue (every server built by `App::build` runs one).
fn queue_of(state: &AppState) -> Result<&Queue, ApiError> {
    state
        .queue()
        .ok_or_else(|| ApiError::Internal("the queue is not running on this server".into()))
}

/// Every `/queue/…` request.
pub async fn handle(
    State(state): State<AppState>,
    ModelCaller(principal): ModelCaller,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let queue = queue_of(&state)?;
    let path = uri.path().strip_prefix("/queue/").unwrap_or_default();
    let parts: Vec<&str> = path.split('/').collect();
    let base = Base::of(&state, &headers, queue);
    match (&method, parts.as_slice()) {
        (&Method::GET, [_, _, "requests", id, "status"]) => {
            let logs = logs_wanted(uri.query());
            status(queue, &principal, &base, id, logs).await
        }
        (&Method::GET, [_, _, "requests", id, "status", "stream"]) => {
            let logs = logs_wanted(uri.query());
            stream(state.clone(), principal, base, (*id).to_owned(), logs).await
        }
        (&Method::GET, [_, _, "requests", id]) => result(queue, &principal, id).await,
        (&Method::PUT, [_, _, "requests", id, "cancel"]) => cancel(queue, &principal, id).await,
        (&Method::POST, [owner, name, ..]) if !owner.is_empty() && !name.is_empty() => {
            let tail = &path[owner.len() + name.len() + 1..];
            let submit = Submit {
                owner,
                name,
                tail,
                query: uri.query(),
                headers: &headers,
                body,
            };
            submit_request(&state, queue, &principal, &base, submit).await
        }
        (_, [_, _, "requests", ..]) => Err(ApiError::Status {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "method_not_allowed",
            detail: format!("{method} is not served here: GET …/status, GET …, PUT …/cancel"),
        }),
        _ => Err(ApiError::NotFound(
            "Queue a call at POST /queue/OWNER/NAME[/PATH]".into(),
        )),
    }
}

/// The absolute base clients reach the queue at: `--public-url`, else the
/// request's `Host` and this server's scheme.
struct Base(String);

impl Base {
    fn of(state: &AppState, headers: &HeaderMap, queue: &Queue) -> Base {
        if let Some(b) = &queue.config().public_base {
            return Base(b.trim_end_matches('/').to_owned());
        }
        let scheme = if state.tls() { "https" } else { "http" };
        let host = headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
            .unwrap_or("localhost");
        Base(format!("{scheme}://{host}"))
    }

    fn urls(&self, owner: &str, name: &str, id: &str) -> Value {
        let at = format!("{}/queue/{owner}/{name}/requests/{id}", self.0);
        json!({
            "response_url": at,
            "status_url": format!("{at}/status"),
            "cancel_url": format!("{at}/cancel"),
        })
    }
}

fn logs_wanted(query: Option<&str>) -> bool {
    query
        .unwrap_or_default()
        .split('&')
        .filter_map(|p| p.split_once('='))
        .any(|(k, v)| k == "logs" && matches!(v, "1" | "true" | "True"))
}

/// What a submit carries.
struct Submit<'a> {
    owner: &'a str,
    name: &'a str,
    tail: &'a str,
    query: Option<&'a str>,
    headers: &'a HeaderMap,
    body: Bytes,
}

async fn submit_request(
    state: &AppState,
    queue: &Queue,
    principal: &Principal,
    base: &Base,
    s: Submit<'_>,
) -> Result<Response, ApiError> {
    may_call(principal, s.owner, s.name)?;
    if !tail_is_safe(s.tail) {
        return Err(crate::gateway::rules::escaping_path());
    }
    let app = state
        .apps()
        .find(s.owner, s.name)
        .await?
        .ok_or_else(|| GatewayError::UnknownApp(format!("{}/{}", s.owner, s.name)))?;
    crate::metrics::note_app(&app.owner, &app.name);
    let header = |name: &str| s.headers.get(name).and_then(|v| v.to_str().ok());
    let priority = match header("x-fal-queue-priority") {
        None | Some("normal") => 0,
        Some("low") => 1,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "X-Fal-Queue-Priority must be normal or low, not {other:?}"
            )));
        }
    };
    let timeout_ms = match header("x-fal-request-timeout") {
        None => None,
        Some(t) => match t.trim().parse::<f64>() {
            Ok(secs) if secs > 0.0 && secs.is_finite() => Some((secs * 1000.0).ceil() as i64),
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "X-Fal-Request-Timeout must be a positive number of seconds, not {t:?}"
                )));
            }
        },
    };
    let (webhook, query) = split_webhook(s.query);
    if let Some(url) = &webhook {
        webhooks::check(queue, &principal.user_id, url).await?;
    }
    let request_id = Queue::new_request_id(state.rng())?;
    let path = match query.as_deref() {
        Some(q) if !q.is_empty() => format!("{}?{q}", s.tail),
        _ => s.tail.to_owned(),
    };
    let request = NewQueued {
        request_id: request_id.clone(),
        user_id: principal.user_id.clone(),
        key_id: principal.key_id,
        owner: app.owner.clone(),
        name: app.name.clone(),
        path,
        method: "POST".into(),
        content_type: header("content-type").map(str::to_owned),
        body: s.body.to_vec(),
        priority,
        webhook,
        timeout_ms,
        created_at: queue.now(),
    };
    let position = queue.submit(&request).await?;
    let mut answer = base.urls(&app.owner, &app.name, &request_id);
    answer["status"] = "IN_QUEUE".into();
    answer["request_id"] = request_id.clone().into();
    answer["queue_position"] = position.into();
    let mut response = Json(answer).into_response();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(X_FAL_REQUEST_ID, v);
    }
    Ok(response)
}

/// `fal_webhook`, and the rest of the query (for the model).
fn split_webhook(query: Option<&str>) -> (Option<String>, Option<String>) {
    // The caller's token never reaches the model.
    let query = query_without_token(query);
    let mut webhook = None;
    let mut rest = Vec::new();
    for pair in query
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("fal_webhook", v)) => {
                webhook = Some(percent_decode(v));
            }
            _ => rest.push(pair),
        }
    }
    (webhook, (!rest.is_empty()).then(|| rest.join("&")))
}

fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("No request {id:?} found"))
}

/// The request as `principal` may see it: theirs, and, for an app token,
/// on one of its apps.
async fn visible(queue: &Queue, principal: &Principal, id: &str) -> Result<QueueView, ApiError> {
    let view = queue
        .view(principal, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    may_call(principal, &view.owner, &view.name)?;
    crate::metrics::note_app(&view.owner, &view.name);
    Ok(view)
}

/// The status JSON fal's clients parse.
async fn status_json(
    queue: &Queue,
    base: &Base,
    view: &QueueView,
    logs: bool,
) -> Result<Value, ApiError> {
    let mut out = base.urls(&view.owner, &view.name, &view.request_id);
    out["status"] = view.status.as_str().into();
    out["request_id"] = view.request_id.clone().into();
    out["logs"] = if logs { log_lines(view) } else { Value::Null };
    match view.status {
        QueueStatus::InQueue => {
            out["queue_position"] = queue.position(&view.request_id).await?.into();
        }
        QueueStatus::InProgress => {}
        QueueStatus::Completed => {
            let took = match (view.started_at, view.completed_at) {
                (Some(s), Some(c)) => (c.millis() - s.millis()).max(0) as f64 / 1000.0,
                _ => 0.0,
            };
            out["metrics"] = json!({ "inference_time": took });
            if let Some(e) = &view.error {
                out["error"] = e.clone().into();
                out["error_type"] = view.error_type.clone().into();
            }
        }
    }
    Ok(out)
}

/// The gateway's own log lines for a request (fal's log shape).
fn log_lines(view: &QueueView) -> Value {
    let line = |message: String, at: fal_core::Timestamp, level: &str| json!({"message": message, "level": level, "source": "fal", "timestamp": at.to_rfc3339()});
    let mut lines = Vec::new();
    if let Some(at) = view.started_at {
        lines.push(line(
            format!("Started on {}/{}", view.owner, view.name),
            at,
            "INFO",
        ));
    }
    if let Some(at) = view.completed_at {
        match &view.error {
            None => lines.push(line("Completed".into(), at, "INFO")),
            Some(e) => lines.push(line(format!("Failed: {e}"), at, "ERROR")),
        }
    }
    Value::Array(lines)
}

async fn status(
    queue: &Queue,
    principal: &Principal,
    base: &Base,
    id: &str,
    logs: bool,
) -> Result<Response, ApiError> {
    let view = visible(queue, principal, id).await?;
    let body = status_json(queue, base, &view, logs).await?;
    let code = match view.status {
        QueueStatus::Completed => StatusCode::OK,
        _ => StatusCode::ACCEPTED,
    };
    Ok((code, Json(body)).into_response())
}

async fn stream(
    state: AppState,
    principal: Principal,
    base: Base,
    id: String,
    logs: bool,
) -> Result<Response, ApiError> {
    let queue = queue_of(&state)?;
    visible(queue, &principal, &id).await?;
    // Each event carries the log lines not sent before (fal's clients add
    // them up: @fal-ai/client's subscribe appends each event's `logs`), and
    // one is sent when the status changed or new lines came.
    let events = futures_util::stream::unfold(
        (state, principal, base, id, None::<String>, 0usize, false),
        move |(state, principal, base, id, last, sent, done)| async move {
            if done {
                return None;
            }
            loop {
                let queue = state.queue()?;
                let view = queue.view(&principal, &id).await.ok()??;
                let mut body = status_json(queue, &base, &view, logs).await.ok()?;
                let lines = match body["logs"].take() {
                    Value::Array(all) => Some(all),
                    _ => None,
                };
                let shape = body.to_string();
                let new: Vec<Value> = lines.iter().flatten().skip(sent).cloned().collect();
                if last.as_deref() != Some(shape.as_str()) || !new.is_empty() {
                    let sent = sent + new.len();
                    body["logs"] = lines.map(|_| Value::Array(new)).unwrap_or(Value::Null);
                    let finished = view.status == QueueStatus::Completed;
                    let event: Result<Event, Infallible> =
                        Ok(Event::default().data(body.to_string()));
                    let next = (state, principal, base, id, Some(shape), sent, finished);
                    return Some((event, next));
                }
                tokio::time::sleep(STREAM_POLL).await;
            }
        },
    );
    let keep_alive = KeepAlive::new().interval(Duration::from_secs(15));
    Ok(Sse::new(events).keep_alive(keep_alive).into_response())
}

async fn result(queue: &Queue, principal: &Principal, id: &str) -> Result<Response, ApiError> {
    let view = visible(queue, principal, id).await?;
    if view.status != QueueStatus::Completed {
        return Err(ApiError::Status {
            status: StatusCode::BAD_REQUEST,
            code: "not_completed",
            detail: "Request is still in progress: its result is not ready yet".into(),
        });
    }
    let r = queue.result(id).await?.ok_or_else(|| not_found(id))?;
    let status = u16::try_from(r.status_code)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, r.body.unwrap_or_default()).into_response();
    if let Some(ct) = r.content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(CONTENT_TYPE, ct);
    }
    if let Ok(v) = HeaderValue::from_str(id) {
        response.headers_mut().insert(X_FAL_REQUEST_ID, v);
    }
    Ok(response)
}

async fn cancel(queue: &Queue, principal: &Principal, id: &str) -> Result<Response, ApiError> {
    visible(queue, principal, id).await?;
    Ok(match queue.cancel(id).await? {
        CancelOutcome::WasQueued | CancelOutcome::WasRunning => (
            StatusCode::ACCEPTED,
            Json(json!({"status": "CANCELLATION_REQUESTED"})),
        )
            .into_response(),
        CancelOutcome::AlreadyCompleted => (
            StatusCode::BAD_REQUEST,
            // fal's answer, with our error fields beside it.
            Json(json!({
                "status": "ALREADY_COMPLETED",
                "detail": "The request has already completed: there is nothing to cancel",
                "code": "already_completed",
            })),
        )
            .into_response(),
        CancelOutcome::NotFound => return Err(not_found(id)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_webhook_is_taken_out_of_the_query_and_decoded() {
        let (hook, rest) = split_webhook(Some(
            "a=1&fal_webhook=https%3A%2F%2Fh.example%2Fx%3Fy%3D1&b=2",
        ));
        assert_eq!(hook.as_deref(), Some("https://h.example/x?y=1"));
        assert_eq!(rest.as_deref(), Some("a=1&b=2"));
        assert_eq!(split_webhook(None), (None, None));
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn logs_are_wanted_only_when_asked() {
        assert!(logs_wanted(Some("logs=1")));
        assert!(logs_wanted(Some("x=2&logs=true")));
        assert!(!logs_wanted(Some("logs=0")));
        assert!(!logs_wanted(Some("logs=false")));
        assert!(!logs_wanted(None));
    }
}
