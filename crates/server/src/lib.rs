//! The fal platform server.
//!
//! # Layout
//! Imports point down this list (a module may use those below it, never
//! one above; `crates/core/tests/layout.rs` checks there is no cycle).
//!
//! The HTTP edge, which holds the state:
//! - [`app`]: builds the application from a [`Config`] (store, pepper,
//!   bootstrap) and serves it per core with graceful shutdown.
//! - [`front`]: accepts connections; forwards plain HTTP/1.1 model calls
//!   by hand and hands everything else to hyper and the [`router`].
//! - [`router`]: every module's routes merged, and the middleware they pass.
//! - [`api`], [`dashboard`]: the REST handlers (the router's `/run` among
//!   them) and the keys page in the browser.
//! - [`extract`]: what a handler can ask for: [`extract::Caller`], any
//!   authenticated principal, and [`auth::Admin`], an ADMIN one.
//! - [`state`]: [`state::AppState`], shared by everything above; built
//!   from the features below, which never import it.
//!
//! Features:
//! - [`auth`]: verification with its bounded cache, sessions, and the
//!   handles that authorise: [`auth::Admin`] (the only way to key and app
//!   management) and [`auth::Operator`].
//! - [`github`]: sign-in with GitHub; [`device_polls`] throttles the device
//!   flow's polls per code.
//! - [`gateway`]: apps, request ids, upstream connections and their reach,
//!   hyper's forwarding path, the answers both paths give.
//! - [`flashes`]: one-time links to newly created secrets.
//! - [`audit`]: the audit log: events of key, app and session management,
//!   their retention.
//! - [`queue`]: the request queue: stored requests, this server's workers,
//!   webhooks, retention (its HTTP shapes are `api::queue`).
//! - [`secret_scanning`]: leaked-key reports in GitHub's secret scanning
//!   partner protocol: the signing keys, the signature check, the signed
//!   report (revoked by [`auth::leaks`]; the handler is `api::secret_scanning`).
//!
//! Leaves (no state, no handlers):
//! - [`h1`]: pure HTTP/1.1 for the hand-written path, and the rules both
//!   forwarding paths share; fuzzed.
//! - [`config`]: everything `fal serve` can be told, as one value.
//! - [`limits`]: request body time and size, the connection cap, the
//!   open-file limit.
//! - [`throttle`]: failed-auth throttling per client address, and who the
//!   client is behind `--trusted-proxies`.
//! - [`metrics`]: what `GET /metrics` shows (Prometheus' text format):
//!   counters and histograms split per thread, read at scrape time what
//!   can be read; held by the state, handed to the features that record.
//! - [`quota`]: per-key rate limits: each key's budget on this server,
//!   leased from the count servers share, and the `RateLimit-*` headers.
//! - [`operators`]: who the operators are (the bootstrap user,
//!   `--operators`).
//! - [`addresses`]: which addresses an upstream may be on (pure).
//! - [`cookies`]: every cookie the server sets: names, builder, reader, and
//!   the rule that keeps them from upstreams.
//! - [`request_log`], [`response_headers`]: the one log line per request;
//!   `nosniff`, `no-store` and the dashboard's headers.
//! - [`pepper`], [`files`], [`sealed`], [`tls`]: the 0600 pepper file, the
//!   0700 data directory, sealing at rest, serving HTTPS with rustls.
//! - [`error`]: [`ApiError`], the one error type at the HTTP edge.
#![forbid(unsafe_code)]

pub mod addresses;
pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod config;
pub mod cookies;
pub mod dashboard;
pub mod device_polls;
pub mod error;
pub mod extract;
pub mod files;
pub mod flashes;
pub mod front;
pub mod gateway;
pub mod github;
pub mod h1;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod operators;
pub mod pepper;
pub mod queue;
pub mod quota;
pub mod request_log;
pub mod response_headers;
pub mod router;
pub mod sealed;
pub mod secret_scanning;
pub mod state;
pub mod throttle;
pub mod tls;

#[cfg(feature = "testing")]
pub use app::RunningServer;
pub use app::{App, BootstrapKey};
pub use config::Config;
pub use error::ApiError;
