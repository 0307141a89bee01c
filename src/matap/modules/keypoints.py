"""A keypoint latent (beyond the paper): the latent holds where things are, as coordinates.

The paper's latent is whatever its fully connected layers make of a frame, and a digit's
position is some non-linear function of it; a rollout that extends the latent along a line does
not move the digit along one. Here the d numbers are K keypoints, each written as its (x, y)
position and m = d / K - 2 numbers of appearance:

    z = [s x_1, s y_1, ..., s x_K, s y_K, a_1 (m numbers), ..., a_K (m numbers)]

with x, y in [-1, 1] and s = :data:`COORD_SCALE`. The encoder finds each keypoint as the
expected position under a softmax over a 16x16 map of scores (a "soft arg-max", differentiable
in the frame), and reads its appearance from its 8x8 features weighted by the same softmax. The
decoder paints each keypoint's appearance, mapped to 128 channels, as a Gaussian bump at its
position on a 16x16 grid, and convolutions render the frame from the sum. A digit that moves at a
steady speed is then a latent that moves along a line, which ``model.velocity`` extends exactly.

With ``model.track`` the scores of each frame of a sequence are added a Gaussian log-prior around
the keypoint's position in the frame before (:data:`TRACK` wide), so that a keypoint stays on the
digit it was on rather than jumping to the other one, which the soft arg-max alone cannot tell apart.

With ``sprites`` the decoder places each keypoint's appearance, mapped to a :data:`SPRITE` x :data:`SPRITE`
patch of features (36 pixels, a digit's box and a margin), with its centre at the keypoint, instead of
painting one vector as a round bump: what a keypoint draws has a shape and is drawn where the keypoint is,
so that a keypoint must sit on the digit it draws.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from matap.modules.decoder import deconv_block
from matap.modules.encoder import conv_block
from matap.modules.recompute import run_blocks

GRID = 16            # the score and paint grid, 16x16 cells over the 64x64 frame
COORD_SCALE = 4.0    # a keypoint's latent coordinates are s (x, y): one pixel is s / 30 = 0.13
PIXELS_PER_UNIT = 30.0   # the 16x16 grid's cell centres, pixels 1.5 ... 61.5, lie at -1 ... 1: pixel 31.5 + 30 x
SIGMA = 0.2          # width of a painted bump, in the [-1, 1] frame units (1.5 grid cells, 6 pixels)
TRACK = 0.3          # width of the tracking prior (``model.track``), in the grid's units (9 pixels)
SPRITE = 9           # side of a sprite (``model.sprites``), in grid cells (36 pixels)


def appearance_size(latent_dim: int, keypoints: int) -> int:
    """m, the appearance numbers per keypoint; raises ValueError where d does not split into K (2 + m), m >= 1."""
    if keypoints < 1 or latent_dim % keypoints or latent_dim // keypoints < 3:
        raise ValueError(f"a latent of {latent_dim} numbers does not split into {keypoints} keypoints of "
                         "2 coordinates and at least 1 appearance number each (d must be a multiple of K, "
                         "with d / K >= 3)")
    return latent_dim // keypoints - 2


def from_frame_units(where: torch.Tensor) -> torch.Tensor:
    """Positions in frame units (pixel p at 2 p / 63 - 1, as the generator gives digit centres) in the
    units of the 16x16 grid, which the decoder paints on (pixel 31.5 + 30 x)."""
    return where * (31.5 / PIXELS_PER_UNIT)


def grid_points(device: torch.device | None = None, side: int = GRID) -> torch.Tensor:
    """(side * side, 2): the (x, y) centre of each cell of a side x side grid in [-1, 1], row by row."""
    axis = torch.linspace(-1.0, 1.0, side, device=device)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([x.flatten(), y.flatten()], dim=1)


class KeypointEncoder(nn.Module):
    """(N, 1, 64, 64) frames in [0, 1] -> (N, latent_dim): K keypoints, coordinates first.

    The paper encoder's three convolution blocks (to 64 maps of 16x16 and 128 of 8x8), then a 3x3
    convolution to K score maps at 16x16 and a linear map of the 128 features at 8x8 to m
    appearance numbers. ``fine=True`` (no parameters) scores a 32x32 grid (2-pixel cells) instead,
    the same convolution applied to the 16x16 features upsampled bilinearly, so that a position
    is a mean over finer cells (their centres, pixels 0.5 ... 63.5, also lie at -1 ... 1: 31 pixels
    to a unit there against the 16x16 grid's 30)."""

    def __init__(self, latent_dim: int = 64, keypoints: int = 4, fine: bool = False) -> None:
        super().__init__()
        self.keypoints = keypoints
        self.side = 2 * GRID if fine else GRID
        self.appearance = appearance_size(latent_dim, keypoints)
        self.features = nn.Sequential(conv_block(1, 32), conv_block(32, 64), conv_block(64, 128))
        self.scores = nn.Conv2d(64, keypoints, kernel_size=3, padding=1)   # (N, K, 16, 16)
        self.look = nn.Linear(128, self.appearance)
        self.register_buffer("points", grid_points(side=self.side), persistent=False)

    def trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each keypoint's scores over the grid, (N, K, side^2) in fp32, and the 8x8 features, (N, 128, 8, 8)."""
        fine = run_blocks(x, self.features[:2])            # (N, 64, 16, 16)
        coarse = run_blocks(fine, self.features[2:])       # (N, 128, 8, 8)
        if self.side != GRID:
            fine = F.interpolate(fine, size=(self.side, self.side), mode="bilinear", align_corners=True)
        return self.scores(fine).float().flatten(2), coarse

    def prior(self, before: torch.Tensor) -> torch.Tensor:
        """(N, K, side^2) log-prior of tracking: -|p - p_before|^2 / (2 TRACK^2) for positions ``before``
        (N, K, 2) in [-1, 1], so that a keypoint stays on what is near where it was."""
        return -(self.points - before.float()[:, :, None, :]).square().sum(dim=-1) / (2 * TRACK ** 2)

    def attend(self, x: torch.Tensor, before: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The softmax over the grid of each keypoint, (N, K, side^2), and the 8x8 features, (N, 128, 8, 8);
        ``before``: the keypoints' positions in the previous frame, (N, K, 2) in [-1, 1], for tracking."""
        scores, coarse = self.trunk(x)
        return self.read_weights(scores, before), coarse

    def read_weights(self, scores: torch.Tensor, before: torch.Tensor | None) -> torch.Tensor:
        return (scores if before is None else scores + self.prior(before)).softmax(dim=-1)

    def read(self, weights: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        """(N, d) latents from the keypoints' weights over the grid and the 8x8 features."""
        N, K = weights.shape[:2]
        with torch.autocast(weights.device.type, enabled=False):   # positions in fp32, not rounded to bf16
            where = weights @ self.points                                               # (N, K, 2)
        # The same weights summed over each 2x2 block of cells: the weight of each 8x8 cell.
        cells = self.side // 8
        pooled = F.avg_pool2d(weights.view(N, K, self.side, self.side), cells).flatten(2) * cells ** 2  # (N, K, 64)
        seen = pooled @ coarse.float().flatten(2).transpose(1, 2)                      # (N, K, 128)
        looks = self.look(seen)                                                         # (N, K, m)
        return torch.cat([COORD_SCALE * where.flatten(1), looks.flatten(1).float()], dim=1)

    def forward(self, x: torch.Tensor, before: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 1, 64, 64) -> (N, d); ``before`` as in :meth:`attend`."""
        return self.read(*self.attend(x, before))

    def track(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 1, 64, 64) -> (B, T, d), each frame's keypoints found with the prior of the previous
        frame's positions (held fixed: no gradient flows through the prior); the first frame's without."""
        B, T = frames.shape[:2]
        scores, coarse = self.trunk(frames.flatten(0, 1))
        scores, coarse = scores.view(B, T, *scores.shape[1:]), coarse.view(B, T, *coarse.shape[1:])
        latents, before = [], None
        for t in range(T):
            z = self.read(self.read_weights(scores[:, t], before), coarse[:, t])
            latents.append(z)
            before = positions(z.detach(), self.keypoints)
        return torch.stack(latents, dim=1)


def positions(z: torch.Tensor, keypoints: int) -> torch.Tensor:
    """(..., K, 2) positions in [-1, 1] of keypoint latents (..., d)."""
    return z[..., :2 * keypoints].reshape(*z.shape[:-1], keypoints, 2) / COORD_SCALE


class KeypointDecoder(nn.Module):
    """(N, latent_dim) keypoint latents -> (N, 1, 64, 64) logits.

    Each keypoint's appearance, mapped linearly to 128 channels, is painted as a Gaussian bump
    (:data:`SIGMA`) at its position on a 16x16 grid; the painted map goes through two 3x3
    convolution blocks at 16x16, the paper decoder's last two transposed-convolution blocks
    (16 -> 32 -> 64) and its 3x3 output convolution. With ``sprites`` the appearance is mapped
    linearly to a sprite of 128 channels over :data:`SPRITE` x :data:`SPRITE` cells, placed with its
    centre at the keypoint (bilinear between cells) instead of the bump."""

    def __init__(self, latent_dim: int = 64, keypoints: int = 4, width: int = 128, sprites: bool = False) -> None:
        super().__init__()
        self.keypoints = keypoints
        self.appearance = appearance_size(latent_dim, keypoints)
        self.sprites = sprites
        self.width = width
        self.paint = nn.Linear(self.appearance, width * SPRITE * SPRITE if sprites else width)
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(width, width, kernel_size=3, padding=1), nn.BatchNorm2d(width),
                          nn.ReLU(inplace=True)),
            nn.Sequential(nn.Conv2d(width, width, kernel_size=3, padding=1), nn.BatchNorm2d(width),
                          nn.ReLU(inplace=True)),
            deconv_block(width, 64),                     # (N, 64, 32, 32)
            deconv_block(64, 32),                        # (N, 32, 64, 64)
            nn.Conv2d(32, 1, kernel_size=3, padding=1),  # (N, 1, 64, 64) logits
        )
        self.register_buffer("points", grid_points(), persistent=False)

    def bumps(self, z: torch.Tensor) -> torch.Tensor:
        """(N, K, 256): each keypoint's Gaussian bump over the grid cells, 1 at its position."""
        K = self.keypoints
        where = z[:, :2 * K].float().view(-1, K, 1, 2) / COORD_SCALE
        distance2 = (self.points - where).square().sum(dim=-1)                          # (N, K, 256)
        return torch.exp(-distance2 / (2 * SIGMA ** 2))

    def placed(self, z: torch.Tensor) -> torch.Tensor:
        """(N, width, 16, 16): the sum over keypoints of each one's sprite, its centre cell at the keypoint;
        a sprite sampled bilinearly where the keypoint falls between cells, zero outside its cells."""
        N, K = z.shape[0], self.keypoints
        sprites = self.paint(z[:, 2 * K:].reshape(N * K, self.appearance)).float()
        sprites = sprites.view(N * K, self.width, SPRITE, SPRITE)
        where = z[:, :2 * K].float().reshape(N * K, 1, 2) / COORD_SCALE
        half = (SPRITE - 1) / (GRID - 1)               # a sprite's half side in [-1, 1] frame units
        grid = ((self.points - where) / half).view(N * K, GRID, GRID, 2)   # each cell's place on the sprite
        drawn = F.grid_sample(sprites, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        return drawn.view(N, K, self.width, GRID, GRID).sum(dim=1)

    def painted(self, z: torch.Tensor) -> torch.Tensor:
        """(N, width, 16, 16): the sum over keypoints of each one's mapped appearance times its bump
        (with ``sprites``, :meth:`placed`)."""
        if self.sprites:
            return self.placed(z)
        N, K = z.shape[0], self.keypoints
        colours = self.paint(z[:, 2 * K:].reshape(N, K, self.appearance))               # (N, K, width)
        bumps = self.bumps(z).to(colours.dtype)
        return (bumps.transpose(1, 2) @ colours).transpose(1, 2).reshape(N, -1, GRID, GRID)

    def forward(self, z: torch.Tensor, content: list[torch.Tensor] | None = None) -> torch.Tensor:
        if content is not None:
            raise ValueError("the keypoint decoder has no content path")
        h = self.painted(z).contiguous(memory_format=torch.channels_last)
        return run_blocks(h, self.features[:4], self.features[4])
