"""Models: a :class:`LatentVideoModel` composed of registered parts, each chosen by name in the
model config: ``model.encoder``, ``model.name`` (the cell: ``matap.registry.CELLS``, filled by
``@register_cell`` in :mod:`matap.modules`), ``model.predictor`` and ``model.decoder``."""

from __future__ import annotations

import inspect
from typing import Any

from matap.config import MODEL_KEYS, PARTS, Config, ModelConfig, part_options, validate
from matap.errors import MatapError
from matap.models.video_model import LatentVideoModel, TeacherForced
from matap.modules.constants import apply_constants
from matap.registry import CELLS, register_cell


def available_models() -> list[str]:
    return sorted(CELLS.names())


def build_model(name: str = "matap", **overrides: Any) -> LatentVideoModel:
    """Build a registered model at the paper's configuration, with keyword overrides.

    Keys are those of :class:`matap.config.ModelConfig` and the chosen parts' own options, e.g.
    ``build_model("matap", memory_size=5, use_gate=False)`` or ``build_model("gru", predictor="velocity")``.
    """
    if name not in CELLS:
        raise MatapError(f"unknown model {name!r}; available: {', '.join(available_models())}")
    fields = {k: v for k, v in overrides.items() if k in MODEL_KEYS}
    cfg = Config(model=ModelConfig(name=name, **fields))
    options = part_options(cfg.model)
    unknown = set(overrides) - set(MODEL_KEYS) - set(options)
    if unknown:
        raise MatapError(f"unknown model option(s) {sorted(unknown)}; known: {', '.join([*MODEL_KEYS, *options])}")
    cfg.model.options = {k: v for k, v in overrides.items() if k in options}
    validate(cfg)
    return model_from_config(cfg.model)


def build_part(kind: str, m: ModelConfig) -> Any:
    """The part of ``kind`` (a key of :data:`matap.config.PARTS`: "encoder", "name" for the cell,
    "predictor", "decoder") that ``m`` names, given the keywords of its signature that ``m`` holds."""
    factory = PARTS[kind].get(getattr(m, kind))
    values = {**{k: getattr(m, k) for k in MODEL_KEYS}, **m.options}
    accepted = inspect.signature(factory).parameters
    return factory(**{k: v for k, v in values.items() if k in accepted})


def model_from_config(m: ModelConfig) -> LatentVideoModel:
    """Build from a :class:`matap.config.ModelConfig` (already validated)."""
    # Built in this order (cell, encoder, predictor, decoder): it fixes which random numbers initialise which part.
    cell = build_part("name", m)
    model = LatentVideoModel(build_part("encoder", m), cell, build_part("predictor", m), build_part("decoder", m),
                             m.rollout_feedback)
    return apply_constants(model, m)  # normalisation constants and initialisation (PyTorch's or Keras')


# How a run's header names the cell's sizes, where the cell takes them.
SIZES = {"latent_dim": "d", "memory_size": "K", "num_heads": "heads"}


def describe(m: ModelConfig) -> str:
    """The model in a line, for a run's header: the cell with the sizes its signature takes, and each part
    that is not the paper's, e.g. ``matap (d=64, K=10, heads=4), predictor velocity``."""
    accepted = inspect.signature(CELLS.get(m.name)).parameters
    sizes = ", ".join(f"{label}={getattr(m, key)}" for key, label in SIZES.items() if key in accepted)
    others = [f"{kind} {getattr(m, kind)}" for kind in ("encoder", "predictor", "decoder") if getattr(m, kind) != "paper"]
    return ", ".join([f"{m.name} ({sizes})", *others])


def count_parameters(model: Any) -> int:
    """Trainable parameters (BatchNorm running statistics are buffers and do not count)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["LatentVideoModel", "TeacherForced", "available_models", "build_model", "build_part", "count_parameters",
           "describe", "model_from_config", "register_cell"]
