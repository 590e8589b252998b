//! `/run/OWNER/NAME[/PATH]` as the router serves it: model calls the
//! hand-written path in [`crate::front`] passed on, forwarded by hyper
//! ([`crate::gateway::forward`]).

use axum::extract::{Request, State};
use axum::response::Response;

use crate::error::ApiError;
use crate::extract::{ModelCaller, query_without_token};
use crate::gateway::forward::{forward, target};
use crate::gateway::{GatewayError, rules};
use crate::h1::target::{split_run_path, tail_is_safe};
use crate::state::AppState;

/// The gateway handler.
pub async fn run(
    State(state): State<AppState>,
    ModelCaller(principal): ModelCaller,
    req: Request,
) -> Result<Response, ApiError> {
    let run = split_run_path(req.uri().path()).ok_or(GatewayError::BadPath)?;
    if !tail_is_safe(run.tail) {
        return Err(rules::escaping_path());
    }
    rules::may_call(&principal, run.owner, run.name)?;
    let app = state
        .apps()
        .find_keyed(run.app, run.owner, run.name)
        .await?
        .ok_or_else(|| GatewayError::UnknownApp(run.app.to_owned()))?;
    crate::metrics::note_app(&app.owner, &app.name);
    // A token in the query stays here, as the Authorization header does.
    let query = query_without_token(req.uri().query());
    let target = target(&app.upstream, run.tail, query.as_deref()).ok_or_else(|| {
        ApiError::Internal(format!("bad upstream URL for {}/{}", app.owner, app.name))
    })?;
    let request_id = state.request_ids().next();
    let started = std::time::Instant::now();
    let answer = forward(
        state.upstream(),
        &app,
        &principal,
        req,
        &target,
        &request_id,
    )
    .await;
    crate::metrics::note_upstream(started.elapsed());
    answer
}
