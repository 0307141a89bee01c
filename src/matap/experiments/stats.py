"""Small statistics for results over seeds: mean, spread, confidence intervals, verdicts."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

HOLDS, FAILS, UNSURE = "holds", "does not hold", "inconclusive"


def summary(values: Sequence[float], level: float = 0.95) -> dict[str, Any]:
    """Mean, sample standard deviation and a Student-t confidence interval of the mean.

    With one value (or a non-finite one) the spread and interval are None."""
    v = np.asarray(values, dtype=float)
    out: dict[str, Any] = {"values": [float(x) for x in v], "n": int(v.size),
                           "mean": float(v.mean()) if v.size else None, "std": None, "ci": None}
    if v.size >= 2 and np.all(np.isfinite(v)):
        from scipy import stats as sps  # deferred: scipy.stats takes about a second to import

        std = float(v.std(ddof=1))
        half = float(sps.t.ppf(0.5 + level / 2, v.size - 1)) * std / math.sqrt(v.size)
        out["std"] = std
        out["ci"] = [out["mean"] - half, out["mean"] + half]
    return out


def verdict(s: dict[str, Any], target: float) -> str:
    """The claim "the true mean exceeds ``target``": holds when the whole confidence
    interval lies above it, does not hold when the whole interval lies below it (or
    at it), inconclusive otherwise (including when there is no interval)."""
    if s["ci"] is None:
        return UNSURE
    lo, hi = s["ci"]
    if lo > target:
        return HOLDS
    if hi <= target:
        return FAILS
    return UNSURE


def rolling_variance(values: Sequence[float], window: int = 5) -> list[float]:
    """Sample variance of every run of ``window`` consecutive values (fewer values: one window)."""
    v = np.asarray(values, dtype=float)
    w = min(window, v.size)
    if w < 2:
        return [0.0]
    return [float(v[i:i + w].var(ddof=1)) for i in range(v.size - w + 1)]


def first_to_reach(values: Sequence[float], threshold: float, below: bool) -> int | None:
    """First position (1-based: an epoch of a training curve, a frame of a rollout) whose value is
    below (or above) ``threshold``; None if never."""
    for position, value in enumerate(values, 1):
        if (value < threshold) if below else (value > threshold):
            return position
    return None


def oscillation(values: Sequence[float]) -> float:
    """Share of consecutive epoch-to-epoch changes that reverse direction: 0 for a curve
    that only rises (or only falls), however fast it learns; 1 for one that goes up and
    down every epoch. NaN with fewer than 3 values."""
    v = np.asarray(values, dtype=float)
    if v.size < 3:
        return float("nan")
    steps = np.sign(np.diff(v))
    return float(np.mean(steps[1:] * steps[:-1] < 0))


def fmt_g(value: float | None, unit: str = "") -> str:
    """Four significant digits, or n/a."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.4g}{unit}"


def finite_or_none(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by None, so that it is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    return obj


def fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def fmt_summary(s: dict[str, Any], digits: int = 4) -> str:
    """'mean ± std' (or the mean alone for one seed)."""
    if s["std"] is None:
        return fmt(s["mean"], digits)
    return f"{fmt(s['mean'], digits)} ± {fmt(s['std'], digits)}"


def fmt_ci(s: dict[str, Any], digits: int = 4) -> str:
    if s["ci"] is None:
        return "n/a (one seed)" if s["n"] < 2 else "n/a"
    return f"[{fmt(s['ci'][0], digits)}, {fmt(s['ci'][1], digits)}]"


__all__ = ["FAILS", "HOLDS", "UNSURE", "first_to_reach", "finite_or_none", "fmt", "fmt_ci", "fmt_g", "fmt_summary", "oscillation",
           "rolling_variance", "summary", "verdict"]
