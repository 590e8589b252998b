//! Integration tests of the REST API: the app runs in-process on port 0 over
//! a temporary SQLite file, and is called over real HTTP on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod apps;
mod auth;
mod dashboard;
mod dashboard_rate;
mod demo;
mod device;
mod differential;
mod differential_gen;
mod fake_github;
mod forwarding;
mod front;
mod gateway;
mod github_web;
mod headers;
mod helpers;
mod idle;
mod key_feed;
mod keys;
mod lifecycle;
mod limits;
mod postgres;
mod queue;
mod queue_cluster;
mod queue_control;
mod queue_stream;
mod rate_limit_admin;
mod rate_limits;
mod recorder;
mod sessions;
mod ssrf;
mod throttling;
mod tokens;
mod upstream;
mod users_admin;
