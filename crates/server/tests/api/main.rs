//! Integration tests of the REST API: the app runs in-process on port 0 over
//! a temporary SQLite file, and is called over real HTTP on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod apps;
mod auth;
mod fake_github;
mod front;
mod gateway;
mod github_web;
mod helpers;
mod keys;
mod lifecycle;
mod postgres;
mod ssrf;
mod upstream;
mod users_admin;
