#!/usr/bin/env bash
# Every test, from a fresh clone: set-up (idempotent, without the release build), formatting,
# lints, the whole workspace's tests, and the checks that the binary, built without the test
# hooks as a release is, loads libtorch_cuda and carries no test seam. CI runs exactly this; each step's
# time is printed as it ends, so a slow CI shows where it went.
set -euo pipefail
cd "$(dirname "$0")/.."
step() {
  local name=$1 start=$SECONDS
  shift
  "$@"
  echo "[test] $name: $((SECONDS - start)) s"
}
# The release build is the quick start's (setup.sh without --no-build); here it would only
# repeat the test build's work at another optimisation level (about 5 of CI's minutes).
# Its output here goes to a pipe, as to CI's log: it must hold no escape codes.
plain_setup() {
  local log
  log=$(mktemp)
  bash scripts/setup.sh --no-build 2>&1 | tee "$log"
  if grep -q $'\e' "$log"; then
    echo "scripts/setup.sh wrote escape codes into a pipe" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}
step "set-up" plain_setup
step "fmt" cargo fmt --all -- --check
# Every feature, so the test hooks and the fuzz entry points are linted too.
step "clippy" cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
# `cli/test-hooks` builds the test binary with its fault injection (a panic, a pause before a
# checkpoint's commit) for the end-to-end tests that need it; the release binary has none.
step "tests" cargo test --workspace --locked --features cli/test-hooks
# TensorBoard itself (PyPI, in .venv-tensorboard) reads two tiny runs' event and projector
# files, one of them resumed after a simulated crash.
step "tensorboard" bash scripts/check-tensorboard.sh
# A crate outside the workspace that uses `losses` and `augment` as docs/using-the-crates.md
# says (its own lock file; after changing what those crates depend on, refresh its lock with
# `cargo build --manifest-path tests/external/Cargo.toml`). Built in the workspace's target
# folder with the workspace's profile settings, it reuses libtorch's C++ wrapper (torch-sys's
# build script) and most other dependencies from the tests' build (docs/setup.md).
step "external crate" cargo run --locked --quiet --manifest-path tests/external/Cargo.toml \
  --target-dir target
# The binary as a release has it: without the test hooks (the tests built it with them), so
# the link and seam checks see what ships; the same link arguments as the release profile.
step "binary" cargo build --locked --quiet -p cli
step "cuda link" bash scripts/check-cuda-link.sh target/debug/simclr-cli
if grep -aq SIMCLR_TEST_ target/debug/simclr-cli; then
  echo "target/debug/simclr-cli, built without test-hooks, contains a SIMCLR_TEST_ test seam" >&2
  exit 1
fi
echo "[test] the binary without test-hooks carries no SIMCLR_TEST_ seam; all done in $SECONDS s"
