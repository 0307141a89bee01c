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


def epochs_to_reach(values: Sequence[float], threshold: float, below: bool) -> int | None:
    """First epoch (1-based) whose value is below (or above) ``threshold``; None if never."""
    for epoch, value in enumerate(values, 1):
        if (value < threshold) if below else (value > threshold):
            return epoch
    return None


def oscillation(values: Sequence[float]) -> float:
    """Mean absolute second difference |v[t+1] - 2 v[t] + v[t-1]|: zero for a straight or
    steadily curving trajectory, large when it goes up and down from epoch to epoch."""
    v = np.asarray(values, dtype=float)
    if v.size < 3:
        return float("nan")
    return float(np.abs(np.diff(v, n=2)).mean())


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
        return "n/a (one seed)"
    return f"[{fmt(s['ci'][0], digits)}, {fmt(s['ci'][1], digits)}]"


__all__ = ["FAILS", "HOLDS", "UNSURE", "epochs_to_reach", "fmt", "fmt_ci", "fmt_summary", "oscillation",
           "rolling_variance", "summary", "verdict"]
