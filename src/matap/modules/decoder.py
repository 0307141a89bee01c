"""Spatial decoder D_theta (paper, appendix A.2): a d-dimensional latent to a 64x64 frame; and a
spatial broadcast decoder (beyond the paper, :class:`BroadcastDecoder`)."""

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


class BroadcastDecoder(nn.Module):
    """(N, latent_dim) -> (N, 1, 64, 64) logits, beyond the paper: a spatial broadcast decoder.

    The latent is copied to every cell of a 16x16 grid beside the cell's own (x, y) coordinates
    in [-1, 1], and convolutions read the pair: a 1x1 layer (written as a linear map of the
    latent plus a linear map of the coordinates, the same function as a 1x1 convolution over
    the tiled input at a fraction of its cost), a 1x1 and a 3x3 convolution with BatchNorm, then
    the paper decoder's last two transposed-convolution blocks (16 -> 32 -> 64) and its 3x3
    output convolution. With no fully connected layer to turn numbers into places, a digit's
    position is easiest written as a linear function of the latent, compared with each cell's
    coordinates, which gives the dynamics a latent in which steady motion is close to a line.
    """

    GRID = 16

    def __init__(self, latent_dim: int = 64, width: int = 128) -> None:
        super().__init__()
        axis = torch.linspace(-1.0, 1.0, self.GRID)
        y, x = torch.meshgrid(axis, axis, indexing="ij")
        self.register_buffer("coords", torch.stack([x, y]).unsqueeze(0), persistent=False)  # (1, 2, 16, 16)
        self.latent_in = nn.Linear(latent_dim, width)
        self.coords_in = nn.Conv2d(2, width, kernel_size=1, bias=False)
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(width, width, kernel_size=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)),
            nn.Sequential(nn.Conv2d(width, width, kernel_size=3, padding=1), nn.BatchNorm2d(width),
                          nn.ReLU(inplace=True)),
            deconv_block(width, 64),                     # (N, 64, 32, 32)
            deconv_block(64, 32),                        # (N, 32, 64, 64)
            nn.Conv2d(32, 1, kernel_size=3, padding=1),  # (N, 1, 64, 64) logits
        )

    def forward(self, z: torch.Tensor, content: list[torch.Tensor] | None = None) -> torch.Tensor:
        if content is not None:
            raise ValueError("the broadcast decoder has no content path")
        where = self.coords_in(self.coords.to(z.dtype))                           # (1, width, 16, 16)
        h = torch.relu(self.latent_in(z)[:, :, None, None] + where)               # (N, width, 16, 16)
        h = h.contiguous(memory_format=torch.channels_last)
        return run_blocks(h, self.features[:4], self.features[4])
