//! The router: every module's routes merged, and the middleware every
//! routed request passes (CONNECT refused, body bounds, `nosniff`, the
//! request log line, the request's count in the metrics).

use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::Response;

use crate::error::ApiError;
use crate::state::AppState;

/// Builds the router over `state`, with request bodies bounded by `body`.
pub fn router(state: AppState, body: crate::limits::BodyLimits) -> Router {
    crate::api::routes()
        .merge(crate::dashboard::routes())
        .fallback(fallback)
        .with_state(state.clone())
        .layer(middleware::from_fn(crate::gateway::rules::refuse_connect))
        .layer(middleware::from_fn(crate::quota::headers))
        // Ours bounds every body first (413/408 in our JSON shape).
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(
            body,
            crate::limits::bound_body,
        ))
        .layer(middleware::from_fn(crate::response_headers::nosniff))
        .layer(middleware::from_fn(log_request))
        .layer(middleware::from_fn_with_state(state, count_request))
}

/// Counts the request in `fal_requests_total` (and, for a model call that
/// was forwarded, in the gateway's histograms), with what its handler
/// noted: the caller's scope, the app, the upstream's time.
async fn count_request(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = crate::metrics::Route::of_path(req.uri().path());
    let started = Instant::now();
    let (response, noted) = crate::metrics::requests::noting(next.run(req)).await;
    let status = response.status().as_u16();
    state.count_request(route, noted.app.as_deref(), status, noted.scope);
    if let Some(upstream) = noted.upstream {
        state.metrics().forwarded(started.elapsed(), upstream);
    }
    response
}

async fn fallback(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("No route for {method} {}", uri.path()))
}

/// The router's access line ([`crate::request_log`]).
async fn log_request(req: Request, next: Next) -> Response {
    if !crate::request_log::enabled() {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let (response, key_id) = crate::request_log::with_key(next.run(req)).await;
    let request_id = response
        .headers()
        .get(crate::h1::headers::X_FAL_REQUEST_ID)
        .and_then(|v| v.to_str().ok());
    crate::request_log::request(crate::request_log::Access {
        method: method.as_str(),
        path: &path,
        status: response.status().as_u16(),
        started,
        request_id,
        key_id,
    });
    response
}
