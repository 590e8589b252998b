//! Fuzzes key id, key secret and `FAL_KEY` parsing; the properties are in
//! `checks/key.rs`.
#![no_main]
#![forbid(unsafe_code)]

#[path = "../checks/mod.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::key::check(data));
