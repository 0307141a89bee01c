"""One fresh Python process per model: the peak RSS (a per-process high-water mark) and the
allocator's state then belong to that model alone, not to the models measured before it.

The parent sends the request as JSON on stdin; the child prints its result as the last line
of stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from matap.errors import MatapError

_CHILD = "import sys; from matap.bench.isolation import child_main; sys.exit(child_main())"


def device_of(settings: dict[str, Any]) -> Any:
    """The torch device of ``--device``, checked."""
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


def set_allocator(settings: dict[str, Any]) -> None:
    """Apply ``--allocator`` to this process; record what took effect (``glibc-keep`` or ``system``)."""
    from matap.runtime import allocator, keep_cap_mb, keep_freed_memory

    if settings["allocator"] == "keep":
        keep_freed_memory()
    settings["allocator_in_effect"] = allocator()
    settings["keep_cap_mb"] = keep_cap_mb()


def bench_in_child(name: str, batch_path: str, settings: dict[str, Any], ceilings: dict[str, float]
                   ) -> dict[str, Any]:
    """:func:`matap.bench.measure.bench_model` of ``name`` in a fresh interpreter, on the batch saved
    at ``batch_path``."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])  # the folder holding the matap package
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    request = json.dumps({"name": name, "batch_path": batch_path, "settings": settings, "ceilings": ceilings})
    proc = subprocess.run([sys.executable, "-c", _CHILD], input=request, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise MatapError(f"benchmarking {name} failed (exit status {proc.returncode}):\n{tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child_main() -> int:
    """The child's side of :func:`bench_in_child`."""
    import numpy as np
    import torch

    from matap.bench.measure import bench_model

    request = json.loads(sys.stdin.read())
    settings = request["settings"]
    set_allocator(settings)
    device = device_of(settings)
    batch = torch.from_numpy(np.load(request["batch_path"])).to(device)
    print(json.dumps(bench_model(request["name"], batch, settings, device, request["ceilings"])))
    return 0


__all__ = ["bench_in_child", "child_main", "device_of", "set_allocator"]
