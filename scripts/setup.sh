#!/usr/bin/env bash
# Sets simclr-rs up on a fresh clone, idempotently:
#   1. a project venv (.venv) with torch==2.11.0 from PyPI, the libtorch that tch 0.24 expects,
#      linked as .libtorch (what .cargo/config.toml points LIBTORCH at), and the CUDA headers
#      c10d's NCCL backend compiles with (nvidia-cuda-crt, nvidia-cuda-cccl);
#   2. Debian's dataset-fashion-mnist, the real data set the quick-start config uses, and
#      libgloo-dev, the headers of c10d's gloo backend (distributed training on CPUs);
#   3. the release binary target/release/simclr-cli.
# Options: --no-build (skip step 3). LIBTORCH=/path/to/libtorch skips step 1 (see docs/setup.md).
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.11.0
PYTHON=${PYTHON:-python3}
build=1
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

# Bold only on a terminal: a log file or a pipe gets plain text.
if [ -t 1 ]; then
  say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
else
  say() { printf '[setup] %s\n' "$*"; }
fi

if [ -n "${LIBTORCH:-}" ]; then
  say "using LIBTORCH=$LIBTORCH (no venv)"
else
  if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
    say "creating .venv with torch==$TORCH_VERSION (large download on the first run)"
    # torch with its CUDA wheels: 4.6 GiB installed, 7.1 GiB used at the install's peak (the
    # wheels and the unpacked files at once; measured on 2026-12-03 with df every 0.5 s).
    free_kb=$(df -Pk . | awk 'NR == 2 { print $4 }')
    if [ "${free_kb:-0}" -lt $((8 * 1024 * 1024)) ]; then
      echo "setup.sh: only $((free_kb / 1024 / 1024)) GiB free on $(df -P . | awk 'NR == 2 { print $6 }');" \
        "installing torch needs 7.1 GiB at its peak, 4.6 GiB after (free space, or set LIBTORCH" \
        "to an existing libtorch)" >&2
      exit 1
    fi
    [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-cache-dir "torch==$TORCH_VERSION"
  fi
  # Headers only (no libraries): what the wheel's own nvidia packages lack for compiling against
  # c10d's NCCL process group (crates/dist).
  if ! .venv/bin/python -c "import importlib.metadata as m; m.version('nvidia-cuda-crt'); m.version('nvidia-cuda-cccl')" 2>/dev/null; then
    say "installing the CUDA headers c10d's NCCL backend compiles with"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-cache-dir --no-deps \
      "nvidia-cuda-crt>=13.0,<13.1" "nvidia-cuda-cccl>=13.0,<13.1"
  fi
  torch_dir=$(.venv/bin/python -c "import os, torch; print(os.path.dirname(torch.__file__))" 2>/dev/null)
  ln -sfn "$torch_dir" .libtorch
  say "libtorch: .libtorch -> $torch_dir"
fi

# Debian packages: the quick start's data set, and gloo's headers for crates/dist.
missing=()
[ -d /usr/share/datasets/fashion-mnist ] || missing+=(dataset-fashion-mnist)
[ -f /usr/include/gloo/config.h ] || missing+=(libgloo-dev)
if [ ${#missing[@]} = 0 ]; then
  say "Fashion-MNIST: /usr/share/datasets/fashion-mnist; gloo headers: /usr/include/gloo"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  say "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  say "installing ${missing[*]} (sudo)"
  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  say "missing Debian packages; install them with: sudo apt-get install ${missing[*]}"
fi

if [ "$build" = 1 ]; then
  say "building target/release/simclr-cli"
  cargo build --release --locked -p cli
  say "done: ./target/release/simclr-cli --help"
fi
