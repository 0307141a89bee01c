"""Models: a model is a registered cell (``matap.registry.CELLS``, filled by ``@register_cell``
in :mod:`matap.modules`) unrolled by the shared :class:`LatentVideoModel`."""

from __future__ import annotations

import inspect
from typing import Any

from matap.config import MODEL_KEYS, Config, ModelConfig, cell_options, validate
from matap.models.video_model import LatentVideoModel, TeacherForced
from matap.registry import CELLS, register_cell
from matap.modules.constants import apply_constants


def available_models() -> list[str]:
    return sorted(CELLS.names())


def build_model(name: str = "matap", **overrides: Any) -> LatentVideoModel:
    """Build a registered model at the paper's configuration, with keyword overrides.

    Keys are those of :class:`matap.config.ModelConfig` and the cell's own options, e.g.
    ``build_model("matap", memory_size=5, use_gate=False)``.
    """
    if name not in CELLS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available_models())}")
    fields, options = MODEL_KEYS, cell_options(name)
    unknown = set(overrides) - set(fields) - set(options)
    if unknown:
        raise ValueError(f"unknown model option(s) {sorted(unknown)}; known: {', '.join([*fields, *options])}")
    cfg = Config(model=ModelConfig(name=name, **{k: v for k, v in overrides.items() if k in fields}))
    cfg.model.options = {k: v for k, v in overrides.items() if k in options}
    validate(cfg)
    return model_from_config(cfg.model)


def model_from_config(m: ModelConfig) -> LatentVideoModel:
    """Build from a :class:`matap.config.ModelConfig` (already validated): the cell registered as
    ``m.name`` receives the keywords of its signature that the config holds."""
    factory = CELLS.get(m.name)
    values = {**{k: getattr(m, k) for k in MODEL_KEYS}, **m.options}
    accepted = inspect.signature(factory).parameters
    cell = factory(**{k: v for k, v in values.items() if k in accepted})
    model = LatentVideoModel(cell, m.latent_dim, m.encoder_dropout, m.predictor_dropout, m.rollout_feedback,
                             m.content_path, m.residual, m.velocity, m.velocity_gain,
                             m.predictor_skip, m.decoder, m.keypoints, m.track, m.sprites,
                             m.fine_keypoints)
    return apply_constants(model, m)  # normalisation constants and initialisation (PyTorch's or Keras')


def count_parameters(model: Any) -> int:
    """Trainable parameters (BatchNorm running statistics are buffers and do not count)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["LatentVideoModel", "TeacherForced", "available_models", "build_model", "count_parameters",
           "model_from_config", "register_cell"]
