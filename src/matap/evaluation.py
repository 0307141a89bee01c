"""Evaluation protocols, each giving per-timestep metrics averaged over sequences.

A protocol is registered (``matap.registry.PROTOCOLS``) with its measure (for frames: the function that
turns a batch of frames into (prediction, target), scored by every frame metric) and a line saying what it
scores: ``reconstruct`` (the
paper's), ``autoencode``, ``predict`` (10 -> 10 is the standard benchmark) and ``rollout``; ``latent`` measures
a rollout in latent space instead (:func:`latent_distances`).

One loop (:func:`per_timestep_means`) serves every score: the model's under each protocol
(:func:`evaluate`), the ``latent`` protocol's distances among them, and the trivial baselines'
(``matap.baselines``: all-black frames, the last context frame, the mean training frame, :func:`score`),
so their numbers compare row by row.
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
Measure = Callable[[LatentVideoModel, torch.Tensor, int, int], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class Protocol:
    # (model, x (B, T, 1, H, W) in [0, 1], context, horizon) -> {name: (B, T') values}, the values averaged
    # per timestep over sequences
    measure: Measure
    scores: str      # what is scored against what, in a line
    future: bool     # predicts the ``horizon`` frames after ``context``
    horizon: int | None = None  # the horizon ``matap evaluate`` uses by default; None: the config's eval.horizon
    table: Callable[[dict[str, Any]], str] | None = None  # how a result prints; None: :func:`format_table`
    frame_baselines: bool = True  # the trivial frame predictions of matap.baselines are scored beside it
    frames: Frames | None = None  # a protocol that scores frames: (model, x, context, horizon) -> (prediction, target)

    def required_length(self, context: int, horizon: int) -> int:
        return context + horizon if self.future else 2


def frame_protocol(frames: Frames, scores: str, future: bool, horizon: int | None = None) -> Protocol:
    """A protocol that scores frames: every metric of ``matap.metrics.frame_scores`` of the (prediction,
    target) pair that ``frames`` gives, (B, T', 1, H, W) each, prediction in [0, 1]."""
    return Protocol(lambda model, x, context, h: frame_scores(*frames(model, x, context, h)), scores, future,
                    horizon, frames=frames)


def reconstruct(model: LatentVideoModel, x: torch.Tensor, context: int | None = None) -> torch.Tensor:
    """The teacher-forced output: the decoded predictor output at every step t, frames (B, T, 1, H, W) in [0, 1].
    A conditioned decoder reads the first ``context`` frames as the context (None: every frame of ``x``)."""
    return torch.sigmoid(model.decode(model(x).z_next, model.condition(x[:, :context]), 1))


def autoencode(model: LatentVideoModel, x: torch.Tensor, context: int | None = None) -> torch.Tensor:
    """decode(encode(x_t)) at every step t, frames (B, T, 1, H, W) in [0, 1]; ``context`` as for :func:`reconstruct`."""
    return torch.sigmoid(model.decode(model.encode(x), model.condition(x[:, :context])))


def _rolled_out(model: LatentVideoModel, x: torch.Tensor, context: int, horizon: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    return model.rollout(x[:, :context], horizon), x[:, context:context + horizon]


def latent_distances(model: LatentVideoModel, x: torch.Tensor, context: int, horizon: int) -> dict[str, torch.Tensor]:
    """How far a rollout drifts in latent space: per predicted step k = 1 ... horizon, the Euclidean
    distances (over the d numbers of a latent)

    - ``model``: ||z^_{C+k} - E(x_{C+k})||, the rolled-out latent from the encoding of the true frame;
    - ``repeat``: ||z_C - z_{C+k}||, the last context latent kept (no motion);
    - ``linear``: ||z_C + k (z_C - z_{C-1}) - z_{C+k}||, the last step of the context repeated k times
      (a straight line);
    - ``step``: ||z_{C+k} - z_{C+k-1}||, how far the true latents move in one step;

    and the norms ||z^_{C+k}|| (``norm``) and ||z_{C+k}|| (``truth_norm``), each (B, horizon). Latents are
    not frames: two latents far apart may decode alike, so these say where a rollout leaves the encodings
    of real frames, not how its frames score."""
    if context < 2:
        raise MatapError(f"the latent drift needs context >= 2 (its straight line extends the last step); "
                         f"got context={context}")
    z = model.encode(x[:, :context + horizon]).float()                  # (B, C + H, d)
    rolled = model.rollout_steps(z[:, :context], horizon, model.condition(x[:, :context]))[0].float()  # (B, H, d)
    truth, last = z[:, context:], z[:, context - 1:context]
    steps = torch.arange(1, horizon + 1, device=z.device).view(1, horizon, 1)   # (1, H, 1)
    line = last + steps * (last - z[:, context - 2:context - 1])
    return {"model": (rolled - truth).norm(dim=-1), "repeat": (last - truth).norm(dim=-1),
            "linear": (line - truth).norm(dim=-1), "step": (truth - z[:, context - 1:-1]).norm(dim=-1),
            "norm": rolled.norm(dim=-1), "truth_norm": truth.norm(dim=-1)}


def format_latent_drift(result: dict[str, Any]) -> str:
    """The table of a result of the ``latent`` protocol: one row per predicted step."""
    latent = result["metrics"]
    lines = [f"latent drift: distance from the encoding of the true frame, over {result['num_sequences']} sequences",
             f"{'step':>4} {'model':>9} {'repeat':>9} {'linear':>9} {'true step':>10} {'|model|':>9} {'|truth|':>9}"]
    for k in range(result["horizon"]):
        row = [latent[name]["per_timestep"][k] for name in ("model", "repeat", "linear", "step", "norm", "truth_norm")]
        lines.append(f"{k + 1:>4} {row[0]:>9.3f} {row[1]:>9.3f} {row[2]:>9.3f} {row[3]:>10.3f} {row[4]:>9.3f} {row[5]:>9.3f}")
    lines.append("repeat: the last context latent kept; linear: the context's last step repeated; "
                 "true step: how far the true latents move per frame")
    return "\n".join(lines)


PROTOCOLS.register("reconstruct")(frame_protocol(
    lambda model, x, context, horizon: (reconstruct(model, x, context), x),
    "the paper's: teacher-forced, the decoded predictor output at step t against frame t", future=False))
PROTOCOLS.register("autoencode")(frame_protocol(
    lambda model, x, context, horizon: (autoencode(model, x, context), x),
    "decode(encode(x_t)) against x_t: the spatial path alone", future=False))
PROTOCOLS.register("predict")(frame_protocol(
    _rolled_out, "context frames in, horizon frames rolled out (in latent space, or through the decoded frames "
    "with model.rollout_feedback=frame) against the true future (10 -> 10 by default)", future=True))
PROTOCOLS.register("rollout")(frame_protocol(
    _rolled_out, "as predict, for any horizon (90 by default), to show drift", future=True, horizon=90))
PROTOCOLS.register("latent")(Protocol(
    latent_distances, "as predict, in latent space: the rolled-out latents' distances from the encodings of the "
    "true frames, beside the last context latent kept and the context's last step repeated", future=True,
    table=format_latent_drift, frame_baselines=False))


def frames_for(model: LatentVideoModel, x: torch.Tensor, protocol: str, context: int, horizon: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(prediction in [0, 1], target), both (B, T', 1, H, W), for one batch of frames under a frame protocol."""
    frames = PROTOCOLS.get(protocol).frames
    if frames is None:
        raise MatapError(f"protocol {protocol} does not score frames")
    return frames(model, x, context, horizon)


def required_length(protocol: str, context: int, horizon: int) -> int:
    return PROTOCOLS.get(protocol).required_length(context, horizon)


def _checked(protocol: str, videos: np.ndarray, context: int, horizon: int) -> Protocol:
    """The registered ``protocol``, once ``videos`` are long enough for it."""
    if protocol not in PROTOCOLS:
        raise MatapError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}")
    p = PROTOCOLS.get(protocol)
    if p.future:
        if context < 1 or horizon < 1:
            raise MatapError(f"context ({context}) and horizon ({horizon}) must be >= 1")
        if videos.shape[1] < context + horizon:
            raise MatapError(f"the videos have {videos.shape[1]} frames but context ({context}) + horizon "
                             f"({horizon}) = {context + horizon} are needed; lower context or horizon, or "
                             "give longer videos")
    return p


def _result(protocol: str, future: bool, context: int, horizon: int, count: int,
            metrics: dict[str, Any], as_uint8: bool = False) -> dict[str, Any]:
    result = {"protocol": protocol, "num_sequences": count, "context": context if future else None,
              "horizon": horizon if future else None, "metrics": metrics}
    if as_uint8:
        result["predictions"] = "uint8"
    return result


def as_uint8(pred: torch.Tensor) -> torch.Tensor:
    """Predicted frames in [0, 1] as they read back from uint8 images (what ``matap predict`` writes): each
    pixel rounded to the nearest of 0, 1/255, ..., 1."""
    return pred.clamp(0, 1).mul(255).round().div(255)


def _scored_as_uint8(pair: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
    return frame_scores(as_uint8(pair[0]), pair[1])


@torch.inference_mode()
def evaluate(model: LatentVideoModel, videos: np.ndarray, protocol: str = "predict", context: int = 10,
             horizon: int = 10, batch_size: int = 64, device: str | torch.device = "cpu",
             progress: bool = False, uint8: bool = False) -> dict[str, Any]:
    """The scores of ``model`` on uint8 videos (N, T, 64, 64) under ``protocol`` (:data:`PROTOCOLS`).

    Returns ``{"protocol", "num_sequences", "context", "horizon", "metrics": {name:
    {"mean": float, "per_timestep": [float, ...]}}}``; the mean is over sequences
    and timesteps, per_timestep over sequences. ``uint8``: score the predicted frames as they read back
    from uint8 images (:func:`as_uint8`; the result then says ``"predictions": "uint8"``), not the floats.
    """
    p = _checked(protocol, videos, context, horizon)
    model = fold_batchnorm(model.to(device))  # same outputs as model.eval(), fewer layers
    frames = p.frames
    if uint8 and frames is None:
        raise MatapError(f"protocol {protocol} does not score frames, so it has no uint8 frames to score")

    def measure(x: torch.Tensor) -> dict[str, torch.Tensor]:
        if uint8:
            return _scored_as_uint8(frames(model, x, context, horizon))
        return p.measure(model, x, context, horizon)

    count, metrics = per_timestep_means(videos, measure, batch_size, device,
                                        frames=context + horizon if p.future else None, progress=progress)
    return _result(protocol, p.future, context, horizon, count, metrics, uint8)


@torch.inference_mode()
def score(videos: np.ndarray, predict: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
          protocol: str = "predict", context: int = 10, horizon: int = 10, batch_size: int = 64,
          device: str | torch.device = "cpu", progress: bool = False, uint8: bool = False) -> dict[str, Any]:
    """Frame predictions scored as a model is under a frame ``protocol`` (the trivial baselines,
    ``matap.baselines``): ``predict`` maps a batch of frames x (B, T, 1, H, W) in [0, 1] to (prediction,
    target), both (B, T', 1, H, W); every metric of ``frame_scores`` per timestep, averaged over
    sequences; ``uint8`` as for :func:`evaluate`. Returns the layout of :func:`evaluate`."""
    p = _checked(protocol, videos, context, horizon)
    scored = _scored_as_uint8 if uint8 else (lambda pair: frame_scores(*pair))
    count, metrics = per_timestep_means(videos, lambda x: scored(predict(x)), batch_size, device,
                                        progress=progress)
    return _result(protocol, p.future, context, horizon, count, metrics, uint8)


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
