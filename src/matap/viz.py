"""Pictures of videos: frame strips (PNG) and side-by-side animations (GIF)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def _to_uint8(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        frames = np.rint(np.clip(frames, 0, 1) * 255).astype(np.uint8)
    return frames


def save_strip(videos: np.ndarray, path: str | Path, max_frames: int = 20) -> None:
    """PNG grid: one row per video, one column per frame. ``videos`` (N, T, H, W)."""
    v = _to_uint8(videos)[:, :max_frames]
    rows = [np.concatenate(list(video), axis=1) for video in v]
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


def save_gif(panels: list[np.ndarray], path: str | Path, fps: int = 4, scale: int = 2, gap: int = 2) -> None:
    """Animate panels side by side; each panel is (N, T, H, W) (videos stacked vertically).

    Panels with fewer frames than the longest are padded with blank frames at the start,
    so that a prediction panel lines up in time with its ground truth.
    """
    panels = [_to_uint8(p) for p in panels]
    T = max(p.shape[1] for p in panels)
    frames = []
    for t in range(T):
        columns = []
        for p in panels:
            offset = T - p.shape[1]
            tile = p[:, t - offset] if t >= offset else np.zeros_like(p[:, 0])
            column = np.concatenate([np.pad(v, ((0, gap), (0, 0)), constant_values=64) for v in tile], axis=0)
            columns.append(np.pad(column, ((0, 0), (0, gap)), constant_values=64))
        image = np.concatenate(columns, axis=1)
        frames.append(Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
