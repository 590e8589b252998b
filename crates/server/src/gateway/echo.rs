//! The built-in demo app (`fal serve --demo`).

use axum::http::StatusCode;
use axum::http::header::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::h1::headers::X_FAL_KEY_ID;

/// The built-in demo app `fal-ai/echo`: answers with the JSON it was sent
/// plus the caller's key id (`fal_key_id`), as the gateway reported it.
pub async fn echo(headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let key_id = headers
        .get(X_FAL_KEY_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let value: serde_json::Value = if body.is_empty() {
        serde_json::Value::Object(Default::default())
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    axum::Json(serde_json::json!({"detail": format!("echo takes JSON: {e}")})),
                )
                    .into_response();
            }
        }
    };
    let out = match value {
        serde_json::Value::Object(mut m) => {
            m.insert("fal_key_id".into(), key_id.into());
            serde_json::Value::Object(m)
        }
        other => serde_json::json!({"input": other, "fal_key_id": key_id}),
    };
    axum::Json(out).into_response()
}
