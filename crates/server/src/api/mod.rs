//! REST handlers, and the body/query extractors that turn bad input into
//! [`ApiError`]s with a message that says what to fix.

pub mod admin;
pub mod apps;
pub mod audit;
pub mod doc;
pub mod github;
pub mod health;
pub mod key_usage;
pub mod keys;
pub mod metrics;
pub mod queue;
pub mod run;
pub mod secret_scanning;
pub mod tokens;
pub mod users;

use axum::Router;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::routing::{any, delete, get};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// The REST API's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::show))
        .route("/openapi.json", get(doc::serve))
        .route("/keys", get(keys::list).post(keys::create))
        .route("/keys/{key_id}", delete(keys::revoke).patch(keys::update))
        .route("/audit", get(audit::list))
        .route("/keys/{key_id}/roll", axum::routing::post(keys::roll))
        .route("/keys/{key_id}/usage", get(key_usage::show))
        .route("/users/current", get(users::current))
        .route("/auth/verify", get(users::verify))
        .route("/auth/github", get(github::status))
        .route("/auth/github/login", get(github::web_login))
        .route("/auth/github/callback", get(github::web_callback))
        .route("/auth/device", axum::routing::post(github::device_start))
        .route(
            "/auth/device/token",
            axum::routing::post(github::device_poll),
        )
        .route("/auth/refresh", axum::routing::post(github::refresh))
        .route("/auth/logout", axum::routing::post(github::logout))
        .route("/admin/users", get(admin::list_users))
        .route(
            "/admin/users/{user}/disable",
            axum::routing::post(admin::disable_user),
        )
        .route(
            "/security/secret-scanning",
            axum::routing::post(secret_scanning::report),
        )
        .route("/tokens", axum::routing::post(tokens::create))
        .route("/tokens/", axum::routing::post(tokens::create))
        .route("/apps", get(apps::list).post(apps::create))
        .route("/apps/{owner}/{name}", get(apps::show).delete(apps::remove))
        // Every model path, complete or not, reaches the gateway's handler,
        // which authenticates first and then takes the path apart, as the
        // hand-written path does (an incomplete one gets the gateway's own
        // 404, after the 401 a bad key gets).
        .route("/queue/{*rest}", any(queue::handle))
        .route("/run/", gateway_route())
        .route("/run/{*path}", gateway_route())
}

/// The gateway's route (every answer on it, refusals by the extractors
/// included, gets `nosniff` from the router-wide
/// [`crate::response_headers::nosniff`]).
fn gateway_route() -> axum::routing::MethodRouter<AppState> {
    any(run::run)
}

/// The OpenAPI document: each module's paths, merged as [`routes`] merges
/// their routes (see [`doc`]).
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    doc::assemble([
        health::Doc::openapi(),
        metrics::Doc::openapi(),
        keys::Doc::openapi(),
        key_usage::Doc::openapi(),
        audit::Doc::openapi(),
        users::Doc::openapi(),
        admin::Doc::openapi(),
        apps::Doc::openapi(),
        tokens::Doc::openapi(),
        github::Doc::openapi(),
        secret_scanning::Doc::openapi(),
        queue::Doc::openapi(),
        run::Doc::openapi(),
    ])
}

/// A JSON body; malformed JSON or wrong fields are a 400/422 in our error shape.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::Unprocessable(e.body_text())),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::BadRequest(
                "Send the body as JSON with 'Content-Type: application/json'".into(),
            )),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// Query parameters; wrong ones are a 400 in our error shape.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(e @ QueryRejection::FailedToDeserializeQueryString(_)) => {
                Err(ApiError::BadRequest(e.body_text()))
            }
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}
