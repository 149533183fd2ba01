#!/usr/bin/env bash
# Peak anonymous memory of one pretraining epoch on a packed data set of 200,000 images against
# the same run on 20,000 (both from the tests' own IDX fixture writer, 28x28 padded to 32x32),
# and, for contrast, the in-memory IDX path on 200,000. RssAnon (/proc/PID/status) is sampled
# every 0.1 s; mapped shard pages are page cache the kernel can drop and are not counted. A
# process's peak varies by some 25 MiB from run to run (libtorch's and glibc's allocations), so
# each run is repeated RUNS times and the median counts.
#
# Usage: scripts/memory-packed.sh [BIG] [SMALL] [RUNS]   (defaults 200000, 20000 and 3)
set -euo pipefail
cd "$(dirname "$0")/.."
big=${1:-200000}
small=${2:-20000}
runs=${3:-3}
bin=target/release/simclr-cli
[ -x "$bin" ] || cargo build --release --locked -p cli
cargo build --release --locked -q -p test-support --example write_fixture
writer=target/release/examples/write_fixture
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
common=(--set data.image_size=32 --set data.labeled_per_class=100 --set model.width=16
  --set pretrain.epochs=1 --set eval.knn_monitor=false --set runtime.precision=fp32)
# peak KIB COMMAND...: runs COMMAND, prints its peak RssAnon in KiB.
peak() {
  "$@" >/dev/null 2>"$work/stderr" &
  local pid=$! top=0 kb
  while kill -0 "$pid" 2>/dev/null; do
    kb=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    [ "${kb:-0}" -gt "$top" ] && top=$kb
    sleep 0.1
  done
  wait "$pid" || { cat "$work/stderr" >&2; return 1; }
  echo "$top"
}
# median KEY COMMAND...: the median peak of RUNS runs of COMMAND, and all of them.
median() {
  local key=$1 all=()
  shift
  for r in $(seq "$runs"); do
    all+=("$(peak "$@" --out "$work/run-$key-$r")")
  done
  all_runs[$key]="${all[*]}"
  printf '%s\n' "${all[@]}" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}
declare -A result all_runs
for n in "$small" "$big"; do
  echo "[memory] $n images: fixture, pack" >&2
  "$writer" idx "$work/idx-$n" "$n" 1000
  "$bin" -q data pack --set data.kind=idx --set "data.root=$work/idx-$n" \
    --set data.image_size=32 --out "$work/packed-$n" --no-progress >/dev/null
  echo "[memory] $n images: one pretraining epoch on the pack" >&2
  median "packed-$n" "$bin" -q pretrain "${common[@]}" --set data.kind=packed \
    --set "data.root=$work/packed-$n" --no-progress >"$work/median"
  result[packed-$n]=$(cat "$work/median")
done
echo "[memory] $big images: one pretraining epoch in memory (IDX)" >&2
median "idx-$big" "$bin" -q pretrain "${common[@]}" --set data.kind=idx \
  --set "data.root=$work/idx-$big" --no-progress >"$work/median"
result[idx-$big]=$(cat "$work/median")
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
echo "machine: $cpu, $(nproc) cores; pretrain 1 epoch, 32x32, model.width=16, fp32"
echo "| data | images | peak RssAnon, median of $runs (MiB) | each run (MiB) |"
echo "|---|---|---|---|"
for key in "packed-$small" "packed-$big" "idx-$big"; do
  each=$(for kb in ${all_runs[$key]}; do echo $(( kb / 1024 )); done | paste -sd, -)
  echo "| ${key%-*} | ${key##*-} | $(( ${result[$key]} / 1024 )) | $each |"
done
awk -v a="${result[packed-$big]}" -v b="${result[packed-$small]}" \
  'BEGIN { printf "packed %s vs %s images: %+.1f%%\n", "'"$big"'", "'"$small"'", (a / b - 1) * 100 }'
