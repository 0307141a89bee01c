"""``matap bench``: throughput and memory of the models on this machine.

For every model (at the paper's configuration) it times, on batches of
``--batch-size`` sequences x 20 frames of 64x64:

- the trainer's training step: the LightningModule of ``matap train`` with its
  objective and optimiser, gradient clipping at ``train.grad_clip``, all from
  the default training config (uint8 batch -> frames, loss, backward, clipping,
  optimiser step);
- teacher-forced inference (the ``reconstruct`` evaluation);
- a latent rollout of 90 frames from 10 context frames;
- the data pipeline (``make_loader`` over uint8 videos + ``to_frames``);

and reports peak resident memory, measured fp32 and bf16 matmul ceilings,
each throughput as a fraction of the ceiling of the precision it ran in (from
the model's FLOPs per frame), the
share of the training step's CPU time spent in the kernel, (``--profile N``)
the N operators that took the most time in the training step, and (``--layers``)
every convolution and linear layer timed alone, with about the fraction of
the ceiling the step could reach if nothing else took time.

``settings`` holds the options, ``measure`` the measurements, ``layers`` the
layers timed alone, ``isolation`` the fresh process per model, ``report`` the table. Importing the package does not
import torch, so that ``matap --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from matap.atomic import atomic_write
from matap.bench.isolation import bench_in_child, device_of, set_allocator
from matap.bench.report import format_table
from matap.bench.settings import add_arguments, resolve
from matap.errors import MatapError


def run(args: argparse.Namespace) -> int:
    """Run ``matap bench``: print the table, write ``--json`` if given, return 0."""
    import numpy as np
    import torch

    from matap.bench import measure
    from matap.machine import describe
    from matap.models import available_models

    settings = resolve(args)
    unknown = [name for name in settings["models"] if name not in available_models()]
    if unknown:
        raise MatapError(f"--models: unknown model(s) {', '.join(unknown)}; available: {', '.join(available_models())}")
    device = device_of(settings)
    if settings["allocator"] == "system" and not settings["isolate"]:
        from matap.runtime import allocator

        if allocator() != "system":
            raise MatapError("--allocator system --no-isolate: this process already keeps freed memory; "
                             "drop --no-isolate")
    set_allocator(settings)

    machine = {**describe(), "platform": platform.platform(), "device": str(device)}
    if device.type == "cuda":
        machine["device_name"] = torch.cuda.get_device_name(device)
    counters_start, wall_start = measure.cpu_counters(), time.perf_counter()
    ceilings = measure.ceilings(settings["matmul_size"], device)
    videos, settings["data"] = measure.videos(settings["data_sequences"], settings["seed"],
                                              digits=settings["data"] == "moving_mnist")
    data_fps = measure.data_frames_per_s(videos, settings["batch_size"], device, settings["warmup"],
                                         settings["repeats"], settings["seed"])
    batch = np.ascontiguousarray(videos[: settings["batch_size"]])

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="matap-bench-") as tmp:
        batch_path = str(Path(tmp) / "batch.npy")
        np.save(batch_path, batch)
        for name in settings["models"]:
            if settings["isolate"]:
                result = bench_in_child(name, batch_path, settings, ceilings)
            else:
                result = measure.bench_model(name, torch.from_numpy(batch).to(device), settings, device, ceilings)
            result["data_frames_per_s"] = data_fps
            results[name] = {key: float(value) if isinstance(value, (int, float)) else value
                             for key, value in result.items()}

    machine["bench_wall_s"] = time.perf_counter() - wall_start
    machine.update(measure.contention(counters_start, measure.cpu_counters()))
    report = {"machine": machine, "settings": settings, "matmul_gflops": ceilings["fp32"],
              "matmul_bf16_gflops": ceilings["bf16"], "results": results}
    print(format_table(report))
    if args.json:
        path = atomic_write(args.json, json.dumps(report, indent=1) + "\n")
        print(f"wrote {path}")
    return 0


__all__ = ["add_arguments", "run"]
