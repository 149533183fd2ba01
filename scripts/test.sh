#!/usr/bin/env bash
# Every test, from a fresh clone: set-up (idempotent), formatting, lints, the whole workspace's
# tests, and the checks that the release binary loads libtorch_cuda and carries no test seam. CI
# runs exactly this; each step's time is printed as it ends, so a slow CI shows where it went.
set -euo pipefail
cd "$(dirname "$0")/.."
step() {
  local name=$1 start=$SECONDS
  shift
  "$@"
  echo "[test] $name: $((SECONDS - start)) s"
}
step "set-up" bash scripts/setup.sh
step "fmt" cargo fmt --all -- --check
# Every feature, so the test hooks and the fuzz entry points are linted too.
step "clippy" cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
# `cli/test-hooks` builds the test binary with its fault injection (a panic, a pause before a
# checkpoint's commit) for the end-to-end tests that need it; the release binary has none.
step "tests" cargo test --workspace --locked --features cli/test-hooks
# A crate outside the workspace that uses `losses` and `augment` as docs/using-the-crates.md
# says (its own lock file and target folder; after changing what those crates depend on,
# refresh its lock with `cargo build --manifest-path tests/external/Cargo.toml`).
step "external crate" cargo run --locked --quiet --manifest-path tests/external/Cargo.toml \
  --target-dir target/external
step "cuda link" bash scripts/check-cuda-link.sh target/release/simclr-cli
if grep -aq SIMCLR_TEST_ target/release/simclr-cli; then
  echo "target/release/simclr-cli contains a SIMCLR_TEST_ test seam" >&2
  exit 1
fi
echo "[test] the release binary carries no SIMCLR_TEST_ seam; all done in $SECONDS s"
