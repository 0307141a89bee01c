"""Predictors: the cell output h_t (and the cell's inputs) to the predicted next latent z_{t+1}.

A predictor is called as ``predictor(h, z, z_before)``: cell outputs ``h`` and the cell's inputs ``z``
at the same steps, (..., d) each, and ``z_before``, the inputs one step earlier (None at a first step).
"""

from __future__ import annotations

import torch
from torch import nn

from matap.registry import PREDICTORS, register_part


@register_part(PREDICTORS, "paper")
class LatentPredictor(nn.Sequential):
    """The paper's P_psi(h_t): Dense(2d, ReLU) -> Dropout -> Dense(d); reads the cell output only."""

    def __init__(self, latent_dim: int = 64, predictor_dropout: float = 0.1) -> None:
        super().__init__(
            nn.Linear(latent_dim, 2 * latent_dim),
            nn.ReLU(inplace=True),
            nn.Dropout(predictor_dropout),
            nn.Linear(2 * latent_dim, latent_dim),
        )

    def forward(self, h: torch.Tensor, z: torch.Tensor | None = None,  # type: ignore[override]
                z_before: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(h)


@register_part(PREDICTORS, "velocity")
class VelocityPredictor(LatentPredictor):
    """Beyond the paper (no parameters of its own): P_psi(h_t) corrects the straight-line extension of
    the cell's last two inputs, z^_{t+1} = 2 z_t - z_{t-1} + P_psi(h_t) (z_t + P_psi(h_t) at a first
    step), so that a model that predicts no correction keeps the latent moving as it last moved."""

    def forward(self, h: torch.Tensor, z: torch.Tensor | None = None,  # type: ignore[override]
                z_before: torch.Tensor | None = None) -> torch.Tensor:
        change = super().forward(h)
        return change + z if z_before is None else change + z + (z - z_before)
