//! What each fuzz target checks, one module per target, shared by the
//! cargo-fuzz targets (`fuzz_targets/NAME.rs`) and the stable replay test
//! (`crates/core/tests/fuzz_corpus.rs`), which both include this file by
//! `#[path]`. Each `check` takes any bytes and panics only when a property
//! fails: refusals must be errors, and what parses must round-trip and
//! keep its secret out of `Debug` and error messages.
#![allow(dead_code)]

pub mod authorization;
pub mod key;
mod seeded;

/// A target's check: panics when `data` breaks one of its properties.
pub type Check = fn(&[u8]);

/// Every target: its name (its `fuzz_targets/NAME.rs` and
/// `corpus/NAME/`) and its check.
pub const TARGETS: &[(&str, Check)] =
    &[("authorization", authorization::check), ("key", key::check)];
