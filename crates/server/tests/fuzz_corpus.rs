//! Replays the committed fuzz corpus of the server's pure HTTP/1.1 layer
//! (`fuzz/corpus/h1_*/*`) through the same checks the cargo-fuzz targets
//! run (`fuzz/server_checks/`), on stable Rust, as
//! `crates/core/tests/fuzz_corpus.rs` does for fal-core's parsers. Also
//! checks that every target of the fuzz crate (both crates') has its
//! binary, its `[[bin]]` and its corpus. See `fuzz/README.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

#[path = "../../../fuzz/checks/mod.rs"]
mod checks;
#[path = "../../../fuzz/server_checks/mod.rs"]
mod server_checks;

/// The fuzz crate's directory.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

#[test]
fn every_corpus_input_keeps_its_target_s_properties() {
    checks::replay(&fuzz_dir().join("corpus"), server_checks::TARGETS);
}

#[test]
fn every_target_has_a_fuzz_binary_and_a_corpus() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    let mut declared: Vec<&str> = checks::TARGETS
        .iter()
        .map(|(name, _)| *name)
        .chain(server_checks::TARGETS.iter().map(|(name, _)| *name))
        .collect();
    declared.sort_unstable();
    let mut binaries: Vec<String> = std::fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_owned()))
        .collect();
    binaries.sort_unstable();
    assert_eq!(binaries, declared, "fuzz_targets/ and the TARGETS lists");
    for name in declared {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "{name} has no [[bin]] in fuzz/Cargo.toml"
        );
        assert!(
            fuzz_dir().join("corpus").join(name).is_dir(),
            "{name} has no corpus"
        );
    }
}
