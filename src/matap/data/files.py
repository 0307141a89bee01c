"""Loading videos that a user gives: arrays of (videos, frames) or (frames, videos) of
64x64 frames, with or without a channel axis of 1, uint8 or floats in [0, 1], in .npy
or .npz files, such as the standard Moving MNIST test file ``mnist_test_seq.npy``
(uint8, (20, 10000, 64, 64), time first).

Which of the first two axes is time is read from the content (:func:`detect_layout`),
or given (``NT``: videos first; ``TN``: frames first). Everything is returned as uint8
(N, T, 64, 64); .npy uint8 files stay memory-mapped.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from matap.config import LAYOUTS
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
    raise MatapError(f"{path}: unsupported file type {path.suffix!r}; give a .npy or .npz file, or a video "
                     "(.mp4, .avi, .mov, .mkv, .webm, .gif) or a folder of videos or of frames")


SAMPLE = 16        # neighbouring pairs compared along each axis, spread over it
BLOCK = 16         # frames are averaged over BLOCK x BLOCK pixels before they are compared
CLEAR_RATIO = 2.0  # time is the axis whose neighbours differ at least this many times less


def _coarse(frames: np.ndarray, name: str) -> np.ndarray:
    """(..., 64, 64) frames as float32 means over BLOCK x BLOCK blocks, (..., 64 / BLOCK, 64 / BLOCK): a digit
    that moved a few pixels stays alike, another video's frame does not."""
    frames = to_uint8(np.asarray(frames), name).astype(np.float32)
    side = FRAME // BLOCK
    return frames.reshape(*frames.shape[:-2], side, BLOCK, side, BLOCK).mean(axis=(-3, -1))


def neighbour_difference(arr: np.ndarray, axis: int, name: str = "videos") -> float:
    """Mean absolute difference between neighbours along ``axis`` (0 or 1) of (A, B, 64, 64) ``arr``, on a
    sample: up to SAMPLE pairs spread along the axis, each in up to SAMPLE places spread along the other axis
    (a memory-mapped file is read only there), frames on a coarse grid (:func:`_coarse`), in units of 0..255."""
    a = arr if axis == 0 else arr.swapaxes(0, 1)
    starts = np.unique(np.linspace(0, a.shape[0] - 2, min(a.shape[0] - 1, SAMPLE)).round().astype(int))
    across = np.unique(np.linspace(0, a.shape[1] - 1, min(a.shape[1], SAMPLE)).round().astype(int))
    first = _coarse(a[np.ix_(starts, across)], name)       # (pairs, places, 4, 4)
    second = _coarse(a[np.ix_(starts + 1, across)], name)
    return float(np.abs(second - first).mean())


def detect_layout(arr: np.ndarray, name: str = "videos", option: str = "layout={!r}") -> str:
    """``"NT"`` (videos, then frames) or ``"TN"`` (frames first) for an (A, B, 64, 64) array, from its content:
    consecutive frames of a video are more alike than frames of different videos, so time is the axis along
    which neighbours differ less, by a factor of at least CLEAR_RATIO. An axis of length 1 holds the videos
    (a one-frame video cannot be scored or continued). Raises MatapError, naming ``option`` (a format string
    for the value: ``"layout={!r}"``, ``"data.layout={}"``, ``"--layout {}"``), when the content
    cannot tell: neighbours differ about as much along both axes (e.g. noise), or not at all along one (static
    videos, or copies of one video)."""
    A, B = arr.shape[:2]
    if A == 1 or B == 1:
        return "TN" if B == 1 and A > 1 else "NT"
    along = [neighbour_difference(arr, axis, name) for axis in (0, 1)]
    fix = f"give {option.format('NT')} (videos, then frames) or {option.format('TN')} (frames first)"
    if min(along) == 0:
        still = along.index(0)
        raise MatapError(f"{name}: cannot tell which axis of {A} x {B} is time: no frame differs from its neighbour "
                         f"along axis {still} (static videos, or copies of one video?); {fix}")
    if max(along) < CLEAR_RATIO * min(along):
        raise MatapError(f"{name}: cannot tell which axis of {A} x {B} is time: neighbouring frames differ about as "
                         f"much along both ({along[0]:.3g} and {along[1]:.3g}, under {CLEAR_RATIO:g}x apart); {fix}")
    return "NT" if along[1] < along[0] else "TN"


def load_videos(spec: str | Path, layout: str = "auto", max_videos: int | None = None,
                option: str = "layout={!r}") -> np.ndarray:
    """Load and check a file of videos; return uint8 (N, T, 64, 64).

    ``spec`` is a path, optionally ``file.npz:key``. ``layout`` says which of the first two axes is time:
    ``NT`` (videos, then frames), ``TN`` (frames first) or ``auto`` (read from the content,
    :func:`detect_layout`; ``option`` is what its error message tells the user to set instead).
    """
    if layout not in LAYOUTS:
        raise MatapError(f"layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")
    text = str(spec)
    key = None
    if ".npz:" in text:
        text, key = text.split(".npz:", 1)
        text += ".npz"
    path = Path(text)
    arr = _open_array(path, key)
    if arr.ndim == 5:
        if arr.shape[2] != 1:
            raise MatapError(f"{path}: shape {arr.shape}: 5-D videos must be (N, T, 1, H, W) with one channel")
        arr = arr[:, :, 0]
    if arr.ndim != 4:
        raise MatapError(f"{path}: shape {arr.shape}: expected videos (N, T, H, W) or (N, T, 1, H, W)")
    a, b, h, w = arr.shape
    if (h, w) != (FRAME, FRAME):
        raise MatapError(f"{path}: frames are {h}x{w}; the model needs {FRAME}x{FRAME}")
    if a == 0 or b == 0:
        raise MatapError(f"{path}: shape {arr.shape} holds no frames")
    if layout == "auto":
        layout = detect_layout(arr, str(path), option)
    if layout == "TN":
        arr = arr.transpose(1, 0, 2, 3)
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
