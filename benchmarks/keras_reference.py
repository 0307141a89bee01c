"""The paper's models written in Keras (TensorFlow), timed as `matap bench` times matap's.

    python benchmarks/keras_reference.py [--models matap gru] [--batch-size 32] [--repeats 5] [--json FILE]

Run it with a Python that has TensorFlow (``pip install tensorflow``); ``benchmarks/reference.py`` runs it
beside ``matap bench`` in one window and prints the ratios. The models follow the paper's appendix A and
Eq. 1-7 at d = 64, K = 10, 4 heads (key_dim 16): encoder A.1, the MA-TAP cell A.3 or the GRU baseline
(Dense(d) -> GRU -> LayerNorm), the predictor Dense(2d, ReLU) -> Dropout(0.1) -> Dense(d), decoder A.2. Their
trainable parameter counts are checked against the paper's (4,906,977 and 4,873,633) before anything is
timed. The training step is the reference's objective, BCE of the decoded prediction of step t against
frame t plus 0.1 times the latent MSE against z_{t+1}, with Adam (1e-3) and the gradient's global norm
clipped to 1.0, in one ``tf.function``; inference is the teacher-forced pass and its decoding. Float32
throughout, on batches of (B, 20, 64, 64, 1) random frames in [0, 1].
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402
from tensorflow import keras  # noqa: E402
from tensorflow.keras import layers  # noqa: E402

D, K, HEADS, T = 64, 10, 4, 20
PAPER_PARAMETERS = {"matap": 4_906_977, "gru": 4_873_633}


def encoder() -> keras.Sequential:
    blocks = []
    for channels in (32, 64, 128):
        blocks += [layers.Conv2D(channels, 4, strides=2, padding="same"), layers.BatchNormalization(), layers.ReLU()]
    return keras.Sequential([keras.Input((64, 64, 1)), *blocks, layers.Flatten(), layers.Dense(256, activation="relu"),
                             layers.Dropout(0.2), layers.Dense(D)], name="encoder")


def decoder() -> keras.Sequential:
    blocks = []
    for channels in (128, 64, 32):
        blocks += [layers.Conv2DTranspose(channels, 4, strides=2, padding="same"), layers.BatchNormalization(),
                   layers.ReLU()]
    return keras.Sequential([keras.Input((D,)), layers.Dense(256, activation="relu"),
                             layers.Dense(8 * 8 * 128, activation="relu"), layers.Reshape((8, 8, 128)), *blocks,
                             layers.Conv2D(1, 3, padding="same")], name="decoder")   # logits; sigmoid in the loss


def predictor() -> keras.Sequential:
    return keras.Sequential([keras.Input((D,)), layers.Dense(2 * D, activation="relu"), layers.Dropout(0.1),
                             layers.Dense(D)], name="predictor")


class GRUBaseline(layers.Layer):
    """Dense(d) -> GRU -> LayerNorm, unrolled over the T steps."""

    def __init__(self) -> None:
        super().__init__()
        self.input_proj = layers.Dense(D)
        self.gru = layers.GRUCell(D)        # reset_after=True: separate input and recurrent biases
        self.norm_out = layers.LayerNormalization()

    def call(self, z: tf.Tensor, training: bool = False) -> tf.Tensor:
        x = self.input_proj(z)                                    # (B, T, d)
        h, outputs = tf.zeros_like(x[:, 0]), []
        for t in range(T):
            h = self.norm_out(self.gru(x[:, t], [h], training=training)[0])
            outputs.append(h)
        return tf.stack(outputs, axis=1)


class MATAP(layers.Layer):
    """Eq. 1-5: GRU on the projected input, 4-head attention over the K previous memory writes (starting as
    K zero slots), LayerNorm, tanh context projection, the gate over [h~; context], LayerNorm, FIFO write."""

    def __init__(self) -> None:
        super().__init__()
        self.input_proj = layers.Dense(D)
        self.gru = layers.GRUCell(D)
        self.attention = layers.MultiHeadAttention(HEADS, key_dim=D // HEADS, dropout=0.1)
        self.norm_context = layers.LayerNormalization()
        self.context_proj = layers.Dense(D, activation="tanh")
        self.gate = layers.Dense(D, activation="sigmoid")
        self.memory_write = layers.Dense(D)
        self.norm_out = layers.LayerNormalization()

    def call(self, z: tf.Tensor, training: bool = False) -> tf.Tensor:
        x = self.input_proj(z)                                    # (B, T, d)
        h = tf.zeros_like(x[:, 0])
        memory = tf.zeros([tf.shape(x)[0], K, D], dtype=x.dtype)  # (B, K, d)
        outputs = []
        for t in range(T):
            local = self.gru(x[:, t], [h], training=training)[0]                         # Eq. 1
            read = self.attention(local[:, None], memory, training=training)[:, 0]       # Eq. 2
            context = self.context_proj(self.norm_context(read))
            alpha = self.gate(tf.concat([local, context], axis=-1))                      # Eq. 3
            h = self.norm_out((1 - alpha) * local + alpha * context)                     # Eq. 4
            memory = tf.concat([memory[:, 1:], self.memory_write(x[:, t])[:, None]], axis=1)  # Eq. 5
            outputs.append(h)
        return tf.stack(outputs, axis=1)


class Reference(keras.Model):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.encoder, self.decoder, self.predictor = encoder(), decoder(), predictor()
        self.cell = MATAP() if name == "matap" else GRUBaseline()

    def call(self, frames: tf.Tensor, training: bool = False) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """frames (B, T, 64, 64, 1) -> z (B, T, d), z_next (B, T, d), logits of the decoded z_next."""
        B = tf.shape(frames)[0]
        z = tf.reshape(self.encoder(tf.reshape(frames, [-1, 64, 64, 1]), training=training), [B, T, D])
        h = tf.reshape(self.cell(z, training=training), [-1, D])          # (B T, d)
        z_next = self.predictor(h, training=training)
        logits = tf.reshape(self.decoder(z_next, training=training), [B, T, 64, 64, 1])
        z_next = tf.reshape(z_next, [B, T, D])
        return z, z_next, logits


def build(name: str, batch: int) -> Reference:
    model = Reference(name)
    model(tf.zeros([batch, T, 64, 64, 1]))
    count = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    if count != PAPER_PARAMETERS[name]:
        sys.exit(f"error: the Keras {name} has {count:,} trainable parameters, the paper's {PAPER_PARAMETERS[name]:,}")
    return model


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(step, frames: tf.Tensor, warmup: int, repeats: int) -> float:
    """Median seconds of ``step(frames)`` over ``repeats`` calls after ``warmup``."""
    for _ in range(warmup):
        step(frames)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = step(frames)
        float(tf.reduce_sum(out))      # waits for the step's result
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(name: str, batch: int, warmup: int, repeats: int) -> dict:
    model = build(name, batch)
    optimizer = keras.optimizers.Adam(1e-3, global_clipnorm=1.0)
    frames = tf.random.uniform([batch, T, 64, 64, 1])

    @tf.function
    def train_step(x: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            z, z_next, logits = model(x, training=True)
            rec = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits))
            latent = tf.reduce_mean(tf.square(z_next[:, :-1] - z[:, 1:]))
            loss = rec + 0.1 * latent
        grads = tape.gradient(loss, model.trainable_weights)
        optimizer.apply_gradients(zip(grads, model.trainable_weights))
        return loss

    @tf.function
    def infer(x: tf.Tensor) -> tf.Tensor:
        return tf.sigmoid(model(x, training=False)[2])

    train_s = timed(train_step, frames, warmup, repeats)
    infer_s = timed(infer, frames, warmup, repeats)
    return {"model": name, "parameters": PAPER_PARAMETERS[name], "train_frames_per_s": batch * T / train_s,
            "infer_frames_per_s": batch * T / infer_s, "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["matap", "gru"], choices=sorted(PAPER_PARAMETERS))
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", help="also write the results to this JSON file")
    args = p.parse_args()
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1 (default)")
    rows = [bench(name, args.batch_size, args.warmup, args.repeats) for name in args.models]
    result = {"framework": f"tensorflow {tf.__version__}", "python": platform.python_version(),
              "onednn": onednn, "threads": os.cpu_count(), "batch_size": args.batch_size, "precision": "fp32",
              "models": rows}
    print(f"keras reference  tensorflow {tf.__version__} (oneDNN {onednn}), fp32, batch {args.batch_size} x {T} frames")
    print(f"{'model':<8} {'train fr/s':>11} {'infer fr/s':>11} {'peak RSS MB':>12}")
    for r in rows:
        print(f"{r['model']:<8} {r['train_frames_per_s']:>11.1f} {r['infer_frames_per_s']:>11.1f} {r['peak_rss_mb']:>12.0f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
