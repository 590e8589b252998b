//! Replays the committed fuzz corpus (`fuzz/corpus/TARGET/*`) through the
//! same checks the cargo-fuzz targets run (`fuzz/checks/`), on stable
//! Rust: every input the fuzzer was given or found keeps its properties
//! in every `cargo test`. See `fuzz/README.md`. (The server's targets are
//! replayed by `crates/server/tests/fuzz_corpus.rs`, which also checks that
//! every target has its binary and corpus.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

#[path = "../../../fuzz/checks/mod.rs"]
mod checks;

/// The fuzz crate's directory.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

#[test]
fn every_corpus_input_keeps_its_target_s_properties() {
    checks::replay(&fuzz_dir().join("corpus"), checks::TARGETS);
}
