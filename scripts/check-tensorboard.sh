#!/usr/bin/env bash
# TensorBoard reads what simclr-rs writes: the event files and projector files of two tiny
# runs, read back by the `tensorboard` package (PyPI) in its own venv (.venv-tensorboard) by
# scripts/reference/check_tensorboard.py. The second run is resumed after a simulated crash:
# its folder holds events logged past its checkpoint, with other values (another learning
# rate), which the resumed run must drop and log again: every scalar then equals the history
# and no tag has a step twice. 32 s once the venv exists, about 30 s more to make it (a 2-core
# AMD EPYC, 2026-12-03, `bash scripts/check-tensorboard.sh`).
# Usage: scripts/check-tensorboard.sh [SIMCLR_CLI]   (default target/debug/simclr-cli)
set -euo pipefail
cd "$(dirname "$0")/.."
cli=${1:-target/debug/simclr-cli}
[ -x "$cli" ] || cargo build --quiet -p cli
venv=.venv-tensorboard
if ! "$venv/bin/python" -c "import tensorboard, PIL" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "tensorboard==2.21.0" "pillow==13.0.0"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$venv/bin/python" scripts/reference/stl10_fixture.py "$work/data" 10 6 40
sets=(--set "data.root=$work/data" --set data.batch_size=10 --set model.width=8
  --set runtime.metrics_every=2 --set baseline.epochs=2 --set pretrain.epochs=2
  --set finetune.epochs=2)
# The command, the shared settings, then the command's own (later ones win).
run() {
  local command=$1
  shift
  "$cli" "$command" --device cpu --threads 2 "${sets[@]}" "$@" >/dev/null
}

run experiment --out "$work/experiment"

# A crash after epoch 1's checkpoint, with epochs 2 and 3 logged at another rate.
b="$work/resumed"
run baseline --out "$b" --set baseline.epochs=1
cp -r "$b/state" "$work/state-1"
cp "$b/baseline.json" "$b/baseline.csv" "$work/"
run baseline --resume "$b" --set baseline.epochs=3 --set baseline.optimizer.learning_rate=0.05
rm -rf "$b/state"
cp -r "$work/state-1" "$b/state"
cp "$work/baseline.json" "$work/baseline.csv" "$b/"
run baseline --resume "$b" --set baseline.epochs=3 --set baseline.optimizer.learning_rate=0.001

"$venv/bin/python" scripts/reference/check_tensorboard.py "$work/experiment" "$b"
