//! Fuzzes `Authorization` header parsing; the properties are in
//! `checks/authorization.rs`.
#![no_main]
#![forbid(unsafe_code)]

#[path = "../checks/mod.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::authorization::check(data));
