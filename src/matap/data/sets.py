"""The training and validation sets of a config: generated Moving MNIST, or clips of real
videos (:mod:`matap.data.video`), each cached on disk as a memory-mapped uint8 .npy file keyed
by what it is made of, with the SHA-256 of its bytes beside it; or arrays loaded from files."""

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
from matap.data.video import DECODER_VERSION, FRAME, assign_splits, clips, find_videos, is_video_path, video_files
from matap.errors import MatapError


def cache_dir(data: DataConfig) -> Path:
    if data.cache_dir:
        return Path(data.cache_dir)
    return Path(os.environ.get("MATAP_CACHE", Path.home() / ".cache" / "matap"))


def cache_key(data: DataConfig, split: str, num_sequences: int, seq_len: int) -> str:
    params = {
        "version": GENERATOR_VERSION, "digits": digits_fingerprint(data.source, data.idx_dir),
        "motion": data.motion, "num_digits": data.num_digits, "seq_len": seq_len,
        "image_size": FRAME, "size": num_sequences, "seed": data.seed, "split": split,
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


def _cached(path: Path, shape: tuple[int | None, ...]) -> np.ndarray | None:
    """The cached set at ``path``, memory-mapped, when its bytes match the checksum written with it and it
    holds uint8 videos of ``shape`` (None: a length not known before the set is made); None when there is
    none. A damaged or unverifiable file is named on stderr (it is then regenerated)."""
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
    fits = arr.ndim == len(shape) and all(want in (None, got) for want, got in zip(shape, arr.shape))
    return arr if fits and arr.dtype == np.uint8 else None


def _store(path: Path, videos: np.ndarray) -> np.ndarray:
    """Cache ``videos`` at ``path`` with its checksum beside it; return it memory-mapped from there."""
    save_array(path, videos)
    atomic_write(checksum_path(path), _sha256(path) + "\n")
    return np.load(path, mmap_mode="r")


def generated_split(data: DataConfig, split: str, seq_len: int | None = None, num_sequences: int | None = None
                    ) -> np.ndarray:
    """(N, T, 64, 64) uint8 Moving MNIST for ``split``, memory-mapped from the cache: ``num_sequences``
    sequences (default: the config's train_size, or val_size for val and test) of ``seq_len`` frames.
    A cached file whose bytes no longer match the SHA-256 written with it is regenerated."""
    seq_len = seq_len or data.seq_len
    num_sequences = num_sequences or (data.train_size if split == "train" else data.val_size)
    path = cache_dir(data) / (cache_key(data, split, num_sequences, seq_len) + ".npy")
    cached = _cached(path, (num_sequences, seq_len, FRAME, FRAME))
    if cached is not None:
        return cached
    digits = load_digits(data.source, split, data.idx_dir)
    videos = generate(digits, data.seed, split, range(num_sequences), seq_len, data.num_digits, data.motion, FRAME)
    return _store(path, videos)


def video_cache_key(label: str, sources: list[Path], root: Path, clip_len: int, frame_stride: int) -> str:
    """The cache name of the clips of ``sources``: from the SHA-256 of every byte they are read from (a changed
    file changes it), their paths under ``root``, the cutting and the decoders' versions."""
    import av
    import PIL

    try:
        files = [[f.relative_to(root).as_posix(), f.stat().st_size, _sha256(f)] for s in sources for f in video_files(s)]
    except OSError as exc:
        raise MatapError(f"{exc.filename}: cannot read it ({exc.strerror})") from None
    params = {"version": DECODER_VERSION, "av": av.__version__, "pillow": PIL.__version__, "frame": FRAME,
              "clip_len": clip_len, "frame_stride": frame_stride, "files": files,
              "videos": [s.relative_to(root).as_posix() for s in sources]}
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    return f"video-{label}-{len(sources)}x{clip_len}-{digest}"


def video_clips(data: DataConfig, label: str, sources: list[Path], root: Path, clip_len: int) -> np.ndarray:
    """uint8 (N, clip_len, 64, 64): the clips of ``sources`` (:func:`matap.data.video.clips`, every
    ``data.frame_stride``-th frame), memory-mapped from the cache; ``label`` names the cached file."""
    path = cache_dir(data) / (video_cache_key(label, sources, root, clip_len, data.frame_stride) + ".npy")
    cached = _cached(path, (None, clip_len, FRAME, FRAME))
    if cached is not None:
        return cached
    return _store(path, clips(sources, clip_len, data.frame_stride))


def video_split(data: DataConfig, split: str, clip_len: int | None = None) -> np.ndarray:
    """The clips of ``clip_len`` frames (default: ``data.seq_len``) of the videos under ``data.video_dir`` that
    ``split`` holds (:func:`matap.data.video.assign_splits`, by video)."""
    root = Path(data.video_dir or "")
    if not root.is_dir():
        raise MatapError(f"video_dir {str(root)!r} is not a folder")
    sources = find_videos(root)
    chosen = assign_splits(sources, data.video_layout, data.seed, where=str(root))[split]
    if not chosen:
        why = ("no videos of KTH's test persons (17-25)" if data.video_layout == "kth"
               else f"{len(sources)} videos: a tenth of them, rounded down, is none (10 or more give a test split)")
        raise MatapError(f"{root}: no {split} split: {why}")
    return video_clips(data, split, chosen, root, clip_len or data.seq_len)


def user_videos(spec: str | Path, data: DataConfig, clip_len: int | None, layout: str = "auto",
                option: str = "layout={!r}", max_videos: int | None = None) -> np.ndarray:
    """uint8 (N, T, 64, 64) from a data path: a .npy/.npz file of arrays as it is (:func:`load_videos`, ``layout``
    and ``option`` as there); a video file, or a folder of videos or of frames, cut as ``data`` cuts its own
    (every ``data.frame_stride``-th frame) into clips of ``clip_len`` frames (cached), or without ``clip_len``,
    the first ``max_videos`` videos whole, cut to the shortest."""
    path = Path(str(spec))
    if ".npz:" in str(spec) or not is_video_path(path):
        return load_videos(spec, layout, option=option)
    sources = find_videos(path)
    if clip_len is None:
        return clips(sources[:max_videos], None, data.frame_stride)
    return video_clips(data, "data", sources, path if path.is_dir() else path.parent, clip_len)


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
    if data.source == "video":
        return video_split(data, "val", max(data.seq_len, seq_len or 0))
    return generated_split(data, "val", seq_len=max(data.seq_len, seq_len or 0))


def load_split(data: DataConfig, split: str) -> np.ndarray:
    """The config's ``split`` ("train", "val" or, for generated data and videos, "test") as uint8 (N, T, 64, 64)."""
    if data.source == "video":
        return video_split(data, split)
    if data.source == "array":
        if split == "test":
            raise MatapError("data.source=array has no test split; read the test videos from their own file instead "
                             "(matap.data.load_videos)")
        return load_videos(data.train_path if split == "train" else data.val_path, data.layout, option="data.layout={}")
    return generated_split(data, split)
