//! The queue's JSON answers, as fal's clients parse them.

use serde::Serialize;
use utoipa::ToSchema;

use super::Urls;

/// `POST /queue/OWNER/NAME`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Submitted {
    /// `IN_QUEUE`.
    pub(super) status: &'static str,
    /// Also in `x-fal-request-id`.
    pub(super) request_id: String,
    /// Requests ahead of this one.
    pub(super) queue_position: u64,
    #[serde(flatten)]
    pub(super) urls: Urls,
}

/// A queued request's status.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusBody {
    /// `IN_QUEUE`, `IN_PROGRESS` or `COMPLETED`.
    pub(super) status: &'static str,
    pub(super) request_id: String,
    #[serde(flatten)]
    pub(super) urls: Urls,
    /// The gateway's log lines with `?logs=1`; null without (always
    /// present: fal's clients need the key).
    #[schema(required = true)]
    pub(super) logs: Option<Vec<LogLine>>,
    /// Requests ahead (`IN_QUEUE` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) queue_position: Option<u64>,
    /// `COMPLETED` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) metrics: Option<Metrics>,
    /// Why it failed or was cancelled (`COMPLETED` only, when it did not succeed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<String>,
    /// With `error`: its kind, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub(super) error_type: Option<Option<String>>,
}

/// One server-sent event of the status stream, as OpenAPI 3.1 tools read
/// `text/event-stream` (axum's `Sse` writes them; this only describes them).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct StatusEvent {
    /// A `StatusBody` as JSON, carrying only the log lines not sent before.
    #[schema(content_media_type = "application/json")]
    data: String,
}

/// What a completed request took.
#[derive(Debug, Serialize, ToSchema)]
pub struct Metrics {
    /// Seconds from start to completion.
    pub(super) inference_time: f64,
}

/// One log line (fal's shape).
#[derive(Debug, Serialize, ToSchema)]
pub struct LogLine {
    pub(super) message: String,
    /// `INFO` or `ERROR`.
    pub(super) level: &'static str,
    /// `fal` (the gateway's own lines).
    pub(super) source: &'static str,
    /// RFC 3339.
    pub(super) timestamp: String,
}

/// `PUT …/cancel`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cancelled {
    /// `CANCELLATION_REQUESTED`.
    pub(super) status: &'static str,
}

/// `PUT …/cancel` on a completed request: fal's answer with our error
/// fields beside it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlreadyCompleted {
    /// `ALREADY_COMPLETED`.
    pub(super) status: &'static str,
    pub(super) detail: &'static str,
    /// `already_completed`.
    pub(super) code: &'static str,
}
