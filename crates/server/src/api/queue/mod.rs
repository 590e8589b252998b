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
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use fal_core::Principal;
use fal_store::queue::{CancelOutcome, NewQueued, QueueStatus, QueueView};
use serde_json::Value;

mod query;
mod shapes;

use self::query::{Base, Urls, allowed_on_request, logs_wanted, method_not_allowed, split_webhook};
use self::shapes::{
    AlreadyCompleted, Cancelled, LogLine, Metrics, StatusBody, StatusEvent, Submitted,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::ModelCaller;
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
        // A request's own paths: a POST there is a client's mistake (POST
        // for GET), not a new call to queue and pay for.
        (_, [_, _, "requests", rest @ ..]) => match allowed_on_request(rest) {
            Some(allow) => Ok(method_not_allowed(&method, allow)),
            None => Err(ApiError::NotFound(
                "A request's paths are …/requests/ID, …/status, …/status/stream and …/cancel"
                    .into(),
            )),
        },
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
        (_, [owner, name, ..]) if !owner.is_empty() && !name.is_empty() => {
            Ok(method_not_allowed(&method, "POST"))
        }
        _ => Err(ApiError::NotFound(
            "Queue a call at POST /queue/OWNER/NAME[/PATH]".into(),
        )),
    }
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

/// Queues a call to the app (answered with where to follow it).
#[utoipa::path(
    post,
    path = "/queue/{owner}/{name}",
    tag = "gateway",
    operation_id = "queue_submit",
    params(
        ("owner" = String, Path), ("name" = String, Path),
        ("fal_webhook" = Option<String>, Query, description = "A URL to POST the result to when done"),
        ("X-Fal-Queue-Priority" = Option<String>, Header, description = "`normal` (default) or `low`"),
        ("X-Fal-Request-Timeout" = Option<String>, Header, description = "Seconds it may wait to start"),
    ),
    request_body(content = Object, description = "The model's input, passed on as sent (any content type; a path after NAME is passed on too)"),
    security(("key" = []), ("session" = []), ("app_token" = []), ("app_token_query" = [])),
    responses(
        (
            status = 200,
            description = "Queued (`x-fal-request-id`)",
            body = Submitted,
            links(
                ("Status" = (operation_id = "queue_status", parameters(("owner" = "$request.path.owner"), ("name" = "$request.path.name"), ("request_id" = "$response.body#/request_id")))),
                ("Stream" = (operation_id = "queue_status_stream", parameters(("owner" = "$request.path.owner"), ("name" = "$request.path.name"), ("request_id" = "$response.body#/request_id")))),
                ("Result" = (operation_id = "queue_result", parameters(("owner" = "$request.path.owner"), ("name" = "$request.path.name"), ("request_id" = "$response.body#/request_id")))),
                ("Cancel" = (operation_id = "queue_cancel", parameters(("owner" = "$request.path.owner"), ("name" = "$request.path.name"), ("request_id" = "$response.body#/request_id")))),
            )
        ),
        (status = 400, description = "A bad priority, timeout or path", body = ErrorBody),
        (status = 403, description = "A token of other apps (`app_not_allowed`), or a webhook to an internal address (`webhook_refused`)", body = ErrorBody),
        (status = 404, description = "No such app", body = ErrorBody),
    )
)]
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
    let answer = Submitted {
        status: "IN_QUEUE",
        urls: base.urls(&app.owner, &app.name, &request_id),
        request_id: request_id.clone(),
        queue_position: position,
    };
    let mut response = Json(answer).into_response();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(X_FAL_REQUEST_ID, v);
    }
    Ok(response)
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
    let mut out = StatusBody {
        status: view.status.as_str(),
        request_id: view.request_id.clone(),
        urls: base.urls(&view.owner, &view.name, &view.request_id),
        logs: logs.then(|| log_lines(view)),
        queue_position: None,
        metrics: None,
        error: None,
        error_type: None,
    };
    match view.status {
        QueueStatus::InQueue => {
            out.queue_position = Some(queue.position(&view.request_id).await?);
        }
        QueueStatus::InProgress => {}
        QueueStatus::Completed => {
            let took = match (view.started_at, view.completed_at) {
                (Some(s), Some(c)) => (c.millis() - s.millis()).max(0) as f64 / 1000.0,
                _ => 0.0,
            };
            out.metrics = Some(Metrics {
                inference_time: took,
            });
            if let Some(e) = &view.error {
                out.error = Some(e.clone());
                out.error_type = Some(view.error_type.clone());
            }
        }
    }
    serde_json::to_value(out).map_err(|e| ApiError::Internal(e.to_string()))
}

