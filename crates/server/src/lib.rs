//! The fal platform server.
//!
//! Layout:
//! - [`config`]: everything `fal serve` can be told, as one value; no globals.
//! - [`app`]: builds the application from a [`Config`] (store, pepper,
//!   bootstrap) and serves it with graceful shutdown.
//! - [`pepper`]: the 0600 pepper file beside the data.
//! - [`files`]: the 0700 data directory and the 0600 database file.
//! - [`auth`]: credential verification with its bounded cache, and the
//!   extractors that decide what a handler can reach: [`auth::Caller`] for
//!   any authenticated principal, [`auth::Admin`] (the only way to get at key
//!   management) for ADMIN ones.
//! - [`api`]: the REST handlers.
//! - [`operators`]: who the operators are (the bootstrap user, `--operators`);
//!   [`auth::Operator`] is the handle to what only they may do.
//! - [`cookies`]: every cookie the server sets: names, builder, reader,
//!   and the rule that keeps them from upstreams.
//! - [`dashboard`]: the keys page in the browser (server-rendered).
//! - [`front`]: accepts connections; forwards plain HTTP/1.1 model calls
//!   by hand and hands everything else to hyper and the router.
//! - [`gateway`]: `/run/OWNER/NAME/…`: apps, upstream connections, the
//!   router's (general) forwarding path.
//! - [`forward_rules`], [`chunked`]: what both forwarding paths let through
//!   (paths, cookies, lengths, upstream framings; chunked framing, strict and
//!   without trailers).
//! - [`request_log`]: the one log line per request, for both paths.
//! - [`response_headers`]: `nosniff` on every answer, `no-store` on secrets.
//! - [`limits`]: request body time and size, the connection cap, the
//!   open-file limit.
//! - [`addresses`] (pure) and [`reach`]: which addresses an app's upstream
//!   may be on, checked at registration and at every new connection.
//! - [`tls`]: serving HTTPS with rustls.
//! - [`github`], [`sessions`]: sign-in with GitHub and the sessions it opens;
//!   [`device_polls`] throttles the device flow's polls per code;
//!   [`sealed`] keeps a CLI session's GitHub token at rest, sealed under a
//!   key derived from the pepper.
//! - [`error`]: [`ApiError`], the one error type at the HTTP edge.
#![forbid(unsafe_code)]

pub mod addresses;
pub mod api;
pub mod app;
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
pub mod limits;
pub mod operators;
pub mod pepper;
pub mod request_log;
pub mod response_headers;
pub mod router;
pub mod sealed;
pub mod state;
pub mod tls;

#[cfg(feature = "testing")]
pub use app::RunningServer;
pub use app::{App, BootstrapKey};
pub use config::Config;
pub use error::ApiError;
