#!/usr/bin/env bash
# Run on a lent GPU machine (it has PyTorch 2.11.0 cu130 in its python and no cargo) over a copy
# of this tree that carries `target/release/simclr-cli` and, optionally, `.gpu-bundle/` (test
# binaries made here by scripts/gpu-bundle.sh). It points the binaries at that python's torch/lib,
# prints whether CUDA is visible, then runs the carried tests with CUDA required and a short
# `simclr-cli` run on --device cuda.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
torch_lib=$("$PYTHON" -c "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "torch/lib: $torch_lib"
"$PYTHON" -c "import torch; print('python torch', torch.__version__, 'cuda', torch.cuda.is_available())"
bin=target/release/simclr-cli
ldd "$bin" | grep -E 'libtorch(_cuda)?\.so' || true
"$bin" info --device cuda
export SIMCLR_REQUIRE_CUDA=1
status=0
if [ -d .gpu-bundle ]; then
  for t in .gpu-bundle/*; do
    [ -x "$t" ] || continue
    echo "== $t"
    "$t" --test-threads 1 || status=1
  done
fi
echo "== simclr-cli bench --device cuda"
"$bin" bench --device cuda --steps 20 --warmup 5 || status=1
exit $status
