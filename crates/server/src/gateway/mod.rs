//! The model gateway: `/run/{owner}/{name}[/{path…}]`, any method.
//!
//! A request is authenticated (either scope may call models), its app is
//! found (through a small cache), and it is forwarded to the app's upstream
//! with the body streamed both ways: neither a large upload nor a long
//! server-sent-event response is ever held whole in memory. Hop-by-hop
//! headers and the client's `Authorization` are dropped; the upstream gets
//! `X-Fal-User-Id`, `X-Fal-Key-Id` and `X-Fal-Request-Id`, and the client
//! gets `x-fal-request-id` back.
//!
//! # Layout
//! - [`directory`]: finds apps (built-in, then storage through a cache).
//! - [`request_ids`]: unique request ids without a system call.
//! - [`reach`]: which addresses an app's upstream may be on, applied at
//!   every new connection.
//! - [`pool`]: kept connections to plain-HTTP upstreams (the hand-written
//!   path's).
//! - [`upstream`]: the per-worker client: the pool, and hyper's client.
//! - [`forward`]: hyper's forwarding path.
//! - [`rules`]: the answers both paths give when a request may not go on.
//! - [`mod@echo`]: the demo app.
//!
//! Imports [`crate::h1`] for the rules both paths share; never the state or
//! the HTTP handlers, which import it.

pub mod directory;
pub mod echo;
pub mod forward;
pub mod pool;
pub mod reach;
pub mod request_ids;
pub mod rules;
pub mod upstream;

pub use directory::AppDirectory;
pub use echo::echo;
pub use request_ids::RequestIds;
pub use upstream::UpstreamClient;

use fal_store::AppRecord;

use crate::error::ApiError;

/// Errors of the gateway, each a JSON reply.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No app by that name.
    #[error("No app {0} is registered here")]
    UnknownApp(String),
    /// The path is not `/run/OWNER/NAME[/…]`.
    #[error("Call a model at /run/OWNER/NAME[/PATH]")]
    BadPath,
    /// The upstream refused or could not be reached.
    #[error("The app's upstream could not be reached")]
    Unreachable,
    /// The upstream did not answer within the app's timeout.
    #[error("The app's upstream did not answer within {0} ms")]
    Timeout(i64),
    /// The upstream's address is one this app may not use.
    #[error("The app's upstream address is refused: {0}")]
    Refused(String),
    /// Sending failed (logged; answered as [`GatewayError::Unreachable`]).
    #[error("The app's upstream could not be reached")]
    Failed(String),
    /// The upstream's answer broke HTTP's rules (logged; answered as
    /// [`GatewayError::Unreachable`]).
    #[error("The app's upstream could not be reached")]
    Broken(String),
}

impl From<GatewayError> for ApiError {
    fn from(e: GatewayError) -> ApiError {
        match e {
            GatewayError::UnknownApp(_) | GatewayError::BadPath => {
                ApiError::NotFound(e.to_string())
            }
            GatewayError::Unreachable
            | GatewayError::Failed(_)
            | GatewayError::Broken(_)
            | GatewayError::Refused(_) => ApiError::BadGateway(e.to_string()),
            GatewayError::Timeout(_) => ApiError::GatewayTimeout(e.to_string()),
        }
    }
}

/// Logs why a model call got no answer from its upstream: the same line on
/// both forwarding paths.
pub fn log_failure(app: &AppRecord, request_id: &str, failure: &GatewayError) {
    let app = format!("{}/{}", app.owner, app.name);
    match failure {
        GatewayError::Timeout(_) => tracing::warn!(app, request_id, "upstream timed out"),
        GatewayError::Refused(why) => tracing::warn!(app, request_id, why, "upstream refused"),
        GatewayError::Failed(e) => {
            tracing::warn!(app, request_id, error = e, "upstream unreachable");
        }
        GatewayError::Broken(e) => {
            tracing::warn!(app, request_id, error = e, "upstream broke its response");
        }
        other => tracing::warn!(app, request_id, error = %other, "upstream failed"),
    }
}
