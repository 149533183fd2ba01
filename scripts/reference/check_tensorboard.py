"""Reads a simclr-rs run folder's TensorBoard files back with TensorBoard itself.

Usage: check_tensorboard.py RUN_DIR [RUN_DIR ...]

For every run in RUN_DIR/tensorboard/ (baseline, pretraining, finetuning):
  - raw events, through TensorBoard's own reader (its record checksums checked): no tag has a
    step twice, across all of the run's event files;
  - a TensorBoard server on loopback (with either loader: Python's, and the Rust data server
    that `tensorboard --logdir` uses by default) serves every `epoch/<metric>` scalar
    equal, epoch by epoch, to RUN_DIR/<run>.json (as float32); `step/` and `learning_rate/`
    scalars at increasing global steps; `augmentations` (and pretraining's
    `features/embedding`) as PNGs that decode to the size of the run folder's picture;
    `config` as text holding RUN_DIR/config.toml;
  - pretraining's projector (served by TensorBoard's projector plugin): the embedding's
    float32 tensor, one metadata row per vector with the run's class names, and a sprite that
    decodes to a grid of square thumbnails.
Exits 1 with every problem named.
"""

import html
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter

import numpy as np
from PIL import Image
from tensorboard.backend.event_processing import event_file_loader

RUNS = ("baseline", "pretraining", "finetuning")
problems = []


def problem(text):
    problems.append(text)
    print("FAIL:", text)


def raw_duplicates(log_dir):
    """(tag, step) pairs written more than once in the run's event files."""
    seen = Counter()
    for name in sorted(os.listdir(log_dir)):
        if "tfevents" not in name:
            continue
        for event in event_file_loader.EventFileLoader(os.path.join(log_dir, name)).Load():
            for value in event.summary.value:
                seen[(value.tag, event.step)] += 1
    return [k for k, n in seen.items() if n > 1], len(seen)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, logdir, load_fast):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "tensorboard"), "--logdir", logdir,
             "--host", "127.0.0.1", "--port", str(self.port), f"--load_fast={load_fast}",
             "--reload_interval", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def get(self, path, **query):
        url = f"http://127.0.0.1:{self.port}{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.read()

    def json(self, path, **query):
        return json.loads(self.get(path, **query))

    def wait_for_runs(self, runs):
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit("tensorboard exited: " + self.proc.stderr.read().decode())
            try:
                tags = self.json("/data/plugin/scalars/tags")
                if all(r in tags and any(t.startswith("epoch/") for t in tags[r]) for r in runs):
                    time.sleep(2)  # one more reload: every file read to its end
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise SystemExit("tensorboard did not load the runs in 120 s")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def check_image(server, run, tag, picture, where):
    entries = server.json("/data/plugin/images/images", run=run, tag=tag)
    if len(entries) != 1:
        return problem(f"{where} {tag}: {len(entries)} images, not 1")
    png = server.get("/data/plugin/images/individualImage?" + entries[0]["query"])
    got = Image.open(io.BytesIO(png))
    got.load()
    want = Image.open(picture)
    if got.size != want.size:
        problem(f"{where} {tag}: {got.size} pixels, the folder's picture {want.size}")
    return entries[0]["step"]


