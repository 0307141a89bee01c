"""The training and validation sets of a config: generated (and cached on disk
as memory-mapped uint8 .npy files keyed by their parameters, each with the SHA-256
of its bytes beside it) or loaded from files."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from matap.atomic import atomic_write
from matap.config import DataConfig
from matap.data.digits import digits_fingerprint, load_digits
from matap.data.files import load_videos
from matap.data.loader import GeneratedVideos
from matap.data.moving_mnist import GENERATOR_VERSION, generate
from matap.errors import MatapError


def cache_dir(data: DataConfig) -> Path:
    if data.cache_dir:
        return Path(data.cache_dir)
    return Path(os.environ.get("MATAP_CACHE", Path.home() / ".cache" / "matap"))


def cache_key(data: DataConfig, split: str, num_sequences: int, seq_len: int) -> str:
    params = {
        "version": GENERATOR_VERSION, "digits": digits_fingerprint(data.source, data.idx_dir),
        "motion": data.motion, "num_digits": data.num_digits, "seq_len": seq_len,
        "image_size": data.image_size, "size": num_sequences, "seed": data.seed, "split": split,
    }  # "size" is the number of sequences: the name is part of every cache key written so far
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    return f"moving_mnist-{split}-{num_sequences}x{seq_len}-{digest}"


def save_array(path: Path, arr: np.ndarray) -> None:
    """Write ``arr`` as .npy atomically (:func:`matap.atomic.atomic_write`)."""
    atomic_write(path, lambda fh: np.save(fh, arr))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checksum_path(path: Path) -> Path:
    """Where the SHA-256 of a cached set is kept: ``NAME.npy.sha256`` beside ``NAME.npy``."""
    return path.with_name(path.name + ".sha256")


def _cached(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached set at ``path``, memory-mapped, when its bytes match the checksum written with it and it
    holds uint8 videos of ``shape``; None when there is none. A damaged or unverifiable file is named on
    stderr (it is then regenerated)."""
    if not path.exists():
        return None
    try:
        expected = checksum_path(path).read_text().strip()
    except OSError:
        expected = None
    if expected != _sha256(path):
        problem = "no checksum beside it" if expected is None else "altered or truncated (checksum mismatch)"
        print(f"matap: cached data {path}: {problem}; regenerating it", file=sys.stderr)
        return None
    try:
        arr = np.load(path, mmap_mode="r")
    except (ValueError, OSError):
        return None
    return arr if arr.shape == shape and arr.dtype == np.uint8 else None


def generated_split(data: DataConfig, split: str, seq_len: int | None = None, num_sequences: int | None = None
                    ) -> np.ndarray:
    """(N, T, 64, 64) uint8 Moving MNIST for ``split``, memory-mapped from the cache: ``num_sequences``
    sequences (default: the config's train_size, or val_size for val and test) of ``seq_len`` frames.
    A cached file whose bytes no longer match the SHA-256 written with it is regenerated."""
    seq_len = seq_len or data.seq_len
    num_sequences = num_sequences or (data.train_size if split == "train" else data.val_size)
    path = cache_dir(data) / (cache_key(data, split, num_sequences, seq_len) + ".npy")
    cached = _cached(path, (num_sequences, seq_len, data.image_size, data.image_size))
    if cached is not None:
        return cached
    digits = load_digits(data.source, split, data.idx_dir)
    videos = generate(digits, data.seed, split, range(num_sequences), seq_len, data.num_digits, data.motion,
                      data.image_size)
    save_array(path, videos)
    atomic_write(checksum_path(path), _sha256(path) + "\n")
    return np.load(path, mmap_mode="r")


def training_stream(data: DataConfig) -> GeneratedVideos:
    """Training sequences drawn afresh every epoch (``data.stream``): epoch ``e`` holds sequences
    ``e * train_size ...`` of the training split, so no sequence is seen twice. Epoch 0 is the
    cached training set of :func:`load_split`; validation stays fixed."""
    digits = load_digits(data.source, "train", data.idx_dir)
    return GeneratedVideos(digits, data.seed, "train", data.train_size, data.seq_len, data.num_digits, data.motion)


def validation_videos(data: DataConfig, seq_len: int | None = None) -> np.ndarray:
    """uint8 (N, T, 64, 64): the validation set of ``data``, generated ``seq_len`` frames long when that is
    longer than ``data.seq_len`` (a given file is as long as it is)."""
    if data.source == "array":
        return load_videos(data.val_path, data.layout, option="data.layout={}")
    return generated_split(data, "val", seq_len=max(data.seq_len, seq_len or 0))


def load_split(data: DataConfig, split: str) -> np.ndarray:
    """The config's ``split`` ("train", "val" or, for generated data, "test") as uint8 (N, T, 64, 64)."""
    if data.source == "array":
        if split == "test":
            raise MatapError("data.source=array has no test split; pass the test videos with --data FILE")
        return load_videos(data.train_path if split == "train" else data.val_path, data.layout, option="data.layout={}")
    return generated_split(data, split)
