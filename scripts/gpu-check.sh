#!/usr/bin/env bash
# Run on a lent GPU machine (it has PyTorch 2.11.0 cu130 in its python and no cargo) over a copy
# of this tree that carries .gpu-bundle/ (made here by scripts/gpu-bundle.sh: the stripped
# release binary and test executables). It points them at that python's torch/lib, prints what
# CUDA it sees, runs the carried tests with CUDA required (sync-free steps, CPU-vs-CUDA
# agreement), then times `simclr-cli bench --device cuda` over 200 steps (one STL-10 epoch) in
# each precision and layout, the PyTorch eager reference on the same GPU, and the same bench as
# a data-parallel run of world size 1 on c10d's NCCL backend, launched by torchrun.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
torch_lib=$("$PYTHON" -c "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "torch/lib: $torch_lib"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PYTHON" -c "import torch; print('python torch', torch.__version__, 'cuda', torch.cuda.is_available())"
bin=.gpu-bundle/simclr-cli
[ -x "$bin" ] || bin=target/release/simclr-cli
"$bin" info --device cuda
status=0
export SIMCLR_REQUIRE_CUDA=1
for t in .gpu-bundle/tests/*; do
  [ -x "$t" ] || continue
  echo "== $t"
  "$t" --test-threads 1 -q 2>&1 | grep -E "test result|FAILED|panicked|skipped" || status=1
done
steps=${GPU_BENCH_STEPS:-200}
for precision in bf16 fp32; do
  for cl in true false; do
    echo "== simclr-cli bench --device cuda --precision $precision model.channels_last=$cl"
    "$bin" bench --device cuda --steps "$steps" --warmup 20 --precision "$precision" \
      --set "model.channels_last=$cl" || status=1
  done
done
echo "== torchrun --nproc-per-node 1: simclr-cli bench --device cuda on NCCL (world size 1)"
"$PYTHON" -m torch.distributed.run --standalone --nproc-per-node 1 --no-python "$bin" bench \
  --device cuda --steps "$steps" --warmup 20 --set runtime.backend=\"nccl\" \
  --set runtime.dist_timeout_seconds=300 || status=1
for precision in bf16 fp32; do
  echo "== pytorch eager reference, cuda, channels-last, $precision"
  "$PYTHON" -W ignore scripts/reference/torch_step.py --device cuda --steps "$steps" --warmup 20 \
    --precision "$precision" 2>/dev/null || status=1
done
exit $status
