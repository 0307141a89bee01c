"""Evaluation protocols, each giving per-timestep metrics averaged over sequences.

A protocol is registered (``matap.registry.PROTOCOLS``) with the function that turns a batch of
frames into (prediction, target) and a line saying what it scores: ``reconstruct`` (the
paper's), ``autoencode``, ``predict`` (10 -> 10 is the standard benchmark) and ``rollout``.

One loop (:func:`score`) scores the model and the trivial baselines of
``matap.baselines`` (all-black frames, the last context frame, the mean
training frame), so their numbers compare row by row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from matap.data import to_frames
from matap.errors import MatapError
from matap.metrics import frame_scores
from matap.models import LatentVideoModel
from matap.models.fuse import fold_batchnorm
from matap.registry import PROTOCOLS

Frames = Callable[[LatentVideoModel, torch.Tensor, int, int], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Protocol:
    frames: Frames   # (model, x (B, T, 1, H, W), context, horizon) -> (prediction in [0, 1], target), (B, T', 1, H, W)
    scores: str      # what is scored against what, in a line
    future: bool     # predicts the ``horizon`` frames after ``context`` (trivial baselines apply)
    horizon: int | None = None  # the horizon ``matap evaluate`` uses by default; None: the config's eval.horizon

    def required_length(self, context: int, horizon: int) -> int:
        return context + horizon if self.future else 2


def reconstruct(model: LatentVideoModel, x: torch.Tensor) -> torch.Tensor:
    """The teacher-forced output: the decoded predictor output at every step t, frames (B, T, 1, H, W) in [0, 1]."""
    return torch.sigmoid(model.decode(model(x).z_next, x))


def _rolled_out(model: LatentVideoModel, x: torch.Tensor, context: int, horizon: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    return model.rollout(x[:, :context], horizon), x[:, context:context + horizon]


PROTOCOLS.register("reconstruct")(Protocol(
    lambda model, x, context, horizon: (reconstruct(model, x), x),
    "the paper's: teacher-forced, the decoded predictor output at step t against frame t", future=False))
PROTOCOLS.register("autoencode")(Protocol(
    lambda model, x, context, horizon: (torch.sigmoid(model.decode(model.encode(x), x)), x),
    "decode(encode(x_t)) against x_t: the spatial path alone", future=False))
PROTOCOLS.register("predict")(Protocol(
    _rolled_out, "context frames in, horizon frames rolled out (in latent space, or through the decoded frames "
    "with model.rollout_feedback=frame) against the true future "
    "(10 -> 10 by default)", future=True))
PROTOCOLS.register("rollout")(Protocol(
    _rolled_out, "as predict, for any horizon (90 by default), to show drift", future=True, horizon=90))


def frames_for(model: LatentVideoModel, x: torch.Tensor, protocol: str, context: int, horizon: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(prediction in [0, 1], target), both (B, T', 1, H, W), for one batch of frames."""
    return PROTOCOLS.get(protocol).frames(model, x, context, horizon)


def required_length(protocol: str, context: int, horizon: int) -> int:
    return PROTOCOLS.get(protocol).required_length(context, horizon)


def evaluate(model: LatentVideoModel, videos: np.ndarray, protocol: str = "predict", context: int = 10,
             horizon: int = 10, batch_size: int = 64, device: str | torch.device = "cpu",
             progress: bool = False) -> dict[str, Any]:
    """Metrics of ``model`` on uint8 videos (N, T, 64, 64) under ``protocol``.

    Returns ``{"protocol", "num_sequences", "context", "horizon", "metrics": {name:
    {"mean": float, "per_timestep": [float, ...]}}}``; the mean is over sequences
    and timesteps, per_timestep over sequences.
    """
    model = fold_batchnorm(model.to(device))  # same outputs as model.eval(), fewer layers
    return score(videos, lambda x: frames_for(model, x, protocol, context, horizon), protocol, context, horizon,
                 batch_size, device, progress)


@torch.inference_mode()
def score(videos: np.ndarray, predict: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
          protocol: str = "predict", context: int = 10, horizon: int = 10, batch_size: int = 64,
          device: str | torch.device = "cpu", progress: bool = False) -> dict[str, Any]:
    """The scoring loop behind :func:`evaluate` and the trivial baselines (``matap.baselines``):
    ``predict`` maps a batch of frames x (B, T, 1, H, W) in [0, 1] to (prediction, target), both
    (B, T', 1, H, W); every metric of FRAME_METRICS per timestep, averaged over sequences.
    Returns the layout of :func:`evaluate`."""
    if protocol not in PROTOCOLS:
        raise MatapError(f"--protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}")
    future = PROTOCOLS.get(protocol).future
    if future:
        if context < 1 or horizon < 1:
            raise MatapError(f"context ({context}) and horizon ({horizon}) must be >= 1")
        if videos.shape[1] < context + horizon:
            raise MatapError(f"the videos have {videos.shape[1]} frames but --context {context} + --horizon "
                             f"{horizon} = {context + horizon} are needed")
    sums: dict[str, torch.Tensor] = {}
    count = 0
    for start in range(0, len(videos), batch_size):
        batch = torch.from_numpy(np.array(videos[start:start + batch_size])).to(device)
        x = to_frames(batch)
        pred, target = predict(x)
        for name, value in frame_scores(pred, target).items():
            per_t = value.double().sum(0).cpu()  # (T',)
            sums[name] = sums[name] + per_t if name in sums else per_t
        count += x.shape[0]
        if progress:
            print(f"\revaluating {min(start + batch_size, len(videos))}/{len(videos)}", end="", flush=True)
    if progress:
        print()
    result = {"protocol": protocol, "num_sequences": count, "context": context if future else None,
              "horizon": horizon if future else None, "metrics": {}}
    for name, total in sums.items():
        per_t = (total / count).tolist()
        result["metrics"][name] = {"mean": float(np.mean(per_t)), "per_timestep": per_t}
    return result


METRIC_LABELS = {
    "bce": "BCE (per pixel)",
    "mse": "MSE (per frame, sum over pixels)",
    "mse_px": "MSE (per pixel)",
    "mae": "MAE (per frame, sum over pixels)",
    "mae_px": "MAE (per pixel)",
    "ssim": "SSIM (tf.image.ssim)",
    "ssim_empty": "  of it, from empty windows",
    "ssim_digits": "  of it, from windows with a digit",
    "psnr": "PSNR (dB)",
}


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table: metric, mean, first and last timestep."""
    metrics = result["metrics"]
    steps = len(next(iter(metrics.values()))["per_timestep"])
    lines = [f"protocol: {result['protocol']}   sequences: {result['num_sequences']}   frames scored per sequence: {steps}",
             f"{'metric':<34} {'mean':>10} {'t=1':>10} {f't={steps}':>10}"]
    for name, value in metrics.items():
        per_t = value["per_timestep"]
        lines.append(f"{METRIC_LABELS.get(name, name):<34} {value['mean']:>10.4f} {per_t[0]:>10.4f} {per_t[-1]:>10.4f}")
    return "\n".join(lines)
