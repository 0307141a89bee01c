"""What machine a measurement ran on (for the benchmark's header and every experiment report), and the
matmul timing behind the benchmark's ceilings and `auto` precision's choice of bf16."""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def describe() -> dict[str, Any]:
    """CPU model, cores, torch threads, torch and Python versions."""
    import torch

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version()}


def bf16_native(device_type: str = "cpu") -> bool:
    """Whether the hardware computes bf16 natively: a CUDA GPU that supports it, or a CPU with
    AVX-512 BF16 or AMX (as oneDNN reports). Elsewhere bf16 is emulated and slower than fp32."""
    import torch

    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type != "cpu":
        return False
    try:
        return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a private oneDNN query: absent from some builds
        return False


def device_sync(device: Any) -> None:
    """Wait for ``device``'s queued work (a CUDA device; nothing elsewhere)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def precision_context(device: Any, precision: str) -> Any:
    """bf16 autocast on ``device`` for ``precision`` "bf16"; nothing for "fp32"."""
    import contextlib

    import torch

    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def median_seconds(fn: Callable[[], Any], warmup: int, repeats: int, device: Any) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    device_sync(device)
    times = []
    for _ in range(repeats):
        device_sync(device)
        start = time.perf_counter()
        fn()
        device_sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_gflops(size: int, device: Any, repeats: int = 10, warmup: int = 3, precision: str = "fp32") -> float:
    """Measured GFLOP/s of a (size x size) @ (size x size) matmul in ``precision`` (fp32 or bf16): the
    median of ``repeats`` after ``warmup`` (single products vary by +-15% on a shared 2-core machine)."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device, dtype)
    b = torch.randn(size, size, generator=gen).to(device, dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    seconds = median_seconds(lambda: torch.mm(a, b, out=out), warmup, repeats, device)
    return 2.0 * size ** 3 / seconds / 1e9


# bf16 must beat fp32 matmuls by this factor before ``auto`` trains in it: where AMX or AMD's
# AVX-512 BF16 units compute it, bf16 runs 2.7-4.3x fp32; an Intel CPU with AVX-512 BF16 and no
# AMX ran it at 0.6-1.0x, and trained 1.2-1.8x slower in bf16 than in fp32.
BF16_GAIN = 1.3
_MEASURE = {"size": 1024, "repeats": 7, "warmup": 2}


def bf16_cache_path() -> Path:
    """Where the measured bf16 decision of this machine is kept: ``bf16.json`` in matap's cache
    (``$MATAP_CACHE``, else ``~/.cache/matap``), beside the generated datasets."""
    return Path(os.environ.get("MATAP_CACHE", Path.home() / ".cache" / "matap")) / "bf16.json"


def _cpu_flags() -> str:
    """A digest of the CPU's feature flags (/proc/cpuinfo): virtual CPUs share one model name
    ("Intel(R) Xeon(R) Processor") across generations that compute bf16 at different speeds."""
    import hashlib

    try:
        flags = next((line.split(":", 1)[1] for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.lower().startswith("flags")), "")
    except OSError:
        flags = ""
    return hashlib.sha256(" ".join(sorted(flags.split())).encode()).hexdigest()[:12]


def _machine_key() -> str:
    import torch

    return f"{cpu_model()} | flags {_cpu_flags()} | {os.cpu_count()} cores | torch {torch.__version__}"


def measure_bf16_gain() -> dict[str, float]:
    """fp32 and bf16 matmul GFLOP/s on this CPU, measured now (about a second)."""
    import torch

    cpu = torch.device("cpu")
    return {precision: matmul_gflops(_MEASURE["size"], cpu, _MEASURE["repeats"], _MEASURE["warmup"], precision)
            for precision in ("fp32", "bf16")}


def bf16_pays(device_type: str = "cpu") -> bool:
    """Whether ``auto`` precision should run bf16 here. A GPU: where it supports bf16. A CPU: where
    oneDNN computes bf16 natively *and* bf16 matmuls run at least ``BF16_GAIN`` x fp32 ones, as
    measured once per machine (CPU model and flags, cores, torch version) and kept in :func:`bf16_cache_path`,
    so every run on the machine decides alike. Native bf16 is not always faster: without AMX, some
    CPUs compute it at fp32's speed or below."""
    if device_type != "cpu" or not bf16_native("cpu"):
        return bf16_native(device_type)
    import json

    from matap.atomic import atomic_write

    path, key = bf16_cache_path(), _machine_key()
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    entry = known.get(key) if isinstance(known, dict) else None
    if not (isinstance(entry, dict) and isinstance(entry.get("bf16_pays"), bool)):
        gflops = measure_bf16_gain()
        entry = {**gflops, "bf16_pays": gflops["bf16"] >= BF16_GAIN * gflops["fp32"]}
        try:
            atomic_write(path, json.dumps({**(known if isinstance(known, dict) else {}), key: entry}, indent=1))
        except OSError:
            pass   # an unwritable cache: measured again next time
    return entry["bf16_pays"]


__all__ = ["BF16_GAIN", "bf16_cache_path", "bf16_native", "bf16_pays", "cpu_model", "describe", "device_sync",
           "matmul_gflops", "measure_bf16_gain", "median_seconds", "precision_context"]
