"""matap: MA-TAP (Memory-Augmented Time-Aware Path) and a GRU baseline for latent video models."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def build_model(name: str = "matap", **overrides: Any):
    """Build ``"matap"``, ``"gru"`` or another registered model; see :func:`matap.models.build_model`."""
    from matap.models import build_model as _build

    return _build(name, **overrides)


def load(run_or_file: str, which: str = "best"):
    """(model in eval mode, its Config, the checkpoint path) from a run folder (its ``best`` or
    ``last`` checkpoint) or a checkpoint file; see :func:`matap.checkpoint.load_model`."""
    from matap.checkpoint import load_model

    return load_model(run_or_file, which)


__all__ = ["build_model", "load", "__version__"]
