"""The PyTorch reference input path for `simclr-cli bench --data`: torchvision's ImageFolder and
a DataLoader with the same number of workers, the same resize-to-cover and centre crop, uint8
CHW tensors as simclr-cli hands to its step (no float conversion), shuffled batches. Prints one
JSON object: images/s over --images images after the first batch (worker start-up excluded,
as simclr-cli's open time is), and per worker."""

import argparse
import json
import time

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

p = argparse.ArgumentParser()
p.add_argument("root", help="an ImageFolder root (class folders of JPEG/PNG files)")
p.add_argument("--size", type=int, default=96)
p.add_argument("--batch", type=int, default=525)
p.add_argument("--workers", type=int, default=2)
p.add_argument("--images", type=int, default=20000)
a = p.parse_args()

torch.set_num_threads(1)
tf = transforms.Compose(
    [
        transforms.Resize(a.size, antialias=True),
        transforms.CenterCrop(a.size),
        transforms.PILToTensor(),
    ]
)
ds = datasets.ImageFolder(a.root, transform=tf)
loader = DataLoader(
    ds,
    batch_size=a.batch,
    shuffle=True,
    num_workers=a.workers,
    persistent_workers=a.workers > 0,
    prefetch_factor=2 if a.workers > 0 else None,
    drop_last=True,
)
done, start, first = 0, None, None
opened = time.perf_counter()
while done < a.images:
    for images, labels in loader:
        if start is None:
            start, first = time.perf_counter(), images.shape[0]
            continue
        done += images.shape[0]
        if done >= a.images:
            break
seconds = time.perf_counter() - start
rate = done / seconds
print(
    json.dumps(
        {
            "reference": f"torchvision {__import__('torchvision').__version__} ImageFolder + DataLoader",
            "workers": a.workers,
            "image_size": a.size,
            "batch_images": a.batch,
            "first_batch_seconds": start - opened,
            "images": done,
            "seconds": seconds,
            "images_per_s": rate,
            "images_per_s_per_worker": rate / max(a.workers, 1),
        }
    )
)