def check_run_folder(folder, load_fast):
    logdir = os.path.join(folder, "tensorboard")
    runs = [r for r in RUNS if os.path.isdir(os.path.join(logdir, r))]
    if not runs:
        return problem(f"{logdir}: no run")
    for run in runs:
        duplicates, pairs = raw_duplicates(os.path.join(logdir, run))
        if duplicates:
            problem(f"{folder} {run}: tags written twice at a step: {sorted(duplicates)[:5]}")
        else:
            print(f"{folder} {run}: {pairs} tags at a step in the event files, none twice")
    server = Server(logdir, load_fast)
    try:
        server.wait_for_runs(runs)
        tags = server.json("/data/plugin/scalars/tags")
        config = open(os.path.join(folder, "config.toml")).read()
        for run in runs:
            where = f"{folder} {run}"
            history = json.load(open(os.path.join(folder, f"{run}.json")))["epochs"]
            metrics = [k for k in history[0] if k != "epoch"]
            for metric in metrics:
                got = server.json("/data/plugin/scalars/scalars", run=run, tag=f"epoch/{metric}")
                steps = [s for _, s, _ in got]
                want_steps = [e["epoch"] for e in history]
                if steps != want_steps:
                    problem(f"{where} epoch/{metric}: steps {steps}, history epochs {want_steps}")
                    continue
                want = np.array([e[metric] for e in history], dtype=np.float32)
                values = np.array([v for _, _, v in got], dtype=np.float32)
                if not np.array_equal(values, want, equal_nan=True):
                    problem(f"{where} epoch/{metric}: {values.tolist()} != {want.tolist()}")
            step_tags = [t for t in tags[run] if t.startswith(("step/", "learning_rate/"))]
            if not step_tags:
                problem(f"{where}: no step/ or learning_rate/ scalars")
            for tag in step_tags:
                steps = [s for _, s, _ in server.json("/data/plugin/scalars/scalars", run=run, tag=tag)]
                if steps != sorted(set(steps)) or steps[0] < 1:
                    problem(f"{where} {tag}: steps {steps} not increasing from 1")
            check_image(server, run, "augmentations", os.path.join(folder, "augmentations.png"), where)
            texts = server.json("/data/plugin/text/text", run=run, tag="config")
            shown = html.unescape(texts[0]["text"]) if len(texts) == 1 else ""
            missing = [l for l in config.splitlines() if l.strip() and l not in shown]
            if len(texts) != 1 or missing:
                problem(f"{where} config: {len(texts)} texts; lines of config.toml not shown: "
                        f"{missing[:3]}")
            print(f"{where}: {len(metrics)} epoch scalars equal {run}.json over {len(history)} "
                  f"epochs; {len(step_tags)} step scalars; augmentations and config read")
        if "pretraining" in runs:
            check_projector(server, folder, len(json.load(open(os.path.join(folder, "pretraining.json")))["epochs"]))
    finally:
        server.stop()


def check_projector(server, folder, epochs):
    where = f"{folder} pretraining"
    step = check_image(server, "pretraining", "features/embedding",
                       os.path.join(folder, "embedding.png"), where)
    if step != epochs:
        problem(f"{where} features/embedding at step {step}, not the last epoch {epochs}")
    deadline = time.time() + 30
    runs = []
    while time.time() < deadline and "pretraining" not in runs:
        runs = server.json("/data/plugin/projector/runs")
        time.sleep(0.5)
    if "pretraining" not in runs:
        return problem(f"{where}: the projector lists runs {runs}")
    config = server.json("/data/plugin/projector/info", run="pretraining")
    (embedding,) = config["embeddings"]
    name = embedding["tensorName"]
    rows, dim = (int(x) for x in embedding["tensorShape"])
    tensor = np.frombuffer(server.get("/data/plugin/projector/tensor", run="pretraining", name=name),
                           dtype=np.float32)
    if tensor.size != rows * dim or not np.isfinite(tensor).all():
        problem(f"{where} projector: {tensor.size} finite values for [{rows}, {dim}]")
    metadata = server.get("/data/plugin/projector/metadata", run="pretraining", name=name).decode()
    lines = metadata.splitlines()
    classes = [l.strip() for l in open(os.path.join(folder, "classes.txt")) if l.strip()]
    if lines[0] != "class\tlabel" or len(lines) != rows + 1:
        problem(f"{where} projector metadata: header {lines[0]!r}, {len(lines) - 1} rows for {rows}")
    for line in lines[1:]:
        name_, label = line.split("\t")
        if classes[int(label)] != name_:
            problem(f"{where} projector metadata: {line!r} against classes.txt")
            break
    sprite = Image.open(io.BytesIO(server.get("/data/plugin/projector/sprite_image",
                                              run="pretraining", name=name)))
    size = int(embedding["sprite"]["singleImageDim"][0])
    per_row = int(np.ceil(np.sqrt(rows)))
    if sprite.size[0] != per_row * size or sprite.size[1] < (rows // per_row) * size:
        problem(f"{where} projector sprite: {sprite.size} for {rows} thumbnails of {size}")
    print(f"{where}: projector serves [{rows}, {dim}] features, {rows} metadata rows, "
          f"a {sprite.size[0]}x{sprite.size[1]} sprite; features/embedding at epoch {step}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    # TensorBoard's two loaders: its Python one and the Rust data server `tensorboard
    # --logdir` uses by default.
    for load_fast in ("false", "true"):
        print(f"--load_fast={load_fast}")
        for folder in sys.argv[1:]:
            check_run_folder(folder, load_fast)
    if problems:
        print(f"{len(problems)} problems")
        sys.exit(1)
    print("TensorBoard reads every run as written")
