//! `GET /metrics`: every metric in Prometheus' text format
//! ([`crate::metrics`]). On the main listener only an ADMIN caller may
//! read it (an API key gets 403, no key 401, as for key management);
//! `--metrics-listen` serves it without credentials on an address of its
//! own ([`open_router`]), which should be one only the scraper reaches.

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::Response;
use axum::routing::get;

use crate::auth::Admin;
use crate::state::AppState;

/// `GET /metrics` on the main listener: ADMIN callers only.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    security(("key" = []), ("session" = [])),
    responses(
        (status = 200, description = "Every metric in Prometheus' text format (version 0.0.4)", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
        (status = 403, description = "Not an ADMIN key", body = crate::error::ErrorBody),
    )
)]
pub async fn show(_admin: Admin, State(state): State<AppState>) -> Response {
    scrape(&state).await
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(show))]
pub(super) struct Doc;

/// `GET /metrics` on the metrics listener: no credentials.
async fn open(State(state): State<AppState>) -> Response {
    scrape(&state).await
}

/// The metrics listener's routes: `/metrics` and nothing else.
pub fn open_router(state: AppState) -> Router {
    Router::new().route("/metrics", get(open)).with_state(state)
}

async fn scrape(state: &AppState) -> Response {
    let verifier = state.verifier();
    let records = verifier.cached_records() as u64;
    let body = state
        .metrics()
        .scrape(records, verifier.cache_capacity(), state.clock().now())
        .await;
    crate::response_headers::no_store(([(CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body))
}
