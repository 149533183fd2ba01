#!/usr/bin/env bash
# Fuzzes every reader of user files with libFuzzer (cargo-fuzz): the STL-10 label, class-name
# and fold files, IDX files, image-folder decoding, CIFAR record, name and archive files,
# WebDataset tar shards, packed data sets (manifest, image and label shards), the
# configuration with --set, and checkpoints (safetensors files and resume states).
#
#   scripts/fuzz.sh [RUNS] [TARGET...]     # default: 1000000 runs of every target
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`); RUSTC_BOOTSTRAP=1 lets the stable toolchain
# take the sanitizer flags. Crashes land in fuzz/artifacts/<target>/; each one found becomes a
# regression test. Prints one line per target: executions, seconds, and the result.
# fuzz/seeds/ holds small valid inputs of each kind (PNG, JPEG, IDX, configs, a checkpoint and a
# resume state) so the fuzzer starts from real files rather than from nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-1000000}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(stl10 idx image_folder cifar webdataset packed config checkpoint)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
mkdir -p fuzz/logs
for t in "${targets[@]}"; do
    start=$(date +%s)
    status=ok
    mkdir -p "fuzz/corpus/$t"
    # New inputs go to fuzz/corpus/<target>; fuzz/seeds/<target> (valid files) starts it off.
    cargo fuzz run -O "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- -runs="$runs" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
        >"fuzz/logs/$t.log" 2>&1 || status="FAILED (see fuzz/logs/$t.log and fuzz/artifacts/$t/)"
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "fuzz/logs/$t.log" | grep -o '[0-9]*$' || echo "?")
    echo "$t: $execs executions in $(( $(date +%s) - start )) s: $status"
done
