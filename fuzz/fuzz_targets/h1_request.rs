//! Fuzzes the server's pure HTTP/1.1 layer (`fal_server::h1::request`); the
//! properties are in `server_checks/request.rs`.
#![no_main]
#![forbid(unsafe_code)]

#[path = "../server_checks/mod.rs"]
mod server_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| server_checks::request::check(data));
