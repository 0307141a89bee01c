"""``matap bench``: throughput and memory of the models on this machine.

For every model (at the paper's configuration) it times, on batches of
``--batch-size`` sequences x 20 frames of 64x64:

- a full training step as the trainer runs it (uint8 batch -> frames, loss of
  the objective, backward, gradient clipping at norm 1, Adam step, zero_grad);
- teacher-forced inference (the ``reconstruct`` evaluation);
- a latent rollout of 90 frames from 10 context frames;
- the data pipeline (``make_loader`` over uint8 videos + ``to_frames``);

and reports peak resident memory, a measured fp32 matmul ceiling, each
throughput as a fraction of that ceiling from the model's FLOPs per frame, the
share of the training step's CPU time spent in the kernel, and (``--profile N``)
the N operators that took the most time in the training step.

Only ``argparse``/``json``-level imports happen at module import time, so that
``matap --help`` stays fast; torch is imported inside the functions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

from matap.errors import MatapError

SEQ_LEN = 20          # frames per training / inference sequence
ROLLOUT_CONTEXT = 10  # rollout: context frames in ...
ROLLOUT_HORIZON = 90  # ... predicted frames out
DATA_SEQUENCES = 256  # sequences in the array the data pipeline iterates over
TRAIN_FLOPS_FACTOR = 3.0  # training step ~ forward + backward (2x forward)
PROFILE_STEPS = 2     # training steps recorded by --profile

DEFAULTS = {"batch_size": 32, "repeats": 5, "warmup": 2, "matmul_size": 2048}
QUICK = {"batch_size": 4, "repeats": 2, "warmup": 1, "matmul_size": 1024}

RESULT_KEYS = ("train_frames_per_s", "infer_frames_per_s", "rollout_frames_per_s", "data_frames_per_s",
               "peak_rss_mb", "matmul_gflops", "train_fraction_of_ceiling", "infer_fraction_of_ceiling",
               "train_flops_per_frame", "infer_flops_per_frame")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``matap bench``."""
    parser.add_argument("--models", nargs="+", default=["matap", "gru"], metavar="NAME",
                        help="models to measure, at the paper's configuration (default: matap gru)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"sequences of {SEQ_LEN} frames per batch (default: {DEFAULTS['batch_size']})")
    parser.add_argument("--repeats", type=int, default=None,
                        help=f"timed steps; the median is reported (default: {DEFAULTS['repeats']})")
    parser.add_argument("--warmup", type=int, default=None,
                        help=f"untimed steps before timing (default: {DEFAULTS['warmup']})")
    parser.add_argument("--objective", default="paper", choices=("paper", "predict"),
                        help="training objective of the timed training step (default: paper)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1 (default: cpu)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"),
                        help="fp32, or bf16 autocast for training and inference (default: fp32)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                        help="convert the model to channels_last as training does (default: on)")
    parser.add_argument("--fold-bn", action=argparse.BooleanOptionalAction, default=True,
                        help="fold BatchNorm into the convolutions for inference and rollout, as "
                             "'matap evaluate' does (default: on)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the encoder, cell, predictor and decoder (default: off)")
    parser.add_argument("--allocator", default="keep", choices=("keep", "system"),
                        help="keep: glibc keeps freed memory for the next step, as the other matap commands "
                             "set it (matap.runtime); system: malloc as it is (default: keep)")
    parser.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=True,
                        help="measure each model in a fresh Python process, so that its peak RSS and allocator "
                             "state are its own (default: on)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also profile two training steps with torch.profiler and list the N operators "
                             "that took the most self time (default: 0, off)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and data (default: 0)")
    parser.add_argument("--json", metavar="FILE", help="also write the results to this JSON file")
    parser.add_argument("--quick", action="store_true",
                        help=f"tiny run: batch {QUICK['batch_size']}, repeats {QUICK['repeats']}, "
                             f"warmup {QUICK['warmup']} (options given explicitly still win)")


