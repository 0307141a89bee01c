"""Loading videos that a user gives: arrays of shape (N, T, H, W) or (N, T, 1, H, W),
uint8 or floats in [0, 1], in .npy or .npz files; and the standard Moving MNIST
test file ``mnist_test_seq.npy`` (uint8, (20, 10000, 64, 64), time first).

Everything is returned as uint8 (N, T, 64, 64); .npy uint8 files stay memory-mapped.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from matap.errors import MatapError

FRAME = 64


def _open_array(path: Path, key: str | None) -> np.ndarray:
    if not path.exists():
        raise MatapError(f"{path}: no such file")
    if path.is_dir():
        raise MatapError(f"{path}: is a folder; give a .npy or .npz file of videos")
    if path.stat().st_size == 0:
        raise MatapError(f"{path}: file is empty")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                names = list(archive.files)
                if key is None:
                    if len(names) != 1:
                        raise MatapError(f"{path}: holds arrays {names}; name one with a key (e.g. {path}:{names[0]})")
                    key = names[0]
                if key not in names:
                    raise MatapError(f"{path}: no array {key!r} (found {names})")
                return archive[key]
        if path.suffix == ".npy":
            return np.load(path, mmap_mode="r", allow_pickle=False)
    except MatapError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise MatapError(f"{path}: cannot read as a NumPy array ({str(exc).splitlines()[0]}); "
                         "the file may be truncated or not a .npy/.npz") from None
    raise MatapError(f"{path}: unsupported file type {path.suffix!r}; give a .npy or .npz file")


def is_time_first(path: Path) -> bool:
    """The standard Moving MNIST test file is stored time first."""
    return path.name.startswith("mnist_test_seq")


def load_videos(spec: str | Path, time_first: bool | None = None, max_videos: int | None = None) -> np.ndarray:
    """Load and check a file of videos; return uint8 (N, T, 64, 64).

    ``spec`` is a path, optionally ``file.npz:key``. ``time_first`` defaults to
    True for files named ``mnist_test_seq*`` and False otherwise.
    """
    text = str(spec)
    key = None
    if ".npz:" in text:
        text, key = text.split(".npz:", 1)
        text += ".npz"
    path = Path(text)
    arr = _open_array(path, key)
    if time_first is None:
        time_first = is_time_first(path)
    if arr.ndim == 5:
        if arr.shape[2] != 1:
            raise MatapError(f"{path}: shape {arr.shape}: 5-D videos must be (N, T, 1, H, W) with one channel")
        arr = arr[:, :, 0]
    if arr.ndim != 4:
        raise MatapError(f"{path}: shape {arr.shape}: expected videos (N, T, H, W) or (N, T, 1, H, W)")
    if time_first:
        arr = arr.transpose(1, 0, 2, 3)
    n, t, h, w = arr.shape
    if (h, w) != (FRAME, FRAME):
        raise MatapError(f"{path}: frames are {h}x{w}; the model needs {FRAME}x{FRAME}")
    if n == 0 or t == 0:
        raise MatapError(f"{path}: shape {arr.shape} holds no frames")
    if max_videos is not None:
        arr = arr[:max_videos]
    return to_uint8(arr, str(path))


def to_uint8(arr: np.ndarray, name: str) -> np.ndarray:
    """uint8 stays as is; floats in [0, 1] are scaled to 0..255 (in chunks, checked for NaN)."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if not np.issubdtype(arr.dtype, np.floating):
        raise MatapError(f"{name}: dtype {arr.dtype}: expected uint8 (0..255) or floats in [0, 1]")
    out = np.empty(arr.shape, dtype=np.uint8)
    for start in range(0, len(arr), 256):
        chunk = np.asarray(arr[start:start + 256], dtype=np.float32)
        if not np.isfinite(chunk).all():
            raise MatapError(f"{name}: contains NaN or infinite values")
        if chunk.min() < 0 or chunk.max() > 1:
            raise MatapError(f"{name}: float values must lie in [0, 1], found [{chunk.min():.3g}, {chunk.max():.3g}]"
                             "; divide by 255 or save as uint8")
        out[start:start + 256] = np.rint(chunk * 255)
    return out
