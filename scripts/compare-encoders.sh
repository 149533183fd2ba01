#!/usr/bin/env bash
# ResNet-18 (configs/fashion-mnist-resnet18.toml) against the Keras encoder
# (configs/fashion-mnist.toml) on Fashion-MNIST at equal pretraining wall time:
#   1. pretrain the ResNet-18 recipe and time it (wall clock, validation and kNN included);
#   2. time two Keras pretraining epochs, then pretrain the Keras encoder afresh for as many
#      epochs as fit the ResNet's time;
#   3. fine-tune both encoders (each config's [finetune], 20 epochs) and print, per encoder, the
#      pretraining wall time, the last epoch's kNN and probe accuracy and the best fine-tuned
#      accuracy, as a Markdown table (also in OUT/comparison.md).
# Usage: scripts/compare-encoders.sh [OUT (default runs/compare-encoders)] [extra --set args...]
# Run it on a quiet machine: the comparison is of wall times.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/compare-encoders}
shift || true
cli=./target/release/simclr-cli
[ -x "$cli" ] || cargo build --release --locked -p cli
mkdir -p "$out"

timed() { # timed NAME COMMAND...: runs it, writes its wall seconds to $out/NAME.seconds
  local name=$1; shift
  local start end
  start=$(date +%s.%N)
  "$@" --no-progress > "$out/$name.log" 2>&1
  end=$(date +%s.%N)
  python3 -c "print($end - $start)" > "$out/$name.seconds"
  echo "$name: $(cat "$out/$name.seconds") s"
}

timed resnet18-pretrain "$cli" pretrain --config configs/fashion-mnist-resnet18.toml \
  --out "$out/resnet18" "$@"
timed keras-probe "$cli" pretrain --config configs/fashion-mnist.toml \
  --set pretrain.epochs=2 --out "$out/keras-probe" "$@"
epochs=$(python3 -c "
t, k = float(open('$out/resnet18-pretrain.seconds').read()), float(open('$out/keras-probe.seconds').read())
print(max(1, int(t / (k / 2))))")
echo "keras: $epochs epochs fit the ResNet-18's pretraining time"
timed keras-pretrain "$cli" pretrain --config configs/fashion-mnist.toml \
  --set pretrain.epochs="$epochs" --out "$out/keras" "$@"
for enc in resnet18 keras; do
  cfg=configs/fashion-mnist.toml
  [ "$enc" = resnet18 ] && cfg=configs/fashion-mnist-resnet18.toml
  timed "$enc-finetune" "$cli" finetune --config "$cfg" \
    --encoder "$out/$enc/encoder.safetensors" --out "$out/$enc" "$@"
done

python3 - "$out" <<'PY' | tee "$out/comparison.md"
import json, sys
out = sys.argv[1]
print("| encoder | pretraining epochs | pretraining wall (s) | kNN | linear probe | fine-tuned (best) | fine-tuning wall (s) |")
print("|---|---|---|---|---|---|---|")
for enc in ["resnet18", "keras"]:
    pre = json.load(open(f"{out}/{enc}/pretraining.json"))["epochs"]
    fin = json.load(open(f"{out}/{enc}/finetuning.json"))["epochs"]
    secs = lambda n: float(open(f"{out}/{n}.seconds").read())
    best = max(e["val_acc"] for e in fin)
    print(f"| {enc} | {len(pre)} | {secs(enc + '-pretrain'):.0f} | {100 * pre[-1]['val_knn_acc']:.2f}% "
          f"| {100 * pre[-1]['val_p_acc']:.2f}% | {100 * best:.2f}% | {secs(enc + '-finetune'):.0f} |")
PY
