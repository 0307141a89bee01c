"""Spatial decoder D_theta (paper, appendix A.2): a d-dimensional latent to a 64x64 frame."""

from __future__ import annotations

import torch
from torch import nn

from matap.modules.recompute import run_blocks
from matap.modules.transposed import ConvTranspose2d


def deconv_block(c_in: int, c_out: int) -> nn.Sequential:
    """ConvTranspose2D(4x4, stride 2, 'same') + BatchNorm + ReLU: doubles the spatial size."""
    return nn.Sequential(
        ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1),  # nn.ConvTranspose2d, faster backward on CPU
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


# Channels of the encoder's feature maps at 8x8, 16x16 and 32x32 (SpatialEncoder.pyramid), in decoding order.
SKIP_CHANNELS = (128, 64, 32)


class SpatialDecoder(nn.Module):
    """(N, latent_dim) -> (N, 1, 64, 64) logits; ``torch.sigmoid`` of them is the frame.

    The final sigmoid of A.2 is left to the caller so that the loss can use the
    numerically stable ``binary_cross_entropy_with_logits``.

    ``content_path=True`` (beyond the paper) widens the input of each transposed convolution
    to take, beside the decoder's own feature map, the encoder's feature map of a reference
    frame at the same resolution (8x8, 16x16, 32x32): a path for the digits' appearance that
    does not go through the d numbers of the latent.
    """

    def __init__(self, latent_dim: int = 64, content_path: bool = False) -> None:
        super().__init__()
        self.content_path = content_path
        skip = SKIP_CHANNELS if content_path else (0, 0, 0)
        self.head = nn.Sequential(
            nn.Linear(latent_dim, 256),
            nn.ReLU(inplace=True),
            nn.Linear(256, 128 * 8 * 8),
            nn.ReLU(inplace=True),
            nn.Unflatten(1, (128, 8, 8)),      # (N, 128, 8, 8)
        )
        self.features = nn.Sequential(
            deconv_block(128 + skip[0], 128),  # (N, 128, 16, 16)
            deconv_block(128 + skip[1], 64),   # (N, 64, 32, 32)
            deconv_block(64 + skip[2], 32),    # (N, 32, 64, 64)
            nn.Conv2d(32, 1, kernel_size=3, padding=1),  # (N, 1, 64, 64) logits
        )

    def forward(self, z: torch.Tensor, content: list[torch.Tensor] | None = None) -> torch.Tensor:
        """``content``: with the content path, the reference frame's feature maps, (N, C, h, w)
        each at 8x8, 16x16 and 32x32 (coarsest first), one per row of ``z``."""
        # channels_last makes the transposed convolutions markedly faster on CPU (and uses tensor cores on GPU).
        h = self.head(z).contiguous(memory_format=torch.channels_last)
        if not self.content_path:
            return run_blocks(h, self.features[:3], self.features[3])  # self.features(h), less memory in training
        if content is None:
            raise ValueError("this decoder has a content path: pass the reference frame's feature maps")
        for block, skip in zip(self.features[:3], content):
            h = block(torch.cat([h, skip], dim=1))
        return self.features[3](h)
