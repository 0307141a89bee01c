"""PyTorch datasets over uint8 video arrays. Batches stay uint8 (B, T, H, W) until
the training step converts them, which keeps loading cheap."""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class VideoDataset(Dataset):
    """Map-style dataset over an (N, T, H, W) uint8 array (memory-mapped or not)."""

    def __init__(self, videos: np.ndarray) -> None:
        self.videos = videos

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self.videos[index]))  # (T, H, W) uint8

    def __getitems__(self, indices: Sequence[int]) -> torch.Tensor:
        # One fancy-indexed read per batch instead of one per sequence.
        order = np.argsort(indices)
        sorted_idx = np.asarray(indices)[order]
        batch = np.empty((len(indices),) + self.videos.shape[1:], dtype=np.uint8)
        batch[order] = self.videos[sorted_idx]
        return torch.from_numpy(batch)  # (B, T, H, W) uint8


def _keep_batch(batch: torch.Tensor) -> torch.Tensor:
    return batch


class EpochShuffleSampler(Sampler[int]):
    """A shuffled order that is a function of (seed, epoch) alone, so a resumed
    run sees the same batches as an uninterrupted one. Lightning calls ``set_epoch``."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        return iter(rng.permutation(self.size).tolist())

    def __len__(self) -> int:
        return self.size


def make_loader(videos: np.ndarray, batch_size: int, shuffle: bool, seed: int = 0, num_workers: int = 0) -> DataLoader:
    dataset = VideoDataset(videos)
    sampler = EpochShuffleSampler(len(dataset), seed) if shuffle else None
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, shuffle=False, collate_fn=_keep_batch,
        num_workers=num_workers, persistent_workers=num_workers > 0,
    )
