#!/usr/bin/env bash
# Builds, here, what scripts/gpu-check.sh runs on a lent GPU machine: the release binary and the
# release test executables, copied into .gpu-bundle/ (ignored by git; pass it in the device
# tool's `carry` together with target/release/simclr-cli).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p cli
rm -rf .gpu-bundle && mkdir -p .gpu-bundle
cargo test --release --workspace --locked --no-run --message-format=json 2>/dev/null \
  | "${PYTHON:-python3}" -c '
import json, sys, shutil
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        shutil.copy(m["executable"], ".gpu-bundle/")
        print(m["executable"])
'
