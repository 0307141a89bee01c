"""Model registry: a model is a name that builds a cell; everything else is shared."""

from __future__ import annotations

from typing import Any, Callable

from matap.models.video_model import LatentVideoModel, TeacherForced
from matap.modules.cells import Cell, GRUBaselineCell, MATAPCell
from matap.modules.constants import apply_constants

CellFactory = Callable[..., Cell]
_REGISTRY: dict[str, CellFactory] = {}


def register_cell(name: str) -> Callable[[CellFactory], CellFactory]:
    """Register ``factory(latent_dim, memory_size, num_heads, attn_dropout, use_attention,
    use_gate, mask_empty) -> Cell`` under ``name``; it may ignore arguments it does not use."""

    def wrap(factory: CellFactory) -> CellFactory:
        _REGISTRY[name] = factory
        return factory

    return wrap


@register_cell("gru")
def _gru(latent_dim: int, **_: Any) -> Cell:
    return GRUBaselineCell(latent_dim)


@register_cell("matap")
def _matap(latent_dim: int, memory_size: int, num_heads: int, attn_dropout: float,
           use_attention: bool, use_gate: bool, mask_empty: bool) -> Cell:
    return MATAPCell(latent_dim, memory_size, num_heads, attn_dropout, use_attention, use_gate, mask_empty)


def available_models() -> list[str]:
    return sorted(_REGISTRY)


def build_model(name: str = "matap", **overrides: Any) -> LatentVideoModel:
    """Build a registered model at the paper's configuration, with keyword overrides.

    Keys are those of :class:`matap.config.ModelConfig`, e.g.
    ``build_model("matap", memory_size=5, use_gate=False)``.
    """
    from matap.config import ModelConfig, validate, Config  # local: keeps the registry importable alone

    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available_models())}")
    fields = ModelConfig.__dataclass_fields__
    unknown = set(overrides) - set(fields)
    if unknown:
        raise ValueError(f"unknown model option(s) {sorted(unknown)}; known: {', '.join(fields)}")
    cfg = Config(model=ModelConfig(name=name, **overrides))
    validate(cfg)
    return model_from_config(cfg.model)


def model_from_config(m: Any) -> LatentVideoModel:
    """Build from a :class:`matap.config.ModelConfig` (already validated)."""
    cell = _REGISTRY[m.name](
        latent_dim=m.latent_dim, memory_size=m.memory_size, num_heads=m.num_heads,
        attn_dropout=m.attn_dropout, use_attention=m.use_attention, use_gate=m.use_gate,
        mask_empty=m.mask_empty,
    )
    model = LatentVideoModel(cell, m.latent_dim, m.encoder_dropout, m.predictor_dropout)
    return apply_constants(model, m)  # normalisation constants and initialisation (PyTorch's or Keras')


def count_parameters(model: Any) -> int:
    """Trainable parameters (BatchNorm running statistics are buffers and do not count)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["LatentVideoModel", "TeacherForced", "available_models", "build_model", "count_parameters",
           "model_from_config", "register_cell"]
