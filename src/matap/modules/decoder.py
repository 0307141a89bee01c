"""Spatial decoder D_theta (paper, appendix A.2): a d-dimensional latent to a 64x64 frame; and two
decoders beyond the paper that read the context frames as well (``"skip"``, ``"appearance"``)."""

from __future__ import annotations

import torch
from torch import nn

from matap.errors import MatapError
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


def latent_head(latent_dim: int) -> nn.Sequential:
    """Dense(256) + ReLU + Dense(8192) + ReLU, reshaped: (N, latent_dim) -> (N, 128, 8, 8)."""
    return nn.Sequential(
        nn.Linear(latent_dim, 256),
        nn.ReLU(inplace=True),
        nn.Linear(256, 128 * 8 * 8),
        nn.ReLU(inplace=True),
        nn.Unflatten(1, (128, 8, 8)),
    )


@register_part(DECODERS, "paper")
class SpatialDecoder(nn.Module):
    """(N, latent_dim) -> (N, 1, 64, 64) logits; ``torch.sigmoid`` of them is the frame.

    The final sigmoid of A.2 is left to the caller so that the loss can use the
    numerically stable ``binary_cross_entropy_with_logits``.
    """

    def __init__(self, latent_dim: int = 64) -> None:
        super().__init__()
        self.head = latent_head(latent_dim)    # (N, 128, 8, 8)
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


ENCODER_CHANNELS = (32, 64, 128)  # the channels of the paper's encoder blocks, finest first


def encoder_maps(encoder: nn.Module, frames: torch.Tensor) -> list[torch.Tensor]:
    """The feature map after each conv block of the paper's encoder (A.1), for (B, C, 1, H, W) frames:
    (B, C, 32, 32, 32), (B, C, 64, 16, 16) and (B, C, 128, 8, 8) for 64x64 frames."""
    blocks = getattr(encoder, "features", None)
    if not isinstance(blocks, nn.Sequential) or [b[0].out_channels for b in blocks] != list(ENCODER_CHANNELS):
        raise MatapError(f"this decoder reads the feature maps of the paper's encoder (conv blocks of "
                         f"{', '.join(map(str, ENCODER_CHANNELS))} channels); {type(encoder).__name__} has none")
    B, C = frames.shape[:2]
    x, maps = frames.flatten(0, 1), []
    for block in blocks:
        x = block(x)
        maps.append(x.unflatten(0, (B, C)))
    return maps



@register_part(DECODERS, "skip")
class SkipDecoder(nn.Module):
    """Decoder A.2 with skip connections from the encoder, as SVG (Denton & Fergus, 2018) decodes: at
    each of the three scales the encoder's feature map of one earlier frame is concatenated to the
    decoder's input, so that what a digit looks like can come from that frame and the latent carries
    what changes. Frame s reads frame s - 1 within the context and the last context frame after it
    (frame 0 reads itself), in training and in rollouts alike.

    (B, T, latent_dim) latents, the :meth:`condition` of the context frames and the (T,) indices of
    the frames decoded -> (B, T, 1, 64, 64) logits."""

    conditioned = True

    def __init__(self, latent_dim: int = 64) -> None:
        super().__init__()
        self.head = latent_head(latent_dim)    # (N, 128, 8, 8)
        c32, c64, c128 = ENCODER_CHANNELS
        self.blocks = nn.ModuleList([deconv_block(128 + c128, 128),   # (N, 128, 16, 16)
                                     deconv_block(128 + c64, 64),     # (N, 64, 32, 32)
                                     deconv_block(64 + c32, 32)])     # (N, 32, 64, 64)
        self.out = nn.Conv2d(32, 1, kernel_size=3, padding=1)        # (N, 1, 64, 64) logits

    def condition(self, encoder: nn.Module, context: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's feature maps of each context frame, coarsest first."""
        return encoder_maps(encoder, context)[::-1]

    def forward(self, z: torch.Tensor, cond: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        B, T = z.shape[:2]
        source = (index - 1).clamp(0, cond[0].shape[1] - 1)     # (T,) the frame each decoded frame reads
        h = self.head(z.flatten(0, 1))
        for block, maps in zip(self.blocks, cond):
            skip = maps[:, source].flatten(0, 1)                 # (B T, c, h, w)
            h = block(torch.cat([h, skip], dim=1).contiguous(memory_format=torch.channels_last))
        logits = self.out(h)
        return logits.view(B, T, *logits.shape[1:])


@register_part(DECODERS, "appearance")
class AppearanceDecoder(nn.Module):
    """Decoder A.2 reading, besides the latent, one appearance vector per sequence, read once from the
    context and held fixed (the idea of DRNet, Denton & Birodkar 2017): per channel of the encoder's
    last feature map (128 maps of 8x8), the maximum over positions, averaged over the context frames.
    The maximum keeps which features a frame holds and drops where they are, so the position of the
    digits has to come from the latent, which the cell moves.

    (B, T, latent_dim) latents, the :meth:`condition` of the context frames and the (T,) indices of
    the frames decoded (every frame reads the same vector) -> (B, T, 1, 64, 64) logits."""

    conditioned = True

    def __init__(self, latent_dim: int = 64) -> None:
        super().__init__()
        paper = SpatialDecoder(latent_dim + ENCODER_CHANNELS[-1])    # its head reads [z, appearance]
        self.head, self.features = paper.head, paper.features

    def condition(self, encoder: nn.Module, context: torch.Tensor) -> torch.Tensor:
        """(B, 128): the appearance of each sequence."""
        return encoder_maps(encoder, context)[-1].amax(dim=(3, 4)).mean(dim=1)

    def forward(self, z: torch.Tensor, cond: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        B, T = z.shape[:2]
        appearance = cond.unsqueeze(1).expand(B, T, cond.shape[-1])       # (B, T, 128)
        h = self.head(torch.cat([z, appearance.to(z.dtype)], dim=-1).flatten(0, 1))
        logits = run_blocks(h.contiguous(memory_format=torch.channels_last), self.features[:3], self.features[3])
        return logits.view(B, T, *logits.shape[1:])