# ----------------------------------------------------------------------------- helpers


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    base = QUICK if getattr(args, "quick", False) else DEFAULTS
    batch = args.batch_size if args.batch_size is not None else base["batch_size"]
    repeats = args.repeats if args.repeats is not None else base["repeats"]
    warmup = args.warmup if args.warmup is not None else base["warmup"]
    if batch < 1 or repeats < 1 or warmup < 0:
        raise MatapError("--batch-size and --repeats must be >= 1 and --warmup >= 0")
    profile = getattr(args, "profile", 0) or 0
    if profile < 0:
        raise MatapError(f"--profile {profile}: give the number of operators to list (0 = off)")
    models = [name for item in args.models for name in item.split(",") if name]
    if not models:
        raise MatapError("--models: give at least one model name")
    return {
        "models": models, "batch_size": batch, "seq_len": SEQ_LEN, "repeats": repeats, "warmup": warmup,
        "objective": args.objective, "device": args.device, "precision": args.precision,
        "channels_last": bool(args.channels_last), "compile": bool(args.compile), "seed": args.seed,
        "fold_bn": bool(getattr(args, "fold_bn", True)), "profile": profile, "profile_steps": PROFILE_STEPS,
        "quick": bool(getattr(args, "quick", False)), "matmul_size": base["matmul_size"],
        "rollout_context": ROLLOUT_CONTEXT, "rollout_horizon": ROLLOUT_HORIZON,
        # A rollout step decodes batch x 90 frames (4.5x a training batch): fewer repeats keep the run short.
        "rollout_repeats": min(repeats, 3), "rollout_warmup": min(warmup, 1),
        "isolate": bool(getattr(args, "isolate", True)), "allocator": getattr(args, "allocator", "keep"),
        "data_sequences": max(DATA_SEQUENCES, batch),
        "data": "random_uint8" if getattr(args, "quick", False) else "moving_mnist",
        "train_flops_factor": TRAIN_FLOPS_FACTOR,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info(device: Any) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "cpu": _cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
    return info


def _cpu_counters() -> tuple[float, float, float] | None:
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


def _contention(start: tuple[float, float, float] | None, end: tuple[float, float, float] | None
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


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_seconds(fn: Callable[[], Any], warmup: int, repeats: int, device: Any) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _autocast(device: Any, precision: str):
    import contextlib

    import torch

    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def reconstruct(model: Any, x: Any) -> Any:
    """The ``reconstruct`` evaluation: teacher-forced, decoded predictor output, frames in [0, 1]."""
    import torch

    return torch.sigmoid(model.decode(model(x).z_next))


def matmul_gflops(size: int, device: Any, repeats: int = 10, warmup: int = 3) -> float:
    """Measured float32 GFLOP/s of a (size x size) @ (size x size) matmul: the median of ``repeats``
    after ``warmup`` (single products vary by +-15% on a shared 2-core machine)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device)
    b = torch.randn(size, size, generator=gen).to(device)
    out = torch.empty(size, size, device=device)
    seconds = _median_seconds(lambda: torch.mm(a, b, out=out), warmup, repeats, device)
    return 2.0 * size ** 3 / seconds / 1e9


def forward_flops_per_frame(model: Any, device: Any, sequences: int = 2) -> float:
    """FLOPs of one teacher-forced forward + decode (encoder, cell, predictor, decoder), per frame,
    counted by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(sequences, SEQ_LEN, 1, 64, 64, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            reconstruct(model, x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() / (sequences * SEQ_LEN)


def _videos(count: int, seed: int, digits: bool = True) -> tuple[Any, str]:
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
    from matap.data import make_loader
    from matap.training.module import to_frames

    loader = make_loader(videos, batch_size, shuffle=True, seed=seed)

    def epoch() -> None:
        for batch in loader:
            to_frames(batch.to(device, non_blocking=True))

    seconds = _median_seconds(epoch, max(1, warmup), max(3, repeats), device)
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


def _compile_in_place(model: Any) -> None:
    for part in (model.encoder, model.cell, model.predictor, model.decoder):
        part.compile()


# ----------------------------------------------------------------------------- measurement


def bench_model(name: str, batch: Any, settings: dict[str, Any], device: Any, ceiling_gflops: float
                ) -> dict[str, float]:
    """Measure one model on one uint8 (B, 20, 64, 64) batch already on ``device``."""
    import torch

    import matap
    from matap.config import ObjectiveConfig
    from matap.objectives import build_objective
    from matap.training.module import to_frames

    torch.manual_seed(settings["seed"])
    model = matap.build_model(name).to(device)
    if settings["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    infer_flops = forward_flops_per_frame(model, device)  # counted eagerly, before any compilation
    train_flops = TRAIN_FLOPS_FACTOR * infer_flops
    if settings["compile"]:
        _compile_in_place(model)
    objective = build_objective(ObjectiveConfig(name=settings["objective"]))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    precision, warmup, repeats = settings["precision"], settings["warmup"], settings["repeats"]
    B = batch.shape[0]

    def train_step() -> None:
        x = to_frames(batch)
        with _autocast(device, precision):
            loss = objective(model, x).loss
        if not torch.isfinite(loss):  # the training step checks this too (one sync per step)
            raise FloatingPointError(f"non-finite loss {loss.item()} while benchmarking {name}")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    model.train()
    cpu_before = os.times()
    train_s = _median_seconds(train_step, warmup, repeats, device)
    cpu_after = os.times()
    rss = peak_rss_mb()
    user_s, sys_s = cpu_after.user - cpu_before.user, cpu_after.system - cpu_before.system
    profile = profile_steps(train_step, settings["profile_steps"], settings["profile"], device) \
        if settings["profile"] else []

    model.eval()
    if settings["fold_bn"]:
        from matap.models.fuse import fold_batchnorm

        model = fold_batchnorm(model)
        if settings["compile"]:
            _compile_in_place(model)
    context = to_frames(batch[:, :ROLLOUT_CONTEXT])

    def infer() -> None:
        with torch.inference_mode(), _autocast(device, precision):
            reconstruct(model, to_frames(batch))

    def rollout() -> None:
        with torch.inference_mode(), _autocast(device, precision):
            model.rollout(context, ROLLOUT_HORIZON)

    infer_s = _median_seconds(infer, warmup, repeats, device)
    rollout_s = _median_seconds(rollout, settings["rollout_warmup"], settings["rollout_repeats"], device)
    rss_end = peak_rss_mb()

    train_fps = B * SEQ_LEN / train_s
    infer_fps = B * SEQ_LEN / infer_s
    return {
        "train_frames_per_s": train_fps,
        "infer_frames_per_s": infer_fps,
        "rollout_frames_per_s": B * ROLLOUT_HORIZON / rollout_s,
        "peak_rss_mb": rss,
        "peak_rss_end_mb": rss_end,
        "matmul_gflops": ceiling_gflops,
        "train_fraction_of_ceiling": train_fps * train_flops / (ceiling_gflops * 1e9),
        "infer_fraction_of_ceiling": infer_fps * infer_flops / (ceiling_gflops * 1e9),
        "train_flops_per_frame": train_flops,
        "infer_flops_per_frame": infer_flops,
        "train_kernel_cpu_share": sys_s / (user_s + sys_s) if user_s + sys_s > 0 else None,
        "train_profile": profile,
    }


def format_table(report: dict[str, Any]) -> str:
    m, s = report["machine"], report["settings"]
    device = m["device"] + (f" ({m['device_name']})" if "device_name" in m else "")
    lines = [
        f"machine  {m['cpu']}; {m['cores']} cores, torch threads {m['torch_threads']}; "
        f"torch {m['torch']}, python {m['python']}; device {device}",
        f"settings batch {s['batch_size']} x {s['seq_len']} frames of 64x64, objective {s['objective']}, "
        f"{s['precision']}, channels_last {'on' if s['channels_last'] else 'off'}, "
        f"compile {'on' if s['compile'] else 'off'}, BatchNorm folded for inference "
        f"{'on' if s.get('fold_bn', True) else 'off'}; median of {s['repeats']} after {s['warmup']} warm-up; "
        f"rollout {s['rollout_context']} -> {s['rollout_horizon']}; malloc {s.get('allocator_in_effect', 'system')}",
        f"ceiling  fp32 matmul {s['matmul_size']}x{s['matmul_size']}: {report['matmul_gflops']:.1f} GFLOP/s "
        f"(training FLOPs taken as {s['train_flops_factor']:g}x forward)",
    ]
    if m.get("bench_wall_s") is not None:
        line = f"run      {m['bench_wall_s']:.0f} s wall"
        if m.get("other_processes_cpu_s") is not None:
            line += (f"; CPU taken meanwhile by other processes {m['other_processes_cpu_s']:.0f} s, by the host "
                     f"{m['cpu_steal_s']:.0f} s, of {m['cores'] * m['bench_wall_s']:.0f} core-s (high = contended)")
        lines.append(line)
    if s["precision"] != "fp32":
        lines.append(f"note     {s['precision']} throughput against the fp32 ceiling: fractions may exceed 100%")
    lines.append("")
    cols = ("model", "train fr/s", "infer fr/s", "rollout fr/s", "data fr/s", "peak RSS MB",
            "train ceil", "infer ceil", "fwd MFLOP/fr", "kernel CPU")
    widths = (8, 11, 11, 13, 11, 12, 11, 11, 13, 11)
    lines.append("".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cols, widths))))
    for name, r in report["results"].items():
        cells = (name, f"{r['train_frames_per_s']:,.1f}", f"{r['infer_frames_per_s']:,.1f}",
                 f"{r['rollout_frames_per_s']:,.1f}", f"{r['data_frames_per_s']:,.0f}", f"{r['peak_rss_mb']:,.0f}",
                 f"{100 * r['train_fraction_of_ceiling']:.1f}%", f"{100 * r['infer_fraction_of_ceiling']:.1f}%",
                 f"{r['infer_flops_per_frame'] / 1e6:,.1f}", _percent(r.get("train_kernel_cpu_share")))
        lines.append("".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))))
    lines.append("kernel CPU: share of the training step's CPU time spent in the kernel (page faults, threads)")
    for name, r in report["results"].items():
        if r.get("train_profile"):
            unit = "device" if m["device"].startswith("cuda") else "CPU"
            lines += ["", f"profile  {name}: training step, top {len(r['train_profile'])} operators by self {unit} "
                          f"time (over {s.get('profile_steps', PROFILE_STEPS)} steps)",
                      f"{'operator':<44}{'ms/step':>10}{'share':>8}{'calls/step':>12}"]
            lines += [f"{row['op'][:43]:<44}{row['ms_per_step']:>10,.1f}{100 * row['share']:>7.1f}%"
                      f"{row['calls_per_step']:>12,.0f}" for row in r["train_profile"]]
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _device(settings: dict[str, Any]) -> Any:
    import torch

    try:
        device = torch.device(settings["device"])
    except RuntimeError as exc:
        raise MatapError(f"--device {settings['device']}: {exc}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise MatapError(f"--device {settings['device']}: CUDA is not available in this torch build / machine")
        torch.backends.cudnn.benchmark = True
    return device


_CHILD = "import sys; from matap.bench import _child_main; sys.exit(_child_main())"


def _bench_in_child(name: str, batch_path: str, settings: dict[str, Any], ceiling: float) -> dict[str, float]:
    """:func:`bench_model` in a fresh interpreter: the peak RSS (a per-process high-water mark) and the
    allocator's state then belong to this model alone, not to the models measured before it."""
    import subprocess

    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1])  # the folder holding the matap package
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    request = json.dumps({"name": name, "batch_path": batch_path, "settings": settings, "ceiling": ceiling})
    proc = subprocess.run([sys.executable, "-c", _CHILD], input=request, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise MatapError(f"benchmarking {name} failed (exit status {proc.returncode}):\n{tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _set_allocator(settings: dict[str, Any]) -> None:
    """Apply ``--allocator`` to this process; record what took effect (``glibc-keep`` or ``system``)."""
    from matap.runtime import allocator, keep_freed_memory

    if settings["allocator"] == "keep":
        keep_freed_memory()
    settings["allocator_in_effect"] = allocator()


def _child_main() -> int:
    import numpy as np
    import torch

    request = json.loads(sys.stdin.read())
    settings = request["settings"]
    _set_allocator(settings)
    device = _device(settings)
    batch = torch.from_numpy(np.load(request["batch_path"])).to(device)
    result = bench_model(request["name"], batch, settings, device, request["ceiling"])
    print(json.dumps(result))
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``matap bench``: print the table, write ``--json`` if given, return 0."""
    import tempfile

    import numpy as np
    import torch

    from matap.models import available_models

    settings = _settings(args)
    unknown = [name for name in settings["models"] if name not in available_models()]
    if unknown:
        raise MatapError(f"--models: unknown model(s) {', '.join(unknown)}; available: {', '.join(available_models())}")
    device = _device(settings)
    if settings["allocator"] == "system" and not settings["isolate"]:
        from matap.runtime import allocator

        if allocator() != "system":
            raise MatapError("--allocator system --no-isolate: this process already keeps freed memory; "
                             "drop --no-isolate")
    _set_allocator(settings)

    machine = machine_info(device)
    counters_start, wall_start = _cpu_counters(), time.perf_counter()
    ceiling = matmul_gflops(settings["matmul_size"], device)
    videos, settings["data"] = _videos(settings["data_sequences"], settings["seed"],
                                       digits=settings["data"] == "moving_mnist")
    data_fps = data_frames_per_s(videos, settings["batch_size"], device, settings["warmup"], settings["repeats"],
                                 settings["seed"])
    batch = np.ascontiguousarray(videos[: settings["batch_size"]])

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="matap-bench-") as tmp:
        batch_path = str(Path(tmp) / "batch.npy")
        np.save(batch_path, batch)
        for name in settings["models"]:
            if settings["isolate"]:
                result = _bench_in_child(name, batch_path, settings, ceiling)
            else:
                result = bench_model(name, torch.from_numpy(batch).to(device), settings, device, ceiling)
            result["data_frames_per_s"] = data_fps
            results[name] = {key: value if key == "train_profile" or value is None else float(value)
                             for key, value in result.items()}

    machine["bench_wall_s"] = time.perf_counter() - wall_start
    machine.update(_contention(counters_start, _cpu_counters()))
    report = {"machine": machine, "settings": settings, "matmul_gflops": ceiling, "results": results}
    print(format_table(report))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m matap.bench``: the same as ``matap bench`` until the CLI wires it in."""
    parser = argparse.ArgumentParser(prog="matap bench", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except MatapError as exc:
        print(f"matap bench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
