#!/usr/bin/env bash
# Builds, here, what scripts/gpu-check.sh runs on a lent GPU machine: the release binary and the
# release test executables of the crates with CUDA tests, stripped of debug info (the device
# tool carries at most 64 MiB), in .gpu-bundle/ (ignored by git; pass `.gpu-bundle` in the
# device tool's `carry`).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p cli
rm -rf .gpu-bundle && mkdir -p .gpu-bundle/tests
strip --strip-debug -o .gpu-bundle/simclr-cli target/release/simclr-cli
cargo test --release --locked -p accel -p augment -p models -p losses -p train --no-run \
  --message-format=json 2>/dev/null \
  | "${PYTHON:-python3}" -c '
import json, subprocess, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        name = m["target"]["name"] + ("-unit" if m["target"]["kind"] == ["lib"] else "")
        subprocess.run(["strip", "--strip-debug", "-o", f".gpu-bundle/tests/{name}", m["executable"]], check=True)
'
du -sh .gpu-bundle .gpu-bundle/tests/* .gpu-bundle/simclr-cli
