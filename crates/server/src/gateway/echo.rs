//! The built-in demo app (`fal serve --demo`), `fal-ai/echo`.
//!
//! - Any path but `/stream`: answers with the JSON it was sent plus the
//!   caller's key id (`fal_key_id`), as the gateway reported it.
//! - `POST /stream`: answers `text/event-stream`, the way fal apps stream:
//!   [`PARTIAL_EVENTS`] partial events (`{"partial":true,"index":i,
//!   "of":n}`), then one last event that is the same output as the plain
//!   call. fal's clients take the last event as the final result.
//!
//! An input field `"sleep_ms"` (an integer from 0 to [`MAX_SLEEP_MS`]) makes
//! the app wait that long before answering, and between two events of a
//! stream, so a slow model can be watched (and, on a queue, cancelled). It
//! is echoed back like every other field.

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::h1::headers::X_FAL_KEY_ID;

/// The longest `sleep_ms` the demo app accepts: one minute.
pub const MAX_SLEEP_MS: u64 = 60_000;

/// How many partial events `/stream` sends before the final one.
pub const PARTIAL_EVENTS: u64 = 3;

/// The demo app's routes: `/stream`, and [`echo`] for every other path.
pub fn router() -> Router {
    Router::new()
        .route("/stream", axum::routing::post(stream))
        .fallback(echo)
}

/// The demo app's answer to anything but `/stream`: the JSON it was sent
/// plus `fal_key_id`, after `sleep_ms` if the input asks for it.
pub async fn echo(headers: HeaderMap, body: Bytes) -> Response {
    let (out, sleep) = match parse(&headers, &body) {
        Ok(parsed) => parsed,
        Err(detail) => return refuse(detail),
    };
    tokio::time::sleep(sleep).await;
    axum::Json(out).into_response()
}

/// `POST /stream`: partial events, then the output as the last event, with
/// `sleep_ms` between two events.
pub async fn stream(headers: HeaderMap, body: Bytes) -> Response {
    let (out, sleep) = match parse(&headers, &body) {
        Ok(parsed) => parsed,
        Err(detail) => return refuse(detail),
    };
    let events = futures_util::stream::unfold(0u64, move |i| {
        let out = out.clone();
        async move {
            if i > PARTIAL_EVENTS {
                return None;
            }
            if i > 0 {
                tokio::time::sleep(sleep).await;
            }
            let data = if i < PARTIAL_EVENTS {
                json!({"partial": true, "index": i, "of": PARTIAL_EVENTS})
            } else {
                out
            };
            Some((Ok::<_, std::convert::Infallible>(sse_event(&data)), i + 1))
        }
    });
    let mut r = Response::new(Body::from_stream(events));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// One server-sent event: a `data:` line of compact JSON (which has no
/// newline in it), then the blank line that ends the event.
fn sse_event(data: &Value) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

/// The output for a request (its JSON plus `fal_key_id`) and how long to
/// wait, or what to fix.
fn parse(headers: &HeaderMap, body: &[u8]) -> Result<(Value, Duration), String> {
    let key_id = headers
        .get(X_FAL_KEY_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let value: Value = if body.is_empty() {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(body).map_err(|e| format!("echo takes JSON: {e}"))?
    };
    let sleep = sleep_of(&value)?;
    let out = match value {
        Value::Object(mut m) => {
            m.insert("fal_key_id".into(), key_id.into());
            Value::Object(m)
        }
        other => json!({"input": other, "fal_key_id": key_id}),
    };
    Ok((out, sleep))
}

/// The input's `sleep_ms`, if it has one.
fn sleep_of(value: &Value) -> Result<Duration, String> {
    match value.get("sleep_ms") {
        None | Some(Value::Null) => Ok(Duration::ZERO),
        Some(v) => match v.as_u64() {
            Some(ms) if ms <= MAX_SLEEP_MS => Ok(Duration::from_millis(ms)),
            _ => Err(format!(
                "sleep_ms must be a whole number of milliseconds from 0 to {MAX_SLEEP_MS}, not {v}"
            )),
        },
    }
}

/// The app's 422: `{"detail"}` saying what to fix.
fn refuse(detail: String) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(json!({"detail": detail})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_ms_is_checked() {
        assert_eq!(sleep_of(&json!({})), Ok(Duration::ZERO));
        assert_eq!(
            sleep_of(&json!({"sleep_ms": 250})),
            Ok(Duration::from_millis(250))
        );
        assert_eq!(
            sleep_of(&json!({"sleep_ms": MAX_SLEEP_MS})),
            Ok(Duration::from_millis(MAX_SLEEP_MS))
        );
        for bad in [json!(-1), json!(1.5), json!("10"), json!(MAX_SLEEP_MS + 1)] {
            let e = sleep_of(&json!({"sleep_ms": bad})).unwrap_err();
            assert!(e.starts_with("sleep_ms must be"), "{e}");
        }
    }

    #[test]
    fn events_are_one_data_line_each() {
        let e = sse_event(&json!({"text": "a\nb"}));
        assert_eq!(&e[..], b"data: {\"text\":\"a\\nb\"}\n\n");
    }
}
