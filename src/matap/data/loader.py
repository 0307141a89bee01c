"""PyTorch datasets over uint8 video arrays. Batches stay uint8 (B, T, H, W) until
the training step converts them, which keeps loading cheap."""

from __future__ import annotations

import itertools
import os
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from matap.data.moving_mnist import generate


def _file_backed(videos: np.ndarray) -> tuple[str, int] | None:
    """(file name, byte offset of the first sequence) when ``videos`` is a whole C-ordered array
    memory-mapped from a file, as cached sets are loaded; None for anything else (slices included)."""
    if not isinstance(videos, np.memmap) or not videos.filename or not videos.flags.c_contiguous:
        return None
    try:
        whole = np.load(videos.filename, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if not isinstance(whole, np.memmap) or whole.shape != videos.shape or whole.dtype != videos.dtype:
        return None
    return videos.filename, whole.offset


class VideoDataset(Dataset):
    """Map-style dataset over an (N, T, H, W) uint8 array (memory-mapped or not).

    A whole memory-mapped file (a cached set) is read with ``os.pread`` rather than through the
    mapping: the file's pages then stay in the page cache, outside the process's resident memory,
    instead of adding the whole set to it once an epoch has touched every sequence."""

    def __init__(self, videos: np.ndarray) -> None:
        self.videos = videos
        self._file = _file_backed(videos)
        self._row_bytes = int(np.prod(videos.shape[1:])) * videos.dtype.itemsize
        self._fd: int | None = None

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.__getitems__([index])[0]  # (T, H, W) uint8

    def __getitems__(self, indices: Sequence[int]) -> torch.Tensor:
        if self._file is not None:
            return torch.from_numpy(self._read(indices))  # (B, T, H, W) uint8
        # One fancy-indexed read per batch instead of one per sequence.
        order = np.argsort(indices)
        sorted_idx = np.asarray(indices)[order]
        batch = np.empty((len(indices),) + self.videos.shape[1:], dtype=np.uint8)
        batch[order] = self.videos[sorted_idx]
        return torch.from_numpy(batch)  # (B, T, H, W) uint8

    def _read(self, indices: Sequence[int]) -> np.ndarray:
        n = len(self.videos)
        batch = np.empty((len(indices),) + self.videos.shape[1:], dtype=self.videos.dtype)
        if self._fd is None:
            self._fd = os.open(self._file[0], os.O_RDONLY)
        for row, index in zip(batch, indices):
            index = int(index)
            if not -n <= index < n:
                raise IndexError(f"sequence {index} out of range for {n} videos")
            offset = self._file[1] + (index % n) * self._row_bytes
            if os.preadv(self._fd, [memoryview(row).cast("B")], offset) != self._row_bytes:
                raise OSError(f"{self._file[0]}: short read at byte {offset} (was the file truncated?)")
        return batch

    def __getstate__(self) -> dict[str, Any]:  # for worker processes: each opens the file itself
        return {**self.__dict__, "_fd": None}

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)


def _keep_batch(batch: torch.Tensor) -> torch.Tensor:
    return batch


def to_frames(batch: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 (B, T, H, W) -> float (B, T, 1, H, W) in [0, 1]."""
    return batch.unsqueeze(2).to(dtype).div_(255.0)


class GeneratedVideos(Dataset):
    """Moving MNIST drawn on demand: item ``i`` is sequence ``i`` of the split, a pure
    function of (seed, split, i), for any ``i >= 0``; ``len`` is the size of one epoch."""

    def __init__(self, digits: np.ndarray, seed: int, split: str, size: int, seq_len: int, num_digits: int,
                 motion: str) -> None:
        self.digits, self.seed, self.split, self.size = digits, seed, split, size
        self.seq_len, self.num_digits, self.motion = seq_len, num_digits, motion

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> torch.Tensor:
        drawn = generate(self.digits, self.seed, self.split, indices, self.seq_len, self.num_digits, self.motion)
        return torch.from_numpy(drawn)  # (B, T, H, W) uint8


class EpochShuffleSampler(Sampler[int]):
    """A shuffled order that is a function of (seed, epoch) alone, so a resumed
    run sees the same batches as an uninterrupted one. Lightning calls ``set_epoch``.

    ``fresh=True`` draws new items every epoch: epoch ``e`` visits items
    ``e * size ... (e + 1) * size - 1`` (for a :class:`GeneratedVideos`, new sequences)."""

    def __init__(self, size: int, seed: int, fresh: bool = False) -> None:
        self.size, self.seed, self.fresh, self.epoch = size, seed, fresh, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        offset = self.epoch * self.size if self.fresh else 0
        return iter((rng.permutation(self.size) + offset).tolist())

    def __len__(self) -> int:
        return self.size


class _Skipping:
    """The batches of indices of ``loader``, without the first ``loader._skip`` of them."""

    def __init__(self, batches: Any, loader: ResumableLoader) -> None:
        self.batches, self.loader = batches, loader

    def __iter__(self) -> Iterator[list[int]]:
        return itertools.islice(iter(self.batches), self.loader._skip, None)

    def __len__(self) -> int:
        return len(self.batches)


class ResumableLoader(DataLoader):
    """A DataLoader that can continue an epoch where a checkpoint left it. :meth:`state_dict` holds the
    epoch and how many of its batches were handed out; after :meth:`load_state_dict`, iterating that
    epoch skips those batches without loading them (their indices are drawn from the sampler and
    dropped, so the rest of the epoch is what it would have been). Lightning saves the state in every
    checkpoint and restores it when it resumes within an epoch."""

    _skip = 0                                  # batches to leave out of the iteration being created
    _resume: tuple[int, int] | None = None     # (epoch, batches) from a checkpoint
    _handed: tuple[int, int] = (0, 0)          # (epoch, batches handed out in it)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self._handed[0], "batches": self._handed[1]}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume = (int(state["epoch"]), int(state["batches"]))

    def __iter__(self) -> Iterator[torch.Tensor]:
        epoch = getattr(self.sampler, "epoch", 0)  # set (set_epoch) before the first batch is asked for
        resume, self._resume = self._resume, None
        self._skip = resume[1] if resume is not None and resume[0] == epoch else 0
        self._handed = (epoch, self._skip)
        for batch in super().__iter__():
            self._handed = (epoch, self._handed[1] + 1)
            yield batch

    @property
    def _index_sampler(self) -> Any:  # what DataLoader's iterators draw the indices of each batch from
        return _Skipping(super()._index_sampler, self)


def make_loader(videos: np.ndarray | Dataset, batch_size: int, shuffle: bool, seed: int = 0,
                num_workers: int = 0) -> DataLoader:
    """Batches of uint8 (B, T, H, W) from an array of videos, or from a :class:`GeneratedVideos`
    stream. Shuffled (the training order): within each epoch as :class:`EpochShuffleSampler` draws
    it, new items every epoch for a stream, resumable within an epoch (:class:`ResumableLoader`),
    and without drawing from torch's global random state (which dropout uses, and a resumed run
    restores), so that where a run is resumed does not change what it draws."""
    dataset = videos if isinstance(videos, Dataset) else VideoDataset(videos)
    if not shuffle:
        return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=_keep_batch,
                          num_workers=num_workers, persistent_workers=num_workers > 0)
    sampler = EpochShuffleSampler(len(dataset), seed, fresh=isinstance(dataset, GeneratedVideos))
    return ResumableLoader(
        dataset, batch_size=batch_size, sampler=sampler, shuffle=False, collate_fn=_keep_batch,
        num_workers=num_workers, persistent_workers=num_workers > 0, generator=torch.Generator().manual_seed(seed),
    )
