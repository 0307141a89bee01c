"""Spatial decoder D_theta (paper, appendix A.2): a d-dimensional latent to a 64x64 frame."""

from __future__ import annotations

import torch
from torch import nn

from matap.modules.recompute import run_blocks
from matap.modules.transposed import ConvTranspose2d
from matap.registry import DECODERS, register_part


def deconv_block(c_in: int, c_out: int) -> nn.Sequential:
    """ConvTranspose2D(4x4, stride 2, 'same') + BatchNorm + ReLU: doubles the spatial size."""
    return nn.Sequential(
        ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1),  # nn.ConvTranspose2d, faster backward on CPU
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


@register_part(DECODERS, "paper")
class SpatialDecoder(nn.Module):
    """(N, latent_dim) -> (N, 1, 64, 64) logits; ``torch.sigmoid`` of them is the frame.

    The final sigmoid of A.2 is left to the caller so that the loss can use the
    numerically stable ``binary_cross_entropy_with_logits``.
    """

    def __init__(self, latent_dim: int = 64) -> None:
        super().__init__()
        self.head = nn.Sequential(
            nn.Linear(latent_dim, 256),
            nn.ReLU(inplace=True),
            nn.Linear(256, 128 * 8 * 8),
            nn.ReLU(inplace=True),
            nn.Unflatten(1, (128, 8, 8)),      # (N, 128, 8, 8)
        )
        self.features = nn.Sequential(
            deconv_block(128, 128),  # (N, 128, 16, 16)
            deconv_block(128, 64),   # (N, 64, 32, 32)
            deconv_block(64, 32),    # (N, 32, 64, 64)
            nn.Conv2d(32, 1, kernel_size=3, padding=1),  # (N, 1, 64, 64) logits
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # channels_last makes the transposed convolutions markedly faster on CPU (and uses tensor cores on GPU).
        h = self.head(z).contiguous(memory_format=torch.channels_last)
        return run_blocks(h, self.features[:3], self.features[3])  # self.features(h), less memory in training
