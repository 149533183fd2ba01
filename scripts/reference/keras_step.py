"""Times the Keras SimCLR example's two training steps, written for this harness in Keras 3 on
TensorFlow: the contrastive pretraining step (two strong views of 500 unlabeled + 25 labeled
96x96 images, encoder, projection head, symmetric contrastive loss, one Adam; then the linear
probe on frozen features of the labeled images with a second Adam) and the supervised baseline
step (25 weakly augmented images). Same model sizes, augmentation layers, losses and optimizers
as the example (see ../shared/seed/), on random data, run through `fit` as the example does.

Prints one JSON object: views/s of the pretraining step (both views counted) and images/s of
the supervised step. Run it from scripts/bench-references.sh, which makes its venv.
"""

import argparse
import json
import math
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from keras import layers, ops  # noqa: E402

SIZE, WIDTH, CLASSES = 96, 128, 10
UNLABELED, LABELED = 500, 25
STRONG = dict(min_area=0.25, brightness=0.6, jitter=0.2)
WEAK = dict(min_area=0.75, brightness=0.3, jitter=0.1)


class ColorAffine(layers.Layer):
    """Per image: pixels times (1 + u) I + J, u ~ U(+-brightness), J ~ U(+-jitter), clipped."""

    def __init__(self, brightness, jitter, **kwargs):
        super().__init__(**kwargs)
        self.brightness, self.jitter = brightness, jitter
        self.seeds = keras.random.SeedGenerator(7)

    def call(self, x, training=True):
        if not training:
            return x
        n = ops.shape(x)[0]
        scale = 1.0 + keras.random.uniform(
            (n, 1, 1, 1), -self.brightness, self.brightness, seed=self.seeds
        )
        jitter = keras.random.uniform((n, 1, 3, 3), -self.jitter, self.jitter, seed=self.seeds)
        m = ops.eye(3)[None, None] * scale + jitter
        return ops.clip(ops.matmul(x, m), 0.0, 1.0)


def augmenter(min_area, brightness, jitter):
    zoom = 1.0 - math.sqrt(min_area)
    return keras.Sequential(
        [
            layers.Rescaling(1.0 / 255),
            layers.RandomFlip("horizontal"),
            layers.RandomTranslation(zoom / 2, zoom / 2),
            layers.RandomZoom((-zoom, 0.0), (-zoom, 0.0)),
            ColorAffine(brightness, jitter),
        ]
    )


def encoder():
    convs = [layers.Conv2D(WIDTH, 3, strides=2, activation="relu") for _ in range(4)]
    return keras.Sequential(
        [keras.Input((SIZE, SIZE, 3))]
        + convs
        + [layers.Flatten(), layers.Dense(WIDTH, activation="relu")]
    )


class Pretrainer(keras.Model):
    def __init__(self):
        super().__init__()
        self.strong, self.weak = augmenter(**STRONG), augmenter(**WEAK)
        self.encoder = encoder()
        self.head = keras.Sequential(
            [keras.Input((WIDTH,)), layers.Dense(WIDTH, activation="relu"), layers.Dense(WIDTH)]
        )
        self.probe = keras.Sequential([keras.Input((WIDTH,)), layers.Dense(CLASSES)])
        self.temperature = 0.1

    def compile(self, **kwargs):
        super().compile(**kwargs)
        self.c_opt, self.p_opt = keras.optimizers.Adam(), keras.optimizers.Adam()
        self.p_loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.c_acc = keras.metrics.SparseCategoricalAccuracy()
        self.p_acc = keras.metrics.SparseCategoricalAccuracy()

    def loss_of(self, z1, z2):
        z1, z2 = ops.normalize(z1, axis=1), ops.normalize(z2, axis=1)
        sim = ops.matmul(z1, ops.transpose(z2)) / self.temperature
        labels = ops.arange(ops.shape(z1)[0])
        self.c_acc.update_state(labels, sim)
        self.c_acc.update_state(labels, ops.transpose(sim))
        ce = keras.losses.sparse_categorical_crossentropy
        return (ce(labels, sim, from_logits=True) + ce(labels, ops.transpose(sim), from_logits=True)) / 2

    def train_step(self, data):
        (unlabeled, _), (labeled, labels) = data
        images = ops.concatenate((unlabeled, labeled), axis=0)
        v1, v2 = self.strong(images, training=True), self.strong(images, training=True)
        with tf.GradientTape() as tape:
            z1 = self.head(self.encoder(v1, training=True), training=True)
            z2 = self.head(self.encoder(v2, training=True), training=True)
            c_loss = self.loss_of(z1, z2)
        params = self.encoder.trainable_weights + self.head.trainable_weights
        self.c_opt.apply_gradients(zip(tape.gradient(c_loss, params), params))
        x = self.weak(labeled, training=True)
        with tf.GradientTape() as tape:
            logits = self.probe(self.encoder(x, training=False), training=True)
            p_loss = self.p_loss_fn(labels, logits)
        params = self.probe.trainable_weights
        self.p_opt.apply_gradients(zip(tape.gradient(p_loss, params), params))
        self.p_acc.update_state(labels, logits)
        return {"c_loss": ops.mean(c_loss), "c_acc": self.c_acc.result(), "p_loss": p_loss}


def images(n, rng):
    return rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def timed_fit(model, ds, warmup, steps):
    model.fit(ds, epochs=1, steps_per_epoch=warmup, verbose=0)
    start = time.perf_counter()
    model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0)
    return (time.perf_counter() - start) / steps


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    u = tf.data.Dataset.from_tensor_slices((images(4 * UNLABELED, rng), np.zeros(4 * UNLABELED, np.int64)))
    l_img, l_lab = images(4 * LABELED, rng), rng.integers(0, CLASSES, 4 * LABELED)
    lab = tf.data.Dataset.from_tensor_slices((l_img, l_lab))
    zipped = tf.data.Dataset.zip((u.batch(UNLABELED), lab.batch(LABELED))).repeat().prefetch(2)

    pre = Pretrainer()
    pre.compile()
    pretrain = timed_fit(pre, zipped, args.warmup, args.steps)

    baseline = keras.Sequential(
        [keras.Input((SIZE, SIZE, 3)), augmenter(**WEAK), encoder(), layers.Dense(CLASSES)]
    )
    baseline.compile(
        optimizer=keras.optimizers.Adam(),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
    )
    sup_steps = 20 * args.steps  # as simclr-cli bench: a supervised step is ~40x shorter
    supervised = timed_fit(baseline, lab.batch(LABELED).repeat().prefetch(2), args.warmup, sup_steps)
    print(
        json.dumps(
            {
                "reference": f"keras {keras.__version__} on tensorflow {tf.__version__}",
                "pretrain_seconds_per_step": pretrain,
                "pretrain_views_per_s": 2 * (UNLABELED + LABELED) / pretrain,
                "supervised_seconds_per_step": supervised,
                "supervised_images_per_s": LABELED / supervised,
            }
        )
    )


if __name__ == "__main__":
    main()
