"""Seeded Moving MNIST: every sequence is a pure function of (seed, split, index).

Two motion models:

- ``reference`` (default, as the paper's public implementation): start
  position uniform, speed uniform in [2, 5] px per frame, uniform direction,
  reflection at the borders, integer (rounded) positions, digits added and
  clipped to [0, 255].
- ``classic`` (Srivastava et al., 2015): speed 3.6 px per frame (0.1 of the
  36-px free range), uniform direction, reflection, positions floored, digits
  combined by maximum.

The random draws of a sequence (digits, start, velocity) depend only on
(seed, split, index); the trajectory is deterministic after that, so a longer
sequence extends a shorter one frame by frame.
"""

from __future__ import annotations

import numpy as np

from matap.errors import MatapError

_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}
GENERATOR_VERSION = 1  # bump when the output of generate() changes for the same arguments


def _trajectory(rng: np.random.Generator, num_digits: int, seq_len: int, free: int, motion: str) -> np.ndarray:
    """Top-left corners, (seq_len, num_digits, 2) int, of each digit over time."""
    pos = rng.uniform(0, free, size=(num_digits, 2))
    theta = rng.uniform(0, 2 * np.pi, size=num_digits)
    speed = rng.uniform(2.0, 5.0, size=num_digits) if motion == "reference" else np.full(num_digits, 0.1 * free)
    vel = np.stack([np.sin(theta), np.cos(theta)], axis=1) * speed[:, None]  # (num_digits, 2) as (dy, dx)
    out = np.empty((seq_len, num_digits, 2), dtype=np.int64)
    for t in range(seq_len):
        out[t] = np.rint(pos) if motion == "reference" else np.floor(pos)
        pos = pos + vel
        low, high = pos < 0, pos > free
        pos = np.where(low, -pos, np.where(high, 2 * free - pos, pos))
        vel = np.where(low | high, -vel, vel)
    return np.clip(out, 0, free)


def generate(
    digits: np.ndarray,
    seed: int,
    split: str,
    indices: np.ndarray | range,
    seq_len: int = 20,
    num_digits: int = 2,
    motion: str = "reference",
    frame_size: int = 64,
) -> np.ndarray:
    """Render sequences ``indices`` of a split: (len(indices), seq_len, frame_size, frame_size) uint8."""
    if motion not in ("reference", "classic"):
        raise MatapError(f"motion must be 'reference' or 'classic', got {motion!r}")
    n_digits, h, w = digits.shape
    free = frame_size - max(h, w)
    out = np.zeros((len(indices), seq_len, frame_size, frame_size), dtype=np.uint8)
    canvas = np.zeros((seq_len, frame_size, frame_size), dtype=np.uint16)
    t_idx = np.arange(seq_len)[:, None, None]
    rows, cols = np.arange(h)[None, :, None], np.arange(w)[None, None, :]
    for i, index in enumerate(indices):
        rng = np.random.default_rng([int(seed), _SPLIT_CODE[split], int(index)])
        chosen = rng.integers(0, n_digits, size=num_digits)
        corners = _trajectory(rng, num_digits, seq_len, free, motion)
        canvas.fill(0)
        for k in range(num_digits):
            y = corners[:, k, 0][:, None, None] + rows  # (T, h, 1)
            x = corners[:, k, 1][:, None, None] + cols  # (T, 1, w)
            patch = np.broadcast_to(digits[chosen[k]], (seq_len, h, w))
            if motion == "reference":
                canvas[t_idx, y, x] += patch
            else:
                canvas[t_idx, y, x] = np.maximum(canvas[t_idx, y, x], patch)
        out[i] = np.minimum(canvas, 255)
    return out
