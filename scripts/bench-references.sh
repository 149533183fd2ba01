#!/usr/bin/env bash
# The same pretraining and supervised steps, at STL-10's shapes on random data, timed in one run
# on this machine: simclr-cli bench, the Keras example's model and train_step in Keras 3 on
# TensorFlow (scripts/reference/keras_step.py, in its own venv .venv-keras, made here on first
# use), and plain PyTorch eager at its best (scripts/reference/torch_step.py: channels-last +
# bf16 autocast, and channels-last fp32, in the project's venv, with the same glibc allocator
# settings simclr-cli applies to itself); last, for information, PyTorch with simclr-cli's own
# CPU recipe (encoder slices). The runs alternate for ROUNDS rounds so that drift
# on a shared machine hits every program alike; the best round of each counts.
#
# Usage: scripts/bench-references.sh [ROUNDS] [STEPS]   (defaults 2 and 3)
# Extra simclr-cli arguments (e.g. --precision bf16) go in SIMCLR_BENCH_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
steps=${2:-3}
bin=target/release/simclr-cli
[ -x "$bin" ] || cargo build --release --locked -p cli
[ -x .venv/bin/python ] || bash scripts/setup.sh --no-build
if ! .venv-keras/bin/python -c "import keras, tensorflow" 2>/dev/null; then
  echo "[bench] creating .venv-keras with tensorflow-cpu 2.21.0 and keras 3.15.1" >&2
  "${PYTHON:-python3}" -m venv .venv-keras
  .venv-keras/bin/python -m pip install --quiet --disable-pip-version-check \
    tensorflow-cpu==2.21.0 keras==3.15.1
fi
out=$(mktemp -d)
malloc=(env MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647)
for r in $(seq "$rounds"); do
  echo "[bench] round $r/$rounds" >&2
  # shellcheck disable=SC2086
  "$bin" bench --device cpu --steps "$steps" --warmup 1 ${SIMCLR_BENCH_ARGS:-} >>"$out/simclr.jsonl"
  .venv-keras/bin/python scripts/reference/keras_step.py --steps "$steps" --warmup 2 2>/dev/null >>"$out/keras.jsonl"
  "${malloc[@]}" .venv/bin/python -W ignore scripts/reference/torch_step.py --steps "$steps" \
    --precision bf16 --layout channels-last 2>/dev/null >>"$out/torch-bf16.jsonl"
  "${malloc[@]}" .venv/bin/python -W ignore scripts/reference/torch_step.py --steps "$steps" \
    --precision fp32 --layout channels-last 2>/dev/null >>"$out/torch-fp32.jsonl"
  # Not a reference: plain PyTorch given simclr-cli's own CPU recipe (encoder slices), to show
  # how much of the lead is the recipe and how much the program.
  "${malloc[@]}" .venv/bin/python -W ignore scripts/reference/torch_step.py --steps "$steps" \
    --precision fp32 --layout channels-last --chunk 175 2>/dev/null >>"$out/torch-sliced.jsonl"
done
python3 - "$out" <<'PY'
import json, pathlib, platform, sys
out = pathlib.Path(sys.argv[1])
def best(name):
    rows = [json.loads(l) for l in (out / f"{name}.jsonl").read_text().splitlines() if l.strip()]
    return max(r["pretrain_views_per_s"] for r in rows), max(r["supervised_images_per_s"] for r in rows), rows[0]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
s_pre, s_sup, s_row = best("simclr")
print(f"machine: {cpu}, {s_row['threads']} threads; best of each program's rounds")
print(f"simclr-cli: {s_row['compute']}")
print(f"| program | pretraining views/s | supervised images/s | simclr-cli vs it (pretraining, supervised) |")
print(f"|---|---|---|---|")
print(f"| simclr-cli bench | {s_pre:.0f} | {s_sup:.0f} | 1.00x, 1.00x |")
for name in ["keras", "torch-bf16", "torch-fp32", "torch-sliced"]:
    pre, sup, row = best(name)
    print(f"| {row['reference']} | {pre:.0f} | {sup:.0f} | {s_pre / pre:.2f}x, {s_sup / sup:.2f}x |")
PY
rm -rf "$out"
