"""How close must a keypoint model put the digits, and how close does it put them?

For a run with two keypoints (``model.keypoints=2``), on the first N held-out sequences (default 200):
the distance of the encoded and of the rolled-out keypoints to the generator's digit centres, and
10 -> 10 scores of the run's decoder given positions from several sources, each with the appearance
numbers of the last context frame kept:

- the true frames' encoded positions, and the told centres (the digits' box centres);
- the model's own rollout, its positions with the last appearance;
- a straight line through the last m positions (encoded, or the told centres), reflected at the walls
  of the box-centre range (13.5 ... 49.5 pixels);
- the bouncing path (a start and a velocity per axis, folded at those walls) that fits all ten context
  positions best, extended (for the told centres, read half a pixel on and floored as they are): an
  estimator that knows the motion model;
- the told centres moved by a fixed offset of 1, 2, 3 and 5 pixels (a random direction per digit).

    python probe.py RUN HELDOUT.npy [N]

HELDOUT.npy: ``matap data --config forecast --split test data.val_size=1000 --save HELDOUT.npy
--save-layout TN`` (the script regenerates its sequences with their centres and checks they match).
Positions are compared in the keypoint grid's units (30 pixels to a unit, pixel 31.5 + 30 x), the
generator's centres converted to them. Keypoints and digits are paired as fits each sequence's context best.
"""

import itertools
import sys

import numpy as np
import torch

from matap.checkpoint import load_for_inference
from matap.config import load_config
from matap.data import generate, to_frames
from matap.data.digits import load_digits
from matap.metrics import frame_scores
from matap.modules.keypoints import COORD_SCALE, PIXELS_PER_UNIT, from_frame_units

PIXELS = PIXELS_PER_UNIT
WALL = (31.5 - 13.5) / PIXELS      # a box centre's range, pixels 13.5 ... 49.5, in grid units: +-0.6

torch.set_grad_enabled(False)
run, heldout = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 200
torch.manual_seed(0)

cfg = load_config("forecast", ["data.val_size=1000"])
digits = load_digits(cfg.data.source, "test", cfg.data.idx_dir)
videos, centres = generate(digits, cfg.data.seed, "test", range(n), 20, 2, "classic", centres=True)
if not np.array_equal(videos, np.load(heldout).transpose(1, 0, 2, 3)[:n]):
    sys.exit(f"{heldout} does not hold the held-out sequences this script regenerates")
model = load_for_inference(run)
if model.keypoints != 2:
    sys.exit("the run must have model.keypoints=2")
K = 2
x = to_frames(torch.from_numpy(videos))
target = x[:, 10:]
z = torch.cat([model.encode(x[i:i + 50]) for i in range(0, n, 50)])                       # (n, 20, d)
rolled = torch.cat([model.rollout_latents(z[i:i + 50, :10], 10) for i in range(0, n, 50)])  # (n, 10, d)
encoded = z[..., :2 * K].reshape(n, 20, K, 2) / COORD_SCALE
rolled_at = rolled[..., :2 * K].reshape(n, 10, K, 2) / COORD_SCALE

# the pairing of keypoints and digits that fits each sequence's context best, and the centres in that order
told = from_frame_units(torch.from_numpy(centres))
misfit = torch.stack([(encoded[:, :10, list(p)] - told[:, :10]).norm(dim=-1).mean((1, 2))
                      for p in itertools.permutations(range(K))])
told = torch.where(misfit.argmin(0).view(n, 1, 1, 1) == 0, told, told[:, :, [1, 0]])


def pixels_off(where: torch.Tensor, frames: slice) -> torch.Tensor:
    return (where - told[:, frames]).norm(dim=-1).mean(dim=2) * PIXELS                     # (n, frames)


def decoded(latents: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.sigmoid(model.decode(latents[i:i + 50])) for i in range(0, n, 50)])


def at(where: torch.Tensor) -> torch.Tensor:
    """Latents with the last context frame's appearance and keypoints at ``where`` (n, 10, K, 2)."""
    out = z[:, 9:10].expand(n, 10, -1).clone()
    out[..., :2 * K] = where.reshape(n, 10, 2 * K) * COORD_SCALE
    return out


def show(name: str, frames: torch.Tensor) -> None:
    s = frame_scores(frames, target)
    print(f"{name:52s} SSIM {s['ssim'].mean():.3f}  MSE {s['mse'].mean():6.1f}   t=11 {s['ssim'][:, 0].mean():.3f}"
          f" / {s['mse'][:, 0].mean():5.1f}   t=20 {s['ssim'][:, -1].mean():.3f} / {s['mse'][:, -1].mean():5.1f}")


