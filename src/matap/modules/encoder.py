"""Spatial encoder E_phi (paper, appendix A.1): a 64x64 frame to a d-dimensional latent."""

from __future__ import annotations

import torch
from torch import nn

from matap.modules.recompute import run_blocks
from matap.registry import ENCODERS, register_part


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """Conv2D(4x4, stride 2, 'same') + BatchNorm + ReLU: halves the spatial size."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


@register_part(ENCODERS, "paper")
class SpatialEncoder(nn.Module):
    """(N, 1, 64, 64) frames in [0, 1] -> (N, latent_dim)."""

    def __init__(self, latent_dim: int = 64, encoder_dropout: float = 0.2) -> None:
        super().__init__()
        self.features = nn.Sequential(conv_block(1, 32), conv_block(32, 64), conv_block(64, 128))  # (N, 128, 8, 8)
        self.head = nn.Sequential(
            nn.Flatten(),                      # (N, 8192)
            nn.Linear(128 * 8 * 8, 256),
            nn.ReLU(inplace=True),
            nn.Dropout(encoder_dropout),
            nn.Linear(256, latent_dim),        # (N, d)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(run_blocks(x, self.features))  # self.head(self.features(x)), less memory in training
