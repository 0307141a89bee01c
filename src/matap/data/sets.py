"""The training and validation sets of a config: generated (and cached on disk
as memory-mapped uint8 .npy files keyed by their parameters) or loaded from files."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from matap.atomic import atomic_write
from matap.config import DataConfig
from matap.errors import MatapError
from matap.data.digits import digits_fingerprint, load_digits
from matap.data.files import load_videos
from matap.data.loader import GeneratedVideos
from matap.data.moving_mnist import GENERATOR_VERSION, generate


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


def generated_split(data: DataConfig, split: str, seq_len: int | None = None, num_sequences: int | None = None
                    ) -> np.ndarray:
    """(N, T, 64, 64) uint8 Moving MNIST for ``split``, memory-mapped from the cache: ``num_sequences``
    sequences (default: the config's train_size, or val_size for val and test) of ``seq_len`` frames."""
    seq_len = seq_len or data.seq_len
    num_sequences = num_sequences or (data.train_size if split == "train" else data.val_size)
    path = cache_dir(data) / (cache_key(data, split, num_sequences, seq_len) + ".npy")
    if path.exists():
        try:
            arr = np.load(path, mmap_mode="r")
            if arr.shape == (num_sequences, seq_len, data.image_size, data.image_size) and arr.dtype == np.uint8:
                return arr
        except (ValueError, OSError):
            pass  # a damaged cache entry is regenerated below
    digits = load_digits(data.source, split, data.idx_dir)
    videos = generate(digits, data.seed, split, range(num_sequences), seq_len, data.num_digits, data.motion,
                      data.image_size)
    save_array(path, videos)
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
        return load_videos(data.val_path)
    return generated_split(data, "val", seq_len=max(data.seq_len, seq_len or 0))


def load_split(data: DataConfig, split: str) -> np.ndarray:
    """The config's ``split`` ("train", "val" or, for generated data, "test") as uint8 (N, T, 64, 64)."""
    if data.source == "array":
        if split == "test":
            raise MatapError("data.source=array has no test split; pass the test videos with --data FILE")
        return load_videos(data.train_path if split == "train" else data.val_path)
    return generated_split(data, split)
