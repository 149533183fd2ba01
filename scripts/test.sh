#!/usr/bin/env bash
# Every test, from a fresh clone: set-up (idempotent), formatting, lints, the whole workspace's
# tests, and the check that the release binary loads libtorch_cuda. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
# A crate outside the workspace that uses `losses` and `augment` as README's "Using the crates in
# your own project" says (its own lock file and target folder; after changing what those crates
# depend on, refresh its lock with `cargo build --manifest-path tests/external/Cargo.toml`).
cargo run --locked --quiet --manifest-path tests/external/Cargo.toml --target-dir target/external
bash scripts/check-cuda-link.sh target/release/simclr-cli
