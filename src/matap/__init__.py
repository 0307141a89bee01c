"""matap: MA-TAP (Memory-Augmented Time-Aware Path) and a GRU baseline for latent video models."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def build_model(name: str = "matap", **overrides: Any):
    """Build ``"matap"``, ``"gru"`` or another registered model; see :func:`matap.models.build_model`."""
    from matap.models import build_model as _build

    return _build(name, **overrides)


def load(run_or_checkpoint: str, which: str = "best", device: str = "cpu"):
    """A trained model ready for ``model(frames)`` and ``model.rollout(context, horizon)``, from a run folder
    (its ``best`` or ``last`` checkpoint) or a checkpoint file: eval mode, BatchNorm folded as evaluation does,
    no gradients, on ``device``; ``model.config`` is its Config. Imports no Lightning; see
    :func:`matap.checkpoint.load_for_inference`."""
    from matap.checkpoint import load_for_inference

    return load_for_inference(run_or_checkpoint, which, device)


__all__ = ["build_model", "load", "__version__"]