/// The gateway's own log lines for a request (fal's log shape).
fn log_lines(view: &QueueView) -> Vec<LogLine> {
    let line = |message: String, at: fal_core::Timestamp, level: &'static str| LogLine {
        message,
        level,
        source: "fal",
        timestamp: at.to_rfc3339(),
    };
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
    lines
}

/// A queued request's status.
#[utoipa::path(
    get,
    path = "/queue/{owner}/{name}/requests/{request_id}/status",
    tag = "gateway",
    operation_id = "queue_status",
    params(("owner" = String, Path), ("name" = String, Path), ("request_id" = String, Path), ("logs" = Option<String>, Query, description = "`1` or `true` for the log lines")),
    security(("key" = []), ("session" = []), ("app_token" = []), ("app_token_query" = [])),
    responses(
        (status = 200, description = "`COMPLETED`", body = StatusBody),
        (status = 202, description = "`IN_QUEUE` or `IN_PROGRESS`", body = StatusBody),
        (status = 404, description = "No such request of the caller's", body = ErrorBody),
    )
)]
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

/// The status as server-sent events until it completes.
#[utoipa::path(
    get,
    path = "/queue/{owner}/{name}/requests/{request_id}/status/stream",
    tag = "gateway",
    operation_id = "queue_status_stream",
    params(("owner" = String, Path), ("name" = String, Path), ("request_id" = String, Path), ("logs" = Option<String>, Query, description = "`1` or `true` for the log lines")),
    security(("key" = []), ("session" = []), ("app_token" = []), ("app_token_query" = [])),
    responses(
        (status = 200, description = "One `data:` event (a status, with only new log lines) per change, closed after `COMPLETED`", content_type = "text/event-stream", body = StatusEvent),
        (status = 404, description = "No such request of the caller's", body = ErrorBody),
    )
)]
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

/// A completed request's answer, with the app's own status and content type.
#[utoipa::path(
    get,
    path = "/queue/{owner}/{name}/requests/{request_id}",
    tag = "gateway",
    operation_id = "queue_result",
    params(("owner" = String, Path), ("name" = String, Path), ("request_id" = String, Path)),
    security(("key" = []), ("session" = []), ("app_token" = []), ("app_token_query" = [])),
    responses(
        (status = 400, description = "Not completed yet (`not_completed`)", body = ErrorBody),
        (status = 404, description = "No such request of the caller's", body = ErrorBody),
        (status = "default", description = "The app's answer as kept: its status, content type and body (a cancelled request's is 499 `cancelled`)"),
    )
)]
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

/// Cancels a request that is waiting or running.
#[utoipa::path(
    put,
    path = "/queue/{owner}/{name}/requests/{request_id}/cancel",
    tag = "gateway",
    operation_id = "queue_cancel",
    params(("owner" = String, Path), ("name" = String, Path), ("request_id" = String, Path)),
    security(("key" = []), ("session" = []), ("app_token" = []), ("app_token_query" = [])),
    responses(
        (status = 202, description = "It will complete with a cancellation error", body = Cancelled),
        (status = 400, description = "Already completed", body = AlreadyCompleted),
        (status = 404, description = "No such request of the caller's", body = ErrorBody),
    )
)]
async fn cancel(queue: &Queue, principal: &Principal, id: &str) -> Result<Response, ApiError> {
    visible(queue, principal, id).await?;
    Ok(match queue.cancel(id).await? {
        CancelOutcome::WasQueued | CancelOutcome::WasRunning => (
            StatusCode::ACCEPTED,
            Json(Cancelled {
                status: "CANCELLATION_REQUESTED",
            }),
        )
            .into_response(),
        CancelOutcome::AlreadyCompleted => (
            StatusCode::BAD_REQUEST,
            Json(AlreadyCompleted {
                status: "ALREADY_COMPLETED",
                detail: "The request has already completed: there is nothing to cancel",
                code: "already_completed",
            }),
        )
            .into_response(),
        CancelOutcome::NotFound => return Err(not_found(id)),
    })
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(submit_request, status, stream, result, cancel))]
pub(super) struct Doc;
