#!/usr/bin/env bash
# Input paths timed in one run on this machine: simclr-cli bench --data on a folder of JPEG
# photos streamed (decoded batch by batch), the same images as WebDataset tar shards streamed,
# and packed (`data pack`, memory-mapped .npy shards), against the PyTorch reference on the same
# folder (torchvision ImageFolder + DataLoader, scripts/reference/torch_loader.py, with the same
# number of workers, resize to cover and centre crop). Runs alternate for ROUNDS rounds; the best
# of each counts. The photos are generated here (smooth shapes and noise, JPEG quality 90, 160x120,
# resized to 96x96, as STL-10's 96x96 crops of ImageNet photos are made); the page cache is warm.
#
# Usage: scripts/bench-data.sh [WORKERS] [IMAGES] [ROUNDS]   (defaults: every core, 20000, 2)
# Needs PyPI once: torchvision 0.26.0 (for torch 2.11.0) and Pillow in .venv-vision, whose
# torch is the project venv's.
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-$(nproc)}
images=${2:-20000}
rounds=${3:-2}
bin=target/release/simclr-cli
[ -x "$bin" ] || cargo build --release --locked -p cli
[ -x .venv/bin/python ] || bash scripts/setup.sh --no-build
if ! .venv-vision/bin/python -c "import torchvision, PIL" 2>/dev/null; then
  echo "[bench-data] creating .venv-vision: torchvision 0.26.0 over the project's torch, Pillow" >&2
  "${PYTHON:-python3}" -m venv .venv-vision
  .venv-vision/bin/python -m pip install --quiet --disable-pip-version-check pillow numpy
  .venv-vision/bin/python -m pip install --quiet --disable-pip-version-check \
    --no-deps torchvision==0.26.0
  site=$(.venv-vision/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  (cd .venv/lib/python3*/site-packages && pwd) >"$site/project-torch.pth"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "[bench-data] writing photos and WebDataset shards under $work" >&2
.venv-vision/bin/python - "$work" "$images" <<'PY'
import io, os, random, sys, tarfile
from PIL import Image, ImageDraw, ImageFilter
root, n = sys.argv[1], int(sys.argv[2])
random.seed(0)
def photo(i):
    img = Image.new("RGB", (160, 120), tuple(random.randrange(256) for _ in range(3)))
    d = ImageDraw.Draw(img)
    for _ in range(12):
        x, y = random.randrange(160), random.randrange(120)
        r = random.randrange(8, 50)
        d.ellipse((x - r, y - r, x + r, y + r), fill=tuple(random.randrange(256) for _ in range(3)))
    img = img.filter(ImageFilter.GaussianBlur(2))
    noise = Image.effect_noise((160, 120), 24).convert("RGB")
    img = Image.blend(img, noise, 0.15)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()
splits = {"unlabeled": n, "train": max(n // 20, 50), "test": 50}
for split, count in splits.items():
    tars = os.path.join(root, "wds", split)
    os.makedirs(tars, exist_ok=True)
    shard = None
    for i in range(count):
        cls = i % 10
        folder = os.path.join(root, "folder", split, "all" if split == "unlabeled" else f"c{cls}")
        os.makedirs(folder, exist_ok=True)
        data = photo(i)
        open(os.path.join(folder, f"{i:06}.jpg"), "wb").write(data)
        if i % 1000 == 0:
            if shard: shard.close()
            shard = tarfile.open(os.path.join(tars, f"shard-{i // 1000:04}.tar"), "w")
        members = [(f"{i:06}.jpg", data)] + ([] if split == "unlabeled" else [(f"{i:06}.cls", str(cls).encode())])
        for name, b in members:
            info = tarfile.TarInfo(name); info.size = len(b)
            shard.addfile(info, io.BytesIO(b))
    shard.close()
PY
du -sh "$work/folder/unlabeled" >&2
common=(--set data.image_size=96 --set data.batch_size=525)
"$bin" -q data pack "${common[@]}" --set data.kind=folder --set "data.root=$work/folder" \
  --out "$work/packed" --no-progress >&2
out="$work/results"; mkdir -p "$out"
bench() {
  "$bin" -q bench --data --images "$images" --workers "$workers" "${common[@]}" "$@"
}
for r in $(seq "$rounds"); do
  echo "[bench-data] round $r/$rounds" >&2
  bench --set data.kind=folder --set "data.root=$work/folder" --set data.streaming=always >>"$out/folder.jsonl"
  bench --set data.kind=webdataset --set "data.root=$work/wds" --set data.streaming=always >>"$out/wds.jsonl"
  bench --set data.kind=packed --set "data.root=$work/packed" >>"$out/packed.jsonl"
  .venv-vision/bin/python -W ignore scripts/reference/torch_loader.py "$work/folder/unlabeled" \
    --workers "$workers" --images "$images" --batch 500 2>/dev/null >>"$out/torch.jsonl"
done
python3 - "$out" "$workers" <<'PY'
import json, pathlib, platform, sys
out, workers = pathlib.Path(sys.argv[1]), int(sys.argv[2])
def best(name):
    rows = [json.loads(l) for l in (out / f"{name}.jsonl").read_text().splitlines() if l.strip()]
    return max(rows, key=lambda r: r["images_per_s"])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
ref = best("torch")
print(f"machine: {cpu}, {workers} workers; 160x120 JPEG photos to 96x96; best of each path's rounds")
print("| input path | images/s | per worker | vs the PyTorch reference per worker |")
print("|---|---|---|---|")
for name, label in [("folder", "simclr-cli: folder, streamed"), ("wds", "simclr-cli: WebDataset shards, streamed"), ("packed", "simclr-cli: packed")]:
    r = best(name)
    print(f"| {label} | {r['images_per_s']:.0f} | {r['images_per_s_per_worker']:.0f} | {r['images_per_s_per_worker'] / ref['images_per_s_per_worker']:.2f}x |")
print(f"| {ref['reference']} | {ref['images_per_s']:.0f} | {ref['images_per_s_per_worker']:.0f} | 1.00x |")
packed = best("packed")["images_per_s_per_worker"]
print(f"packed: {70000 / packed:.1f} workers for 70,000 images/s (the seed's STL-10 epoch in 1.5 s on an H100)")
PY
