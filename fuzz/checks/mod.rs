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

/// Runs each target's check on every file of its committed corpus under
/// `corpus` (`corpus/NAME/*`), naming the file that fails: the stable
/// replay both crates' `tests/fuzz_corpus.rs` run.
pub fn replay(corpus: &std::path::Path, targets: &[(&str, Check)]) {
    for (target, check) in targets {
        let dir = corpus.join(target);
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("a readable corpus entry").path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(files.len() >= 10, "{target}: only {} seeds", files.len());
        for file in files {
            let data = std::fs::read(&file).expect("a readable corpus file");
            let run = std::panic::catch_unwind(|| check(&data));
            assert!(run.is_ok(), "{target}: {} fails its check", file.display());
        }
    }
}
