"""Trivial predictions that every prediction score is shown beside.

On Moving MNIST most pixels are black, so predicting nothing already scores
well: a model's score means something only next to these, computed on the same
sequences with the same metrics.

- ``black``: every predicted frame is all zeros;
- ``last_frame``: the last context frame, repeated;
- ``mean_frame``: the per-pixel mean of the training set's frames, one fixed
  frame for every input.

torch loads inside the functions that need it, so that the experiment reports
can use the labels and comparisons without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from matap.errors import MatapError

if TYPE_CHECKING:
    import torch

    from matap.config import Config

BASELINES = ("black", "last_frame", "mean_frame")
RECONSTRUCTION_BASELINES = ("black", "mean_frame")  # the ones that need no context: every frame predicted alike
EVERY_FRAME_PROTOCOLS = ("reconstruct", "autoencode")  # every frame is a target: scored beside those baselines
LABELS = {"black": "black frames", "last_frame": "last frame", "mean_frame": "mean frame"}
MEAN_FRAME_SEQUENCES = 1000  # training sequences averaged into the mean frame (the first ones)
# Every other metric of FRAME_METRICS is an error: lower is better.
HIGHER_IS_BETTER = ("ssim", "ssim_empty", "ssim_digits", "psnr")
VERDICT_METRICS = {"ssim": ("SSIM", 3), "mse": ("MSE", 1)}  # metric -> (name, decimals) in verdicts


def _black(context_frames: torch.Tensor, mean_frame: torch.Tensor) -> torch.Tensor:
    return context_frames.new_zeros(context_frames[:, -1:].shape)  # (B, 1, 1, H, W)


def _last_frame(context_frames: torch.Tensor, mean_frame: torch.Tensor) -> torch.Tensor:
    return context_frames[:, -1:]  # (B, 1, 1, H, W)


def _mean_frame(context_frames: torch.Tensor, mean_frame: torch.Tensor) -> torch.Tensor:
    B = context_frames.shape[0]
    return mean_frame.to(context_frames).expand(B, 1, 1, *mean_frame.shape)  # (B, 1, 1, H, W)


_ONE_FRAME: dict[str, Callable[[Any, Any], Any]] = {"black": _black, "last_frame": _last_frame,
                                                    "mean_frame": _mean_frame}


def predict_frames(name: str, context_frames: torch.Tensor, horizon: int, mean_frame: np.ndarray | torch.Tensor
                   ) -> torch.Tensor:
    """Baseline ``name``'s prediction of the ``horizon`` frames that follow ``context_frames``.

    context_frames (B, C, 1, H, W) in [0, 1]; mean_frame (H, W) in [0, 1] -> (B, horizon, 1, H, W),
    the same frame at every step.
    """
    import torch

    if name not in _ONE_FRAME:
        raise MatapError(f"unknown baseline {name!r} (known: {', '.join(BASELINES)})")
    if context_frames.dim() != 5 or context_frames.shape[1] < 1 or context_frames.shape[2] != 1:
        raise MatapError(f"context frames must be (B, C >= 1, 1, H, W); got {tuple(context_frames.shape)}")
    mean_frame = torch.as_tensor(mean_frame)
    if tuple(mean_frame.shape) != tuple(context_frames.shape[-2:]):
        raise MatapError(f"the mean frame is {tuple(mean_frame.shape)}, the frames "
                         f"{tuple(context_frames.shape[-2:])}")
    frame = _ONE_FRAME[name](context_frames, mean_frame)  # (B, 1, 1, H, W)
    return frame.expand(-1, horizon, -1, -1, -1)  # (B, horizon, 1, H, W)


def mean_training_frame(cfg: Config, max_sequences: int = MEAN_FRAME_SEQUENCES, chunk: int = 100) -> np.ndarray:
    """Per-pixel mean, in [0, 1], over every frame of the first ``max_sequences`` training
    sequences of ``cfg`` (its generated or given training split): float64 (64, 64)."""
    from matap.data import load_split

    videos = load_split(cfg.data, "train")  # uint8 (N, T, 64, 64), memory-mapped
    count = min(len(videos), max_sequences)
    total = np.zeros(videos.shape[2:], dtype=np.float64)  # (64, 64)
    for start in range(0, count, chunk):  # chunks bound the memory a large split takes
        total += np.asarray(videos[start:min(start + chunk, count)]).sum(axis=(0, 1), dtype=np.float64)
    return total / (count * videos.shape[1] * 255)


def evaluate_baselines(videos: np.ndarray, mean_frame: np.ndarray, protocol: str = "predict", context: int = 10,
                       horizon: int = 10, batch_size: int = 64, device: Any = "cpu", uint8: bool = False
                       ) -> dict[str, dict[str, Any]]:
    """Every baseline scored on uint8 videos (N, T, 64, 64) as :func:`matap.evaluation.evaluate` scores
    a model under ``protocol``: baseline name -> a result of evaluate's layout.

    "predict" and "rollout": every baseline, on the ``horizon`` frames after ``context``.
    "reconstruct" (the paper's protocol) and "autoencode" (every frame is a target): all-black frames and
    the mean frame, the same frame for every input, as a model is scored under them. ``uint8``: each
    prediction as it reads back from a uint8 image, as :func:`matap.evaluation.evaluate` takes it."""
    from matap.evaluation import score
    from matap.registry import PROTOCOLS

    if protocol in EVERY_FRAME_PROTOCOLS:
        def every_frame(name: str) -> Callable[[Any], tuple[Any, Any]]:
            return lambda x: (predict_frames(name, x[:, :1], x.shape[1], mean_frame), x)  # (B, T, 1, H, W) each

        return {name: score(videos, every_frame(name), protocol, batch_size=batch_size, device=device, uint8=uint8)
                for name in RECONSTRUCTION_BASELINES}
    def rolled_out_frames(name: str) -> bool:
        return PROTOCOLS.get(name).future and PROTOCOLS.get(name).frame_baselines

    if protocol not in PROTOCOLS or not rolled_out_frames(protocol):
        future = ", ".join(name for name in PROTOCOLS if rolled_out_frames(name))
        raise MatapError(f"baselines: protocol {future}, {' or '.join(EVERY_FRAME_PROTOCOLS)}, not {protocol!r}")

    def scorer(name: str) -> Callable[[Any], tuple[Any, Any]]:
        # x (B, T, 1, H, W) -> (prediction, target), both (B, horizon, 1, H, W)
        return lambda x: (predict_frames(name, x[:, :context], horizon, mean_frame), x[:, context:context + horizon])

    return {name: score(videos, scorer(name), protocol, context, horizon, batch_size, device, uint8=uint8)
            for name in BASELINES}


def beats(model: float, baseline: float, metric: str) -> bool:
    """Whether the model's ``metric`` value is strictly better than the baseline's."""
    return model > baseline if metric in HIGHER_IS_BETTER else model < baseline


def verdict(metric: str, model: float, baseline: float, per_seed: Sequence[float] | None = None) -> str:
    """'SSIM yes (0.801 > 0.720)': does ``model`` beat ``baseline`` on ``metric``; with ``per_seed``,
    also on how many seeds ('; 2 of 3 seeds')."""
    name, digits = VERDICT_METRICS[metric]
    sign = ">" if model > baseline else "<" if model < baseline else "="
    seeds = ""
    if per_seed is not None:
        seeds = f"; {sum(beats(v, baseline, metric) for v in per_seed)} of {len(per_seed)} seeds"
    return (f"{name} {'yes' if beats(model, baseline, metric) else 'no'} "
            f"({model:.{digits}f} {sign} {baseline:.{digits}f}{seeds})")


def verdicts(model: Mapping[str, float], baseline: Mapping[str, float],
             per_seed: Mapping[str, Sequence[float]] | None = None) -> str:
    """'SSIM yes (0.801 > 0.720), MSE no (180.2 > 174.1)' from metric -> mean of model and baseline."""
    return ", ".join(verdict(m, model[m], baseline[m], None if per_seed is None else per_seed[m])
                     for m in VERDICT_METRICS)


def worse_than_black(model: Mapping[str, float], black: Mapping[str, float]) -> str:
    """The label of a model that does not beat all-black frames on SSIM or on MSE (metric -> mean):
    'worse than black frames' (on both), 'worse than black frames on SSIM' (one), or '' (neither)."""
    worse = [VERDICT_METRICS[m][0] for m in VERDICT_METRICS if not beats(model[m], black[m], m)]
    if not worse:
        return ""
    return "worse than black frames" + ("" if len(worse) == len(VERDICT_METRICS) else f" on {' and '.join(worse)}")


def means(metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """metric -> mean, from a result's "metrics" (metric -> {"mean", "per_timestep"})."""
    return {name: value["mean"] for name, value in metrics.items()}


def format_comparison(result: Mapping[str, Any]) -> str:
    """A plain-text table of the model beside the baselines (mean SSIM, MSE per frame, PSNR, BCE;
    SSIM and MSE at the first and last predicted frame), then one line per baseline saying
    whether the model beats it; ``result`` holds "metrics" and "baselines" as evaluate's JSON."""
    steps = len(result["metrics"]["ssim"]["per_timestep"])
    model = means(result["metrics"])
    label = worse_than_black(model, means(result["baselines"]["black"]))
    rows = [("model" + (f" ({label})" if label else ""), result["metrics"])]
    rows += [(LABELS[name], result["baselines"][name]) for name in BASELINES]
    width = max(len(row[0]) for row in rows) + 2
    columns = ["SSIM", "MSE", "PSNR", "BCE", "SSIM t=1", f"SSIM t={steps}", "MSE t=1", f"MSE t={steps}"]
    lines = ["against trivial predictions on the same sequences (MSE per frame, PSNR in dB):",
             f"{'':<{width}}" + "".join(f"{c:>11}" for c in columns)]
    for name, m in rows:
        ssim, mse = m["ssim"]["per_timestep"], m["mse"]["per_timestep"]
        cells = [f"{m['ssim']['mean']:.4f}", f"{m['mse']['mean']:.1f}", f"{m['psnr']['mean']:.2f}",
                 f"{m['bce']['mean']:.4f}", f"{ssim[0]:.4f}", f"{ssim[-1]:.4f}", f"{mse[0]:.1f}", f"{mse[-1]:.1f}"]
        lines.append(f"{name:<{width}}" + "".join(f"{c:>11}" for c in cells))
    lines += [f"beats {LABELS[name]}: {verdicts(model, means(result['baselines'][name]))}" for name in BASELINES]
    if all("ssim_empty" in m for _, m in rows):  # results written before the split lack it
        lines.append("SSIM split by window: from windows where the truth is empty (black frames get all of this part)"
                     " + from windows not empty (digits):")
        lines += [f"  {name.split(' (')[0]:<{width}}{m['ssim_empty']['mean']:.4f} + {m['ssim_digits']['mean']:.4f}"
                  for name, m in rows]
    return "\n".join(lines)


def format_reconstruction(result: Mapping[str, Any]) -> str:
    """A plain-text table of the model beside constant reconstructions of every frame (the paper's
    protocol): mean BCE and SSIM; ``result`` holds "metrics" and "baselines" as evaluate's JSON."""
    rows = [("model", result["metrics"])] + [(LABELS[name], result["baselines"][name])
                                             for name in RECONSTRUCTION_BASELINES]
    lines = ["against constant predictions of every frame, on the same sequences:",
             f"{'':<14}{'BCE':>10}{'SSIM':>10}"]
    lines += [f"{name:<14}{m['bce']['mean']:>10.4f}{m['ssim']['mean']:>10.4f}" for name, m in rows]
    lines.append("the mean frame is the same frame for every input: a model scoring at its level shows no use of "
                 "its input")
    return "\n".join(lines)


__all__ = ["BASELINES", "EVERY_FRAME_PROTOCOLS", "LABELS", "RECONSTRUCTION_BASELINES", "beats", "evaluate_baselines",
           "format_comparison", "format_reconstruction", "mean_training_frame", "means", "predict_frames", "verdict",
           "verdicts", "worse_than_black"]
