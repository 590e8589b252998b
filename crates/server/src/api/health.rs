//! `GET /healthz` and `GET /readyz` (see [`crate::health`]).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

/// A health answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` (`/healthz`), `ready` or `not_ready` (`/readyz`).
    status: &'static str,
    /// What is not ready (`/readyz` with 503 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    failing: Option<Vec<String>>,
}

/// `GET /healthz`: the process is alive.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "health",
    responses((status = 200, description = "Alive: `{\"status\": \"ok\"}`", body = Health))
)]
pub async fn healthz() -> Response {
    Json(Health {
        status: "ok",
        failing: None,
    })
    .into_response()
}

/// `GET /readyz`: 200 `{"status":"ready"}`, or 503
/// `{"status":"not_ready","failing":[…]}`.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "health",
    responses(
        (status = 200, description = "Ready to serve: `{\"status\": \"ready\"}`", body = Health),
        (status = 503, description = "Not ready: what is failing", body = Health),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let failing = state.health().failing().await;
    if failing.is_empty() {
        Json(Health {
            status: "ready",
            failing: None,
        })
        .into_response()
    } else {
        let failing = failing.iter().map(ToString::to_string).collect();
        let body = Health {
            status: "not_ready",
            failing: Some(failing),
        };
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(healthz, readyz))]
pub(super) struct Doc;
