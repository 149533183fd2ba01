"""Writes a small STL-10 data set in its binary format: noise images, labels cycling 1..10.

Usage: stl10_fixture.py ROOT TRAIN TEST UNLABELED
(the files and layout of the Rust tests' `test_support::fixtures::write_stl10`, with noise for
pixels and no `fold_indices.txt`, written without building that crate's example: run under
other features, cargo rebuilt half the workspace for it).
"""

import os
import sys

import numpy as np

CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


def main(root, train, test, unlabeled):
    out = os.path.join(root, "stl10_binary")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(0)

    def images(name, n):
        rng.integers(0, 256, size=n * 3 * 96 * 96, dtype=np.uint8).tofile(os.path.join(out, name))

    def labels(name, n):
        (np.arange(n) % 10 + 1).astype(np.uint8).tofile(os.path.join(out, name))

    images("train_X.bin", train)
    labels("train_y.bin", train)
    images("test_X.bin", test)
    labels("test_y.bin", test)
    images("unlabeled_X.bin", unlabeled)
    with open(os.path.join(out, "class_names.txt"), "w") as f:
        f.write("\n".join(CLASSES) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    main(sys.argv[1], *(int(a) for a in sys.argv[2:]))
