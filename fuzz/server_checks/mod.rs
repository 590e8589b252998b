//! What each fuzz target of the server's pure HTTP/1.1 layer
//! (`fal_server::h1`) checks, shared by the cargo-fuzz targets
//! (`fuzz_targets/h1_*.rs`) and the stable replay test
//! (`crates/server/tests/fuzz_corpus.rs`), which include this file by
//! `#[path]`, as `checks/` is for fal-core's parsers. Each `check` takes any
//! bytes and panics only when a property fails.
#![allow(dead_code)]

pub mod chunked;
pub mod request;
pub mod response;

/// A target's check: panics when `data` breaks one of its properties.
pub type Check = fn(&[u8]);

/// Every server target: its name (its `fuzz_targets/NAME.rs` and
/// `corpus/NAME/`) and its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("h1_request", request::check),
    ("h1_chunked", chunked::check),
    ("h1_response", response::check),
];
