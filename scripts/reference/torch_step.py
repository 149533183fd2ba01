"""Times the Keras SimCLR example's two training steps written in plain PyTorch eager, at its best
on a CPU: channels-last memory format and bf16 autocast (both switchable). The pretraining step
takes two strong views of 500 unlabeled + 25 labeled 96x96 images (one batched flip/translate/zoom
resampling and a colour affine, as simclr-rs does), runs the encoder and projection head per view
as the Keras `train_step` does, the symmetric contrastive loss and one Adam; then the linear probe
on frozen features of the labeled images with a second Adam. The supervised step is 25 weakly
augmented images through encoder + Dense(10). Random data (resident on --device); prints one
JSON object.

Run it with the project's venv (torch 2.11.0): .venv/bin/python scripts/reference/torch_step.py
"""

import argparse
import contextlib
import json
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

SIZE, WIDTH, CLASSES = 96, 128, 10
UNLABELED, LABELED = 500, 25
STRONG = (0.25, 0.6, 0.2)  # min_area, brightness, jitter
WEAK = (0.75, 0.3, 0.1)


def augment(x, preset, channels_last):
    """uint8 [N,3,H,W] -> float views in [0, 1], on x's device."""
    min_area, brightness, jitter = preset
    zoom = 1.0 - math.sqrt(min_area)
    n, dev = x.shape[0], x.device
    flip = torch.where(torch.rand(n, device=dev) < 0.5, -1.0, 1.0)
    scale = 1.0 - torch.rand(n, 2, device=dev) * zoom
    shift = (torch.rand(n, 2, device=dev) * 2 - 1) * zoom  # normalised: 2 * (zoom / 2)
    theta = torch.zeros(n, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 1, 1] = flip * scale[:, 0], scale[:, 1]
    theta[:, 0, 2], theta[:, 1, 2] = -flip * shift[:, 0], -shift[:, 1]
    grid = F.affine_grid(theta, [n, 3, SIZE, SIZE], align_corners=False)
    x = F.grid_sample(x.float() / 255, grid, padding_mode="reflection", align_corners=False)
    m = torch.eye(3, device=dev) * (1 + (torch.rand(n, 1, 1, device=dev) * 2 - 1) * brightness)
    m = m + (torch.rand(n, 3, 3, device=dev) * 2 - 1) * jitter
    out = torch.bmm(x.reshape(n, 3, -1).transpose(1, 2), m).clamp_(0, 1)
    out = out.view(n, SIZE, SIZE, 3).permute(0, 3, 1, 2)
    return out if channels_last else out.contiguous()


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(3 if i == 0 else WIDTH, WIDTH, 3, 2) for i in range(4))
        self.dense = nn.Linear(WIDTH * 5 * 5, WIDTH)

    def forward(self, x):
        for c in self.convs:
            x = F.relu(c(x))
        return F.relu(self.dense(x.permute(0, 2, 3, 1).flatten(1)))


def contrastive_loss(z1, z2, temperature=0.1):
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    sim = z1 @ z2.T / temperature
    labels = torch.arange(sim.shape[0], device=sim.device)
    return (F.cross_entropy(sim, labels) + F.cross_entropy(sim.T, labels)) / 2


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    ap.add_argument("--layout", choices=["nchw", "channels-last"], default="channels-last")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (data resident there)")
    ap.add_argument(
        "--chunk", type=int, default=0,
        help="encoder slices of this many views over both views at once (0: one forward per view, as Keras)",
    )
    ap.add_argument(
        "--profile", action="store_true",
        help="after timing, print torch.profiler's per-operator table of one pretraining step to stderr",
    )
    args = ap.parse_args()
    torch.manual_seed(0)
    dev = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    cl = args.layout == "channels-last"
    fmt = torch.channels_last if cl else torch.contiguous_format
    autocast = (
        (lambda: torch.autocast(dev.type, dtype=torch.bfloat16))
        if args.precision == "bf16"
        else contextlib.nullcontext
    )
    encoder = Encoder().to(dev, memory_format=fmt)
    head = nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.ReLU(), nn.Linear(WIDTH, WIDTH)).to(dev)
    probe = nn.Linear(WIDTH, CLASSES).to(dev)
    c_opt = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=1e-3, eps=1e-7)
    p_opt = torch.optim.Adam(probe.parameters(), lr=1e-3, eps=1e-7)
    unlabeled = torch.randint(0, 256, (UNLABELED, 3, SIZE, SIZE), dtype=torch.uint8, device=dev)
    labeled = torch.randint(0, 256, (LABELED, 3, SIZE, SIZE), dtype=torch.uint8, device=dev)
    labels = torch.randint(0, CLASSES, (LABELED,), device=dev)

    def pretrain_step():
        images = torch.cat([unlabeled, labeled])
        v1, v2 = augment(images, STRONG, cl), augment(images, STRONG, cl)
        with autocast():
            if args.chunk:
                z = torch.cat([head(encoder(v)) for v in torch.cat([v1, v2]).split(args.chunk)])
                z1, z2 = z.split(v1.shape[0])
            else:
                z1, z2 = head(encoder(v1)), head(encoder(v2))
        loss = contrastive_loss(z1.float(), z2.float())
        c_opt.zero_grad(set_to_none=True)
        loss.backward()
        c_opt.step()
        x = augment(labeled, WEAK, cl)
        with torch.no_grad(), autocast():
            features = encoder(x)
        p_loss = F.cross_entropy(probe(features.float()), labels)
        p_opt.zero_grad(set_to_none=True)
        p_loss.backward()
        p_opt.step()

    clf_encoder = Encoder().to(dev, memory_format=fmt)
    clf_head = nn.Linear(WIDTH, CLASSES).to(dev)
    opt = torch.optim.Adam([*clf_encoder.parameters(), *clf_head.parameters()], lr=1e-3, eps=1e-7)

    def supervised_step():
        x = augment(labeled, WEAK, cl)
        with autocast():
            logits = clf_head(clf_encoder(x))
        loss = F.cross_entropy(logits.float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def timed(step, steps):
        for _ in range(args.warmup):
            step()
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        return (time.perf_counter() - start) / steps

    pretrain = timed(pretrain_step, args.steps)
    if args.profile:
        import sys
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            pretrain_step()
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
        print(table, file=sys.stderr)
    supervised = timed(supervised_step, 20 * args.steps)  # as simclr-cli bench
    print(
        json.dumps(
            {
                "reference": f"pytorch {torch.__version__} eager, {args.device}, {args.layout}, {args.precision}"
                + (f", encoder slices of {args.chunk}" if args.chunk else ""),
                "threads": torch.get_num_threads(),
                "pretrain_seconds_per_step": pretrain,
                "pretrain_views_per_s": 2 * (UNLABELED + LABELED) / pretrain,
                "supervised_seconds_per_step": supervised,
                "supervised_images_per_s": LABELED / supervised,
            }
        )
    )


if __name__ == "__main__":
    main()
