//! `GET /healthz` and `GET /readyz` (see [`crate::health`]).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::state::AppState;

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// `GET /readyz`: 200 `{"status":"ready"}`, or 503
/// `{"status":"not_ready","failing":[…]}`.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let failing = state.health().failing().await;
    if failing.is_empty() {
        Json(json!({"status": "ready"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready", "failing": failing})),
        )
            .into_response()
    }
}
