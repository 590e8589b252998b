//! What the queue's handlers read from a request: the base URL clients
//! reach the queue at, `?logs=`, and `?fal_webhook=` taken out of the
//! query the model gets.

use axum::http::header::{ALLOW, HOST};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::ApiError;
use crate::extract::query_without_token;
use crate::queue::Queue;
use crate::state::AppState;

/// The absolute base clients reach the queue at: `--public-url`, else the
/// request's `Host` and this server's scheme.
pub(super) struct Base(String);

/// Where a queued request's status, answer and cancellation are.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Urls {
    /// `GET` it for the answer.
    response_url: String,
    /// `GET` it for the status.
    status_url: String,
    /// `PUT` it to cancel.
    cancel_url: String,
}

impl Base {
    pub(super) fn of(state: &AppState, headers: &HeaderMap, queue: &Queue) -> Base {
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

    pub(super) fn urls(&self, owner: &str, name: &str, id: &str) -> Urls {
        let at = format!("{}/queue/{owner}/{name}/requests/{id}", self.0);
        Urls {
            status_url: format!("{at}/status"),
            cancel_url: format!("{at}/cancel"),
            response_url: at,
        }
    }
}

/// The method a request's path (after `requests/`) serves, if it is one.
pub(super) fn allowed_on_request(rest: &[&str]) -> Option<&'static str> {
    match rest {
        [_] | [_, "status"] | [_, "status", "stream"] => Some("GET"),
        [_, "cancel"] => Some("PUT"),
        _ => None,
    }
}

/// A 405 naming, as RFC 9110 wants, the method `allow` that is served.
pub(super) fn method_not_allowed(method: &Method, allow: &'static str) -> Response {
    let mut refused = ApiError::Status {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        detail: format!("{method} is not served here: {allow} is"),
    }
    .into_response();
    refused
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    refused
}

pub(super) fn logs_wanted(query: Option<&str>) -> bool {
    query
        .unwrap_or_default()
        .split('&')
        .filter_map(|p| p.split_once('='))
        .any(|(k, v)| k == "logs" && matches!(v, "1" | "true" | "True"))
}

/// `fal_webhook`, and the rest of the query (for the model).
pub(super) fn split_webhook(query: Option<&str>) -> (Option<String>, Option<String>) {
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
