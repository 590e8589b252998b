#!/usr/bin/env bash
# Installs cargo-fuzz, which builds and runs the targets in fuzz/ (see
# fuzz/README.md). Idempotent.
#
# cargo-fuzz itself builds on stable, but `cargo fuzz run` needs a nightly
# toolchain (libFuzzer's sanitizer flags, -Zsanitizer): run it as
# `cargo +nightly fuzz run TARGET`. Without nightly the targets cannot be
# fuzzed, but their check functions still run on stable: the committed
# corpus is replayed by `cargo test -p fal-core --test fuzz_corpus` and
# `cargo test -p fal-server --test fuzz_corpus`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "cargo-fuzz ready: $(cargo fuzz --version); run targets with: cargo +nightly fuzz run TARGET"
else
  echo "cargo-fuzz installed, but no nightly toolchain: 'cargo fuzz run' cannot run here;" >&2
  echo "the corpus still replays on stable: cargo test --workspace --test fuzz_corpus" >&2
fi
