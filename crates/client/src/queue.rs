//! The queue (`/queue/OWNER/NAME…`): [`Client::submit`], [`Client::status`],
//! [`Client::status_stream`], [`Client::result`], [`Client::cancel`].

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::{Client, ClientError, EventStream, RunResponse, split_app};

/// The answer to a submit.
#[derive(Debug, Clone, Deserialize)]
pub struct Submitted {
    /// The request's id.
    pub request_id: String,
    /// `IN_QUEUE`.
    pub status: String,
    /// Requests ahead of this one (0: next).
    #[serde(default)]
    pub queue_position: Option<u64>,
    /// Where the answer will be.
    pub response_url: String,
    /// Where its status is.
    pub status_url: String,
    /// Where to cancel it.
    pub cancel_url: String,
}

/// One log line of a queued request.
#[derive(Debug, Clone, Deserialize)]
pub struct LogLine {
    /// The text.
    pub message: String,
    /// `INFO`, `ERROR`, ….
    #[serde(default)]
    pub level: String,
    /// RFC 3339.
    #[serde(default)]
    pub timestamp: String,
}

/// A queued request's status, as `…/status` and each status-stream event
/// give it.
#[derive(Debug, Clone, Deserialize)]
pub struct QueueStatus {
    /// `IN_QUEUE`, `IN_PROGRESS` or `COMPLETED`.
    pub status: String,
    /// For `IN_QUEUE`.
    #[serde(default)]
    pub queue_position: Option<u64>,
    /// Log lines, when asked for (on a stream: only the new ones).
    #[serde(default)]
    pub logs: Option<Vec<LogLine>>,
    /// For a request completed with an error: what went wrong.
    #[serde(default)]
    pub error: Option<String>,
    /// And its kind (e.g. `cancelled`).
    #[serde(default)]
    pub error_type: Option<String>,
}

impl QueueStatus {
    /// Whether the request is done (its answer, or error, is kept).
    pub fn is_completed(&self) -> bool {
        self.status == "COMPLETED"
    }
}

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// The request was waiting or running; it completes with an error.
    Requested,
    /// The request had already completed; nothing changed.
    AlreadyCompleted,
}

/// A request's status changes, read off `…/status/stream` as they come.
pub struct StatusStream(EventStream);

impl StatusStream {
    /// The next status, or `None` once the server closed the stream (it
    /// does after `COMPLETED`).
    pub async fn next_status(&mut self) -> Result<Option<QueueStatus>, ClientError> {
        match self.0.next_event().await? {
            None => Ok(None),
            Some(data) => serde_json::from_str(&data)
                .map(Some)
                .map_err(|e| ClientError::Decode(format!("a status event: {e}"))),
        }
    }
}

fn requests_path(app: &str, id: &str) -> Result<String, ClientError> {
    let (owner, name) = split_app(app)?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(ClientError::Usage(format!(
            "a request id is letters, digits and dashes, not {id:?}"
        )));
    }
    Ok(format!("/queue/{owner}/{name}/requests/{id}"))
}

impl Client {
    /// `POST /queue/OWNER/NAME` with a JSON body; `webhook`, when given, is
    /// called with the answer once it is ready (`?fal_webhook=`).
    pub async fn submit(
        &self,
        app: &str,
        json_body: Vec<u8>,
        webhook: Option<&str>,
    ) -> Result<Submitted, ClientError> {
        let (owner, name) = split_app(app)?;
        let mut req = self
            .request(Method::POST, &format!("/queue/{owner}/{name}"))
            .await?
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json_body);
        if let Some(url) = webhook {
            req = req.query(&[("fal_webhook", url)]);
        }
        self.send(req).await
    }

    /// `GET …/requests/ID/status[?logs=1]`.
    pub async fn status(
        &self,
        app: &str,
        id: &str,
        logs: bool,
    ) -> Result<QueueStatus, ClientError> {
        let path = format!("{}/status", requests_path(app, id)?);
        let req = self
            .request(Method::GET, &path)
            .await?
            .query(&[("logs", if logs { "1" } else { "0" })]);
        self.send(req).await
    }

    /// `GET …/requests/ID/status/stream[?logs=1]`: each status change as
    /// it happens, ending with `COMPLETED`.
    pub async fn status_stream(
        &self,
        app: &str,
        id: &str,
        logs: bool,
    ) -> Result<StatusStream, ClientError> {
        let path = format!("{}/status/stream", requests_path(app, id)?);
        let req = self
            .request(Method::GET, &path)
            .await?
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .query(&[("logs", if logs { "1" } else { "0" })]);
        Ok(StatusStream(EventStream::new(self.send_raw(req).await?)?))
    }

    /// `GET …/requests/ID`: the kept answer. The model's own error status
    /// (or ours, e.g. for a cancelled request) is [`ClientError::Api`] with
    /// its detail.
    pub async fn result(&self, app: &str, id: &str) -> Result<RunResponse, ClientError> {
        let req = self.request(Method::GET, &requests_path(app, id)?).await?;
        self.read_answer(self.send_raw(req).await?).await
    }

    /// `PUT …/requests/ID/cancel`.
    pub async fn cancel(&self, app: &str, id: &str) -> Result<Cancelled, ClientError> {
        let path = format!("{}/cancel", requests_path(app, id)?);
        let req = self.request(Method::PUT, &path).await?;
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        if resp.status() == StatusCode::BAD_REQUEST {
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            if body["status"] == "ALREADY_COMPLETED" {
                return Ok(Cancelled::AlreadyCompleted);
            }
            return Err(ClientError::Api {
                status: 400,
                detail: body["detail"].as_str().unwrap_or("Bad Request").to_owned(),
                code: body["code"].as_str().map(str::to_owned),
            });
        }
        let resp = self.check(resp).await?;
        let body: Value = resp
            .json()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        match body["status"].as_str() {
            Some("CANCELLATION_REQUESTED") => Ok(Cancelled::Requested),
            _ => Err(ClientError::Decode(format!("a cancel answered {body}"))),
        }
    }
}
