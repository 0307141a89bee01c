"""Checkpoints: written atomically, found in a run folder, loaded without running code, and
turned back into the model they hold. Imports no Lightning: evaluation and ``matap.load`` use it."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from matap.atomic import atomic_write
from matap.errors import MatapError


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` through :func:`matap.atomic.atomic_write`: a crash mid-write leaves the previous file."""
    atomic_write(path, lambda fh: torch.save(obj, fh))


def safe_load(path: Path) -> dict[str, Any]:
    """``torch.load(weights_only=True)``: tensors and plain containers only, never code."""
    if not path.is_file():
        raise MatapError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsupported content"
        raise MatapError(f"{path}: refused to load: the checkpoint holds objects other than tensors and plain "
                         f"data, which could run code ({first[:160]})") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        raise MatapError(f"{path}: not a readable checkpoint (truncated or corrupt?): {str(exc).splitlines()[0][:160]}") from None
    if not isinstance(obj, dict) or "state_dict" not in obj or "matap_config" not in obj:
        raise MatapError(f"{path}: not a matap checkpoint (no state_dict/matap_config)")
    return obj


def find_checkpoint(run_or_file: str | Path, which: str = "best") -> Path:
    """A checkpoint file, or a run folder (then its ``best`` or ``last`` checkpoint)."""
    path = Path(run_or_file)
    if path.is_dir():
        for name in (f"{which}.ckpt", "last.ckpt", "best.ckpt"):
            if (path / "checkpoints" / name).is_file():
                return path / "checkpoints" / name
        raise MatapError(f"{path}: no checkpoints/{which}.ckpt in this run folder (has training finished an epoch?)")
    if not path.exists():
        raise MatapError(f"{path}: no such run folder or checkpoint file")
    return path


def load_checkpoint(run_or_file: str | Path, which: str = "best") -> tuple[dict[str, Any], Path]:
    path = find_checkpoint(run_or_file, which)
    return safe_load(path), path


def load_model(run_or_file: str | Path, which: str = "best") -> tuple[torch.nn.Module, Any, Path]:
    """(model in eval mode, its Config, the checkpoint path) from a run folder or checkpoint."""
    from matap.config import config_from_dict
    from matap.models import model_from_config

    ckpt, path = load_checkpoint(run_or_file, which)
    cfg = config_from_dict(ckpt["matap_config"], origin=str(path))
    model = model_from_config(cfg.model)
    state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise MatapError(f"{path}: weights do not match the model in its config ({str(exc).splitlines()[0]})") from None
    return model.eval(), cfg, path


def load_for_inference(run_or_file: str | Path, which: str = "best", device: str | torch.device = "cpu"
                       ) -> torch.nn.Module:
    """The model of a run folder (its ``best`` or ``last`` checkpoint) or checkpoint file, ready to predict:
    in eval mode, BatchNorm folded into the convolutions as ``matap evaluate`` does (same outputs, fewer
    layers), no gradients, on ``device``. Its config is ``model.config`` and its file ``model.checkpoint``."""
    from matap.models.fuse import fold_batchnorm

    if which not in ("best", "last"):
        raise MatapError(f"which must be 'best' or 'last', got {which!r}")
    model, cfg, path = load_model(run_or_file, which)
    model = fold_batchnorm(model).to(device).requires_grad_(False)
    model.config, model.checkpoint = cfg, path
    return model


__all__ = ["atomic_save", "find_checkpoint", "load_checkpoint", "load_for_inference", "load_model", "safe_load"]
