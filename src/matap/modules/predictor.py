"""Predictor P_psi: the cell output h_t to the predicted next latent z_{t+1}."""

from __future__ import annotations

from torch import nn


class LatentPredictor(nn.Sequential):
    """Dense(2d, ReLU) -> Dropout -> Dense(d), from ``inputs`` numbers (d, the cell output, unless given)."""

    def __init__(self, latent_dim: int = 64, dropout: float = 0.1, inputs: int | None = None) -> None:
        super().__init__(
            nn.Linear(inputs or latent_dim, 2 * latent_dim),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(2 * latent_dim, latent_dim),
        )
