//! End-to-end tests of the real `fal` binary: `fal serve` runs as a child
//! process on port 0 over a temporary data directory, and the other
//! commands run against it exactly as a user would type them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access_log;
mod audit;
mod backup;
mod browser;
mod certs;
mod commands;
mod config;
mod dashboard_tls;
mod expiry;
#[path = "../../../server/tests/api/fake_github.rs"]
mod fake_github;
#[path = "../../../server/tests/api/fake_scanning.rs"]
mod fake_scanning;
mod github;
mod harness;
mod js_client;
mod key_usage;
mod metrics;
mod models;
mod openapi;
mod python_client;
mod queue;
mod queue_restart;
mod reach;
mod secret_scanning;
mod server;
mod systemd;
mod tls_reload;
mod users;
