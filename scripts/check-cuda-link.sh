#!/usr/bin/env bash
# Checks that a binary really links libtorch's CUDA library (torch-sys alone lets the linker
# drop it, and then `--device cuda` silently finds no GPU). Usage: check-cuda-link.sh BINARY
set -euo pipefail
bin=${1:-target/release/simclr-cli}
if ! readelf -d "$bin" | grep -q 'NEEDED.*\[libtorch\.so\]'; then
  echo "FAIL: $bin does not list libtorch.so as NEEDED (build.rs link args missing?)" >&2
  exit 1
fi
line=$(ldd "$bin" | grep 'libtorch_cuda\.so' || true)
case "$line" in
  *"=> /"*) echo "ok: $bin loads $(echo "$line" | awk '{print $3}')" ;;
  *) echo "FAIL: libtorch_cuda.so does not resolve for $bin: ${line:-not linked}" >&2; exit 1 ;;
esac
