"""Evaluation protocols, each giving per-timestep metrics averaged over sequences.

A protocol is registered (``matap.registry.PROTOCOLS``) with the function that turns a batch of
frames into (prediction, target) and a line saying what it scores: ``reconstruct`` (the
paper's), ``autoencode``, ``predict`` (10 -> 10 is the standard benchmark) and ``rollout``.

One loop (:func:`per_timestep_means`) serves every score: the model's and the trivial baselines'
(``matap.baselines``: all-black frames, the last context frame, the mean training frame) under each
protocol (:func:`score`), so their numbers compare row by row, and the latent drift of a rollout
(:func:`latent_drift`).
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
    return torch.sigmoid(model.decode(model(x).z_next))


def _rolled_out(model: LatentVideoModel, x: torch.Tensor, context: int, horizon: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    return model.rollout(x[:, :context], horizon), x[:, context:context + horizon]


PROTOCOLS.register("reconstruct")(Protocol(
    lambda model, x, context, horizon: (reconstruct(model, x), x),
    "the paper's: teacher-forced, the decoded predictor output at step t against frame t", future=False))
PROTOCOLS.register("autoencode")(Protocol(
    lambda model, x, context, horizon: (torch.sigmoid(model.decode(model.encode(x))), x),
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
        raise MatapError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}")
    future = PROTOCOLS.get(protocol).future
    if future:
        if context < 1 or horizon < 1:
            raise MatapError(f"context ({context}) and horizon ({horizon}) must be >= 1")
        if videos.shape[1] < context + horizon:
            raise MatapError(f"the videos have {videos.shape[1]} frames but context ({context}) + horizon "
                             f"({horizon}) = {context + horizon} are needed; lower context or horizon, or "
                             "give longer videos")
    count, metrics = per_timestep_means(videos, lambda x: frame_scores(*predict(x)), batch_size, device,
                                        progress=progress)
    return {"protocol": protocol, "num_sequences": count, "context": context if future else None,
            "horizon": horizon if future else None, "metrics": metrics}


def per_timestep_means(videos: np.ndarray, measure: Callable[[torch.Tensor], dict[str, torch.Tensor]],
                       batch_size: int, device: str | torch.device, frames: int | None = None,
                       progress: bool = False) -> tuple[int, dict[str, dict[str, Any]]]:
    """The loop every score goes through: ``measure`` maps a batch of frames x (B, T, 1, H, W) in [0, 1]
    (the first ``frames`` of each video, or all) to ``{name: (B, T') values}``; returns the number of
    sequences and, per name, the mean over sequences at every timestep and over all of them:
    ``{name: {"mean": float, "per_timestep": [float, ...]}}``."""
    sums: dict[str, torch.Tensor] = {}
    count = 0
    for start in range(0, len(videos), batch_size):
        x = to_frames(torch.from_numpy(np.array(videos[start:start + batch_size, :frames])).to(device))
        for name, value in measure(x).items():
            per_t = value.double().sum(0).cpu()  # (T',)
            sums[name] = sums[name] + per_t if name in sums else per_t
        count += x.shape[0]
        if progress:
            print(f"\revaluating {min(start + batch_size, len(videos))}/{len(videos)}", end="", flush=True)
    if progress:
        print()
    means = {}
    for name, total in sums.items():
        per_t = (total / count).tolist()
        means[name] = {"mean": float(np.mean(per_t)), "per_timestep": per_t}
    return count, means


@torch.inference_mode()
def latent_drift(model: LatentVideoModel, videos: np.ndarray, context: int = 10, horizon: int = 10,
                 batch_size: int = 64, device: str | torch.device = "cpu") -> dict[str, Any]:
    """How far a rollout drifts in latent space: per predicted step k = 1 ... horizon, averaged over
    sequences, the Euclidean distances (over the d numbers of a latent)

    - ``model``: ||z^_{C+k} - E(x_{C+k})||, the rolled-out latent from the encoding of the true frame;
    - ``repeat``: ||z_C - z_{C+k}||, the last context latent kept (no motion);
    - ``linear``: ||z_C + k (z_C - z_{C-1}) - z_{C+k}||, the last step of the context repeated k times
      (a straight line);
    - ``step``: ||z_{C+k} - z_{C+k-1}||, how far the true latents move in one step;

    and the norms ||z^_{C+k}|| (``norm``) and ||z_{C+k}|| (``truth_norm``). Latents are not frames: two
    latents far apart may decode alike, so these say where a rollout leaves the encodings of real frames,
    not how its frames score. Returns ``{"context", "horizon", "num_sequences", "latent": {name:
    {"mean", "per_timestep"}}}``."""
    if context < 2 or horizon < 1:
        raise MatapError(f"the latent drift needs context >= 2 and horizon >= 1; got context={context}, "
                         f"horizon={horizon}")
    if videos.shape[1] < context + horizon:
        raise MatapError(f"the videos have {videos.shape[1]} frames but context ({context}) + horizon "
                         f"({horizon}) = {context + horizon} are needed; lower context or horizon, or "
                         "give longer videos")
    model = fold_batchnorm(model.to(device))
    steps = torch.arange(1, horizon + 1, device=device).view(1, horizon, 1)   # (1, H, 1)

    def distances(x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = model.encode(x).float()                                             # (B, C + H, d)
        rolled = model.rollout_steps(z[:, :context], horizon)[0].float()  # (B, H, d)
        truth, last = z[:, context:], z[:, context - 1:context]
        line = last + steps * (last - z[:, context - 2:context - 1])
        return {"model": (rolled - truth).norm(dim=-1), "repeat": (last - truth).norm(dim=-1),
                "linear": (line - truth).norm(dim=-1), "step": (truth - z[:, context - 1:-1]).norm(dim=-1),
                "norm": rolled.norm(dim=-1), "truth_norm": truth.norm(dim=-1)}     # each (B, H)

    count, latent = per_timestep_means(videos, distances, batch_size, device, frames=context + horizon)
    return {"context": context, "horizon": horizon, "num_sequences": count, "latent": latent}


def format_latent_drift(drift: dict[str, Any]) -> str:
    """The table of :func:`latent_drift`: one row per predicted step."""
    latent = drift["latent"]
    lines = [f"latent drift: distance from the encoding of the true frame, over {drift['num_sequences']} sequences",
             f"{'step':>4} {'model':>9} {'repeat':>9} {'linear':>9} {'true step':>10} {'|model|':>9} {'|truth|':>9}"]
    for k in range(drift["horizon"]):
        row = [latent[name]["per_timestep"][k] for name in ("model", "repeat", "linear", "step", "norm", "truth_norm")]
        lines.append(f"{k + 1:>4} {row[0]:>9.3f} {row[1]:>9.3f} {row[2]:>9.3f} {row[3]:>10.3f} {row[4]:>9.3f} {row[5]:>9.3f}")
    lines.append("repeat: the last context latent kept; linear: the context's last step repeated; "
                 "true step: how far the true latents move per frame")
    return "\n".join(lines)


METRIC_LABELS = {
    "bce": "BCE (per pixel)",
    "mse": "MSE (per frame, sum over pixels)",
    "mse_px": "MSE (per pixel)",
    "mae": "MAE (per frame, sum over pixels)",
    "mae_px": "MAE (per pixel)",
    "ssim": "SSIM (tf.image.ssim)",
    "ssim_empty": "  of it, from empty windows",
    "ssim_digits": "  of it, from windows not empty (digits)",
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