def reflected_line(where: torch.Tensor, m: int) -> torch.Tensor:
    """(n, 10, K, 2): the least-squares line through the last m of ``where`` (n, 10, K, 2), extended 10
    steps and folded back into [-WALL, WALL] as a digit bounces."""
    t = torch.arange(m, dtype=torch.float32) - (m - 1) / 2
    last = where[:, 10 - m:10]
    velocity = (last * t.view(1, m, 1, 1)).sum(1) / t.square().sum()
    end = last.mean(1) + velocity * (m - 1) / 2
    line = end[:, None] + torch.arange(1, 11, dtype=torch.float32).view(1, 10, 1, 1) * velocity[:, None]
    span = 2 * WALL
    folded = torch.remainder(line + WALL, 2 * span)
    return -WALL + span - (folded - span).abs()


def fitted_bounce(where: torch.Tensor, floored: bool = False) -> torch.Tensor:
    """(n, 10, K, 2): for each digit and axis, the start and velocity whose path, folded at the walls
    as a bouncing digit's is, fits all 10 context positions of ``where`` (n, 20 or 10, K, 2) best in
    least squares (searched on a grid: 0.02 px per step, 0.05 px), extended 10 steps. ``floored``:
    the positions are whole-pixel corners floored from the true ones (the told centres), so the fit
    reads them half a pixel on and its path is floored as they are."""
    if floored:
        where = where + 0.5 / PIXELS
    span = 2 * WALL
    velocity = torch.arange(-4.5, 4.5001, 0.02) / PIXELS                                   # per step
    start = -WALL + torch.arange(0, 2 * span * PIXELS, 0.05) / PIXELS                      # one period
    unfolded = start.view(1, -1, 1) + velocity.view(-1, 1, 1) * torch.arange(20.0).view(1, 1, 20)
    paths = (-WALL + span - (torch.remainder(unfolded + WALL, 2 * span) - span).abs()).reshape(-1, 20)
    context, future = paths[:, :10], paths[:, 10:]
    tracks = where[:, :10].permute(0, 2, 3, 1).reshape(-1, 10)                             # (n K 2, 10)
    best = torch.cat([((context.square().sum(1, keepdim=True) - 2 * context @ chunk.T)).argmin(0)
                      for chunk in tracks.split(100)])
    path = future[best].view(n, K, 2, 10).permute(0, 3, 1, 2)
    if floored:  # pixel 31.5 + 30 u, the corner 13.5 pixels before it, floored
        path = (torch.floor(path * PIXELS + 31.5 - 13.5) + 13.5 - 31.5) / PIXELS
    return path


def per_step(name: str, off: torch.Tensor) -> None:
    print(f"{name:52s} pixels off at steps 1-10: {' '.join(f'{v:.1f}' for v in off.mean(0).tolist())}")


print(f"{run}: first {n} held-out sequences")
print(f"encoded keypoints to the digits' centres: median {pixels_off(encoded, slice(0, 20)).median():.1f} px, "
      f"mean {pixels_off(encoded, slice(0, 20)).mean():.1f} px")
bend = encoded[:, 2:] - 2 * encoded[:, 1:-1] + encoded[:, :-2]
print(f"second difference of the encoded positions: median {(bend.norm(dim=-1) * PIXELS).median():.1f} px "
      f"(of the told centres: {((told[:, 2:] - 2 * told[:, 1:-1] + told[:, :-2]).norm(dim=-1) * PIXELS).median():.1f})")
per_step("the model's rollout", pixels_off(rolled_at, slice(10, 20)))
for m in (2, 3):
    per_step(f"line through the last {m} encoded positions, reflected", pixels_off(reflected_line(encoded, m),
                                                                                 slice(10, 20)))
    per_step(f"line through the last {m} told centres, reflected", pixels_off(reflected_line(told, m), slice(10, 20)))
bounce_encoded, bounce_told = fitted_bounce(encoded), fitted_bounce(told, floored=True)
per_step("bouncing path fitted to all 10 encoded positions", pixels_off(bounce_encoded, slice(10, 20)))
per_step("bouncing path fitted to all 10 told centres", pixels_off(bounce_told, slice(10, 20)))
show("all-black frames", torch.zeros_like(target))
show("the last context frame, repeated", x[:, 9:10].expand_as(target))
show("the model's rollout", decoded(rolled))
show("the true frames encoded (autoencoder)", decoded(z[:, 10:]))
show("encoded positions of the true frames, last appearance", decoded(at(encoded[:, 10:])))
show("told centres, last appearance", decoded(at(told[:, 10:])))
show("the rollout's positions, last appearance", decoded(at(rolled_at)))
for m in (2, 3):
    show(f"line through the last {m} encoded positions, reflected", decoded(at(reflected_line(encoded, m))))
    show(f"line through the last {m} told centres, reflected", decoded(at(reflected_line(told, m))))
show("bouncing path fitted to all 10 encoded positions", decoded(at(bounce_encoded)))
show("bouncing path fitted to all 10 told centres", decoded(at(bounce_told)))
for shift in (1, 2, 3, 5):
    angle = torch.rand(n, K) * 2 * np.pi
    offset = torch.stack([angle.cos(), angle.sin()], dim=-1) * shift / PIXELS               # (n, K, 2)
    show(f"told centres {shift} px off, last appearance", decoded(at(told[:, 10:] + offset[:, None])))
