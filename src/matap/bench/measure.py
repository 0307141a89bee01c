"""The measurements of ``matap bench``: timing, the matmul ceiling, FLOPs, CPU and memory counters,
and one model's training step, inference, rollout and profile.

torch is imported inside the functions, so that ``matap --help`` stays fast."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable

from matap.bench.settings import ROLLOUT_CONTEXT, ROLLOUT_HORIZON, SEQ_LEN, TRAIN_FLOPS_FACTOR
from matap.machine import device_sync as _sync
from matap.machine import matmul_gflops, median_seconds
from matap.machine import precision_context as _autocast


def cpu_counters() -> tuple[float, float, float] | None:
    """(busy CPU seconds of the whole machine, of which stolen by the host, this process and its
    finished children) from /proc/stat and getrusage; None where /proc/stat is missing."""
    import resource

    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    hz = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    own = sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                   resource.getrusage(resource.RUSAGE_CHILDREN)))
    return (user + nice + system + irq + softirq) / hz, steal / hz, own


def contention(start: tuple[float, float, float] | None, end: tuple[float, float, float] | None
               ) -> dict[str, float | None]:
    """CPU seconds that other processes on this machine, and other guests of its host, took while the
    benchmark ran: the figures are trustworthy when both are small next to cores x wall time."""
    if start is None or end is None:
        return {"other_processes_cpu_s": None, "cpu_steal_s": None}
    busy, steal, own = (e - s for s, e in zip(start, end))
    return {"other_processes_cpu_s": max(0.0, busy - own), "cpu_steal_s": steal}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (MiB)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def ceilings(size: int, device: Any) -> dict[str, float]:
    """The matmul GFLOP/s of both precisions, ``{"fp32": ..., "bf16": ...}``: each throughput is
    judged against the ceiling of the precision it ran in."""
    return {precision: matmul_gflops(size, device, precision=precision) for precision in ("fp32", "bf16")}


def forward_flops_per_frame(model: Any, device: Any, sequences: int = 2) -> float:
    """FLOPs of one teacher-forced forward + decode (encoder, cell, predictor, decoder), per frame,
    counted by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from matap.evaluation import reconstruct

    x = torch.rand(sequences, SEQ_LEN, 1, 64, 64, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            reconstruct(model, x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() / (sequences * SEQ_LEN)


def videos(count: int, seed: int, digits: bool = True) -> tuple[Any, str]:
    """(count, 20, 64, 64) uint8 Moving MNIST, or random bytes (``digits=False``, or if the digits cannot be
    loaded): the pipeline and the dense convolutions take the same time whatever the pixels.
    Returns the array and what it holds ("moving_mnist" or "random_uint8")."""
    import numpy as np

    if digits:
        try:
            from matap.data import generate
            from matap.data.digits import load_digits

            return generate(load_digits("mnist", "train"), seed, "train", range(count), SEQ_LEN), "moving_mnist"
        except Exception:  # noqa: BLE001 - fall back to random bytes
            pass
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(count, SEQ_LEN, 64, 64), dtype=np.uint8), "random_uint8"


def data_frames_per_s(videos: Any, batch_size: int, device: Any, warmup: int, repeats: int, seed: int) -> float:
    """Frames per second of one epoch of ``make_loader`` (shuffled) over ``videos`` + ``to_frames``."""
    from matap.data import make_loader, to_frames

    loader = make_loader(videos, batch_size, shuffle=True, seed=seed)

    def epoch() -> None:
        for batch in loader:
            to_frames(batch.to(device, non_blocking=True))

    seconds = median_seconds(epoch, max(1, warmup), max(3, repeats), device)
    return videos.shape[0] * videos.shape[1] / seconds


def profile_steps(step: Callable[[], Any], steps: int, top: int, device: Any) -> list[dict[str, Any]]:
    """Run ``step`` ``steps`` times under ``torch.profiler``; the ``top`` operators by self time (device
    time on a GPU, CPU time otherwise), per step, with their share of all operators' self time."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        _sync(device)
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = list(prof.key_averages())
    total = sum(getattr(e, attr) for e in events) or 1.0
    ranked = sorted(events, key=lambda e: getattr(e, attr), reverse=True)[:top]
    return [{"op": e.key, "ms_per_step": getattr(e, attr) / 1e3 / steps, "share": getattr(e, attr) / total,
             "calls_per_step": e.count / steps} for e in ranked]


def training_module(name: str, settings: dict[str, Any]) -> Any:
    """The trainer's LightningModule for model ``name`` and the ``--objective``, from the default
    training config (the paper's model; Adam, learning rate and clipping of ``train``)."""
    from matap.config import Config
    from matap.training.module import MatapModule

    cfg = Config()
    cfg.model.name, cfg.objective.name = name, settings["objective"]
    return MatapModule(cfg.to_dict())


def bench_model(name: str, batch: Any, settings: dict[str, Any], device: Any, ceilings_gflops: dict[str, float]
                ) -> dict[str, float]:
    """Measure one model on one uint8 (B, 20, 64, 64) batch already on ``device``."""
    import torch

    from matap.data import to_frames
    from matap.evaluation import reconstruct

    torch.manual_seed(settings["seed"])
    module = training_module(name, settings).to(device)  # its model is channels_last, as in training
    model = module.model
    if not settings["channels_last"]:
        model.to(memory_format=torch.contiguous_format)
    infer_flops = forward_flops_per_frame(model, device)  # counted eagerly, before any compilation
    train_flops = TRAIN_FLOPS_FACTOR * infer_flops
    if settings["compile"]:
        model.compile_parts()
    optimizer = module.optimizer()
    clip = module.cfg.train.grad_clip
    precision, warmup, repeats = settings["precision"], settings["warmup"], settings["repeats"]
    B = batch.shape[0]

    def train_step() -> None:
        # Lightning's automatic optimisation with the trainer of matap.training.run: zero the gradients,
        # the module's training loss (finite or FloatingPointError), backward, clip the gradient norm
        # to train.grad_clip (0: no clipping), step.
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, precision):
            loss = module.training_loss(to_frames(batch), progress=1.0).loss
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()

    module.train()
    cpu_before = os.times()
    train_s = median_seconds(train_step, warmup, repeats, device)
    cpu_after = os.times()
    rss = peak_rss_mb()
    from matap.runtime import trims

    trims_in_training = trims()
    user_s, sys_s = cpu_after.user - cpu_before.user, cpu_after.system - cpu_before.system
    profile = profile_steps(train_step, settings["profile_steps"], settings["profile"], device) \
        if settings["profile"] else []

    model.eval()
    if settings["fold_bn"]:
        from matap.models.fuse import fold_batchnorm

        model = fold_batchnorm(model)
    if settings["compile_inference"]:
        model.compile_parts()
    context = to_frames(batch[:, :ROLLOUT_CONTEXT])

    def infer() -> None:
        with torch.inference_mode(), _autocast(device, precision):
            reconstruct(model, to_frames(batch))

    def rollout() -> None:
        with torch.inference_mode(), _autocast(device, precision):
            model.rollout(context, ROLLOUT_HORIZON)

    infer_s = median_seconds(infer, warmup, repeats, device)
    rollout_s = median_seconds(rollout, settings["rollout_warmup"], settings["rollout_repeats"], device)
    rss_end = peak_rss_mb()
    layers = {}
    if settings.get("layers"):  # after the memory is read: the recording forward keeps its activations
        from matap.bench.layers import layer_bounds

        del model, module, optimizer
        frames = B * SEQ_LEN
        eager, train_calls, infer_calls = _layer_calls(name, batch, settings, device)
        layers = layer_bounds(eager, train_calls, infer_calls, device, precision, warmup, repeats,
                              ceilings_gflops[precision], train_flops * frames, infer_flops * frames)

    train_fps = B * SEQ_LEN / train_s
    infer_fps = B * SEQ_LEN / infer_s
    ceiling_gflops = ceilings_gflops[precision]  # the ceiling of the precision the model ran in
    return {
        "train_frames_per_s": train_fps,
        "infer_frames_per_s": infer_fps,
        "rollout_frames_per_s": B * ROLLOUT_HORIZON / rollout_s,
        "peak_rss_mb": rss,
        "peak_rss_end_mb": rss_end,
        "matmul_gflops": ceilings_gflops["fp32"],
        "matmul_bf16_gflops": ceilings_gflops["bf16"],
        "ceiling_gflops": ceiling_gflops,
        "train_fraction_of_ceiling": train_fps * train_flops / (ceiling_gflops * 1e9),
        "infer_fraction_of_ceiling": infer_fps * infer_flops / (ceiling_gflops * 1e9),
        "train_flops_per_frame": train_flops,
        "infer_flops_per_frame": infer_flops,
        "allocator_trims": trims_in_training,
        "train_kernel_cpu_share": sys_s / (user_s + sys_s) if user_s + sys_s > 0 else None,
        "train_profile": profile,
        **layers,
    }


def _layer_calls(name: str, batch: Any, settings: dict[str, Any], device: Any
                 ) -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]:
    """A fresh eager copy of the benchmarked model, the layer calls of one forward of its training
    loss on ``batch`` (run's precision, gradients on, so that each call's inputs say whether the
    step differentiates through them; every layer run as it is, none fused) and those of one
    teacher-forced inference (``reconstruct``, eval mode, ``inference_mode``)."""
    import torch

    from matap.bench.layers import record_calls
    from matap.data import to_frames
    from matap.modules.recompute import unfused

    torch.manual_seed(settings["seed"])
    module = training_module(name, settings).to(device)
    if not settings["channels_last"]:
        module.model.to(memory_format=torch.contiguous_format)
    frames = to_frames(batch)

    def train() -> None:
        module.train()
        with _autocast(device, settings["precision"]), unfused():
            module.training_loss(frames, progress=1.0)

    def infer() -> None:
        from matap.evaluation import reconstruct

        module.eval()
        with torch.inference_mode(), _autocast(device, settings["precision"]):
            reconstruct(module.model, frames)

    return module.model, record_calls(module.model, train), record_calls(module.model, infer)


__all__ = ["bench_model", "ceilings", "contention", "cpu_counters", "data_frames_per_s", "forward_flops_per_frame",
           "matmul_gflops", "median_seconds", "peak_rss_mb", "profile_steps", "training_module",
           "videos"]
