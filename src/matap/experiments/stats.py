"""Small statistics for results over seeds: mean, spread, confidence intervals, verdicts.

Intervals: Student t for means over seeds (:func:`summary`, optionally clipped to
the range the quantity can take), Clopper-Pearson for shares of epochs
(:func:`share_summary`). Each verdict compares a two-sided 95% interval with the
claim's target; :func:`holm` corrects the matching p-values for the number of
claims judged together.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

HOLDS, FAILS, UNSURE = "holds", "does not hold", "inconclusive"


def summary(values: Sequence[float | None], level: float = 0.95,
            bounds: tuple[float, float] | None = None) -> dict[str, Any]:
    """Mean, sample standard deviation and a Student-t confidence interval of the mean.

    ``bounds`` (low, high): the range the quantity can take; the interval is clipped to it,
    which keeps its coverage (the true mean lies inside the bounds). With one value (or a
    non-finite one) the spread and interval are None."""
    v = np.asarray([np.nan if x is None else x for x in values], dtype=float)
    out: dict[str, Any] = {"values": [float(x) for x in v], "n": int(v.size),
                           "mean": float(v.mean()) if v.size else None, "std": None, "ci": None, "method": "t"}
    if v.size >= 2 and np.all(np.isfinite(v)):
        from scipy import stats as sps  # deferred: scipy.stats takes about a second to import

        std = float(v.std(ddof=1))
        half = float(sps.t.ppf(0.5 + level / 2, v.size - 1)) * std / math.sqrt(v.size)
        out["std"] = std
        out["ci"] = [out["mean"] - half, out["mean"] + half]
        if bounds is not None:
            out["ci"] = [max(out["ci"][0], bounds[0]), min(out["ci"][1], bounds[1])]
            out["bounds"] = list(bounds)
    return out


def clopper_pearson(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) two-sided interval of a binomial proportion: inside [0, 1]."""
    from scipy import stats as sps

    if not 0 <= successes <= trials or trials < 1:
        raise ValueError(f"need 0 <= successes <= trials and trials >= 1, got {successes} of {trials}")
    alpha = 1 - level
    low = 0.0 if successes == 0 else float(sps.beta.ppf(alpha / 2, successes, trials - successes + 1))
    high = 1.0 if successes == trials else float(sps.beta.ppf(1 - alpha / 2, successes + 1, trials - successes))
    return low, high


def share_summary(successes: Sequence[int], trials: Sequence[int], level: float = 0.95) -> dict[str, Any]:
    """A share pooled over seeds (``successes[i]`` of ``trials[i]`` per seed), with the
    Clopper-Pearson interval of the pooled count. Shares per seed in "values", their spread in
    "std"; the interval treats every trial as independent (see docs/experiments.md)."""
    k, n = [int(x) for x in successes], [int(x) for x in trials]
    shares = [a / b for a, b in zip(k, n)]
    out = summary(shares, level)
    out.update({"mean": sum(k) / sum(n), "ci": list(clopper_pearson(sum(k), sum(n), level)),
                "method": "clopper-pearson", "successes": sum(k), "trials": sum(n)})
    return out


def p_values(s: dict[str, Any], target: float) -> tuple[float, float]:
    """One-sided p-values of the summary ``s`` against ``target``: (p of "the mean is at most the
    target", p of "the mean is at least the target"); small values favour "above" and "below".
    Exact binomial for a Clopper-Pearson share, Student t otherwise; (1, 1) without an interval.
    Their doubled minimum is <= 1 - level exactly when :func:`verdict` is not inconclusive."""
    from scipy import stats as sps

    if s["ci"] is None:
        return 1.0, 1.0
    if s.get("method") == "clopper-pearson":
        k, n = s["successes"], s["trials"]
        return float(sps.binom.sf(k - 1, n, target)), float(sps.binom.cdf(k, n, target))
    if s["std"] == 0:  # every seed the same value: the interval is that value
        return (0.0, 1.0) if s["mean"] > target else (1.0, 0.0)
    t = (s["mean"] - target) / (s["std"] / math.sqrt(s["n"]))
    return float(sps.t.sf(t, s["n"] - 1)), float(sps.t.cdf(t, s["n"] - 1))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: the adjusted p-values of a family of tests, in their order.
    Rejecting where the adjusted value is <= alpha keeps the family-wise error rate <= alpha."""
    m = len(pvalues)
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda j: pvalues[j])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def judge(claims: list[dict[str, Any]], level: float = 0.95) -> None:
    """Set, on each claim of a report (with "summary" and "target", the target on the summary's
    scale in "test_target" when it differs), its "verdict" (the 95% interval against the
    target), its two-sided "p" and its "verdict_holm": the verdict after Holm's correction over
    all the claims given together, at the family-wise level 1 - ``level``."""
    sided = [p_values(c["summary"], c.get("test_target", c["target"])) for c in claims]
    two_sided = [min(1.0, 2 * min(above, below)) for above, below in sided]
    for c, (above, below), p, adjusted in zip(claims, sided, two_sided, holm(two_sided)):
        c["verdict"] = verdict(c["summary"], c.get("test_target", c["target"]))
        c["p"], c["p_holm"] = p, adjusted
        c["verdict_holm"] = UNSURE if adjusted > 1 - level else HOLDS if above < below else FAILS


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


METHOD_LABELS = {"t": "t", "clopper-pearson": "CP"}


def fmt_p(p: float | None) -> str:
    """A p-value in two significant digits, or '< 0.0001'."""
    if p is None or not math.isfinite(p):
        return "n/a"
    return "< 0.0001" if p < 1e-4 else f"{p:.2g}"


__all__ = ["FAILS", "HOLDS", "METHOD_LABELS", "UNSURE", "clopper_pearson", "first_to_reach", "finite_or_none", "fmt",
           "fmt_ci", "fmt_g", "fmt_p", "fmt_summary", "holm", "judge", "oscillation", "p_values", "rolling_variance",
           "share_summary", "summary", "verdict"]
