"""A claim put to the test: a quantity per seed that is larger when the claim is right, its mean
with a confidence interval over seeds, a target, and the verdict; and the one table that shows
the verdicts in every report."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from matap.experiments import stats
from matap.experiments.report import table


@dataclass(frozen=True)
class Claim:
    id: str
    claim: str                 # what is claimed, in words
    measure: str               # how it is measured, per seed
    values: Sequence[float]    # the measure on each seed
    target: float              # the claim holds when the mean lies above it
    source: str | None = None  # where the paper makes it ...
    paper: str | None = None   # ... and its own figure
    unit: str = ""
    log_scale: bool = False    # judge the mean of the logarithms (for ratios)

    def to_json(self) -> dict[str, Any]:
        """The claim as results.json holds it, before :func:`judge` adds its summary over seeds and verdicts."""
        return {"id": self.id, "source": self.source, "claim": self.claim, "paper": self.paper,
                "measure": self.measure, "unit": self.unit, "per_seed": [float(v) for v in self.values],
                "log_scale": self.log_scale, "target": self.target}


def judge(claims: list[dict[str, Any]], shares_of: int | None = None, shares: Sequence[str] = (),
          bounds: Mapping[str, tuple[float, float]] | None = None) -> list[dict[str, Any]]:
    """Set each claim's "summary" (mean, spread, 95% interval) from its "per_seed" values, then its
    verdict, two-sided p-value and verdict after Holm's correction over all the claims given together
    (:func:`stats.judge`). Intervals: Clopper-Pearson of the count pooled over seeds for the claims
    named in ``shares`` (per-seed values that are shares of ``shares_of`` epochs); Student t of the
    mean of the logarithms for a log-scale claim; otherwise Student t of the mean, clipped to the
    range in ``bounds`` where the claim has one. Returns ``claims``."""
    for c in claims:
        values = [float("nan") if v is None else float(v) for v in c["per_seed"]]
        if c["id"] in shares and shares_of is not None:
            c["summary"] = stats.share_summary([round(v * shares_of) for v in values], [shares_of] * len(values))
        elif c.get("log_scale"):
            c["summary"] = stats.summary(np.log(values).tolist())
            c["test_target"] = math.log(c["target"])
        else:
            c["summary"] = stats.summary(values, bounds=(bounds or {}).get(c["id"]))
    stats.judge(claims)
    return claims


def verdict_table(claims: Sequence[dict[str, Any]], methods: bool = False) -> str:
    """The claims of a results.json as a table: claim, where and the paper's figure (when the claims
    quote the paper), how it was measured, the mean, its 95% interval (with ``methods``, how it was
    computed: (t) or (CP)), the p-value, the verdict and the verdict after Holm's correction."""
    quoted = any(c.get("paper") for c in claims)
    rows = []
    for c in claims:
        s, unit = c["summary"], c.get("unit", "")
        if c.get("log_scale"):
            mean = stats.fmt_g(None if s["mean"] is None else math.exp(s["mean"]), unit)
            ci = stats.fmt_ci(s) if s["ci"] is None else f"[{math.exp(s['ci'][0]):.3g}, {math.exp(s['ci'][1]):.3g}]"
        else:
            mean, ci = stats.fmt_g(s["mean"], unit), stats.fmt_ci(s)
        if methods and s["ci"] is not None:
            ci += f" ({stats.METHOD_LABELS[s.get('method', 't')]})"
        where = [c["source"], c["paper"]] if quoted else []
        rows.append([c["claim"], *where, c["measure"], mean, ci, stats.fmt_p(c.get("p")), f"**{c['verdict']}**",
                     f"**{c.get('verdict_holm', c['verdict'])}**"])
    m = len(claims)
    header = ["claim", *(["where", "paper"] if quoted else []), "measured as", "mean", "95% CI", "p", "verdict",
              f"after Holm ({m} claims)"]
    return table(header, rows)


def how_judged(claims: Sequence[dict[str, Any]]) -> str:
    """The paragraph above a verdict table of claims judged against a target of 0 by a Student-t interval."""
    return ("Positive values favour the claim; the verdict compares the 95% confidence interval over seeds "
            "(Student t) with 0: **holds** if the interval lies above it, **does not hold** if it lies at or below, "
            "**inconclusive** otherwise. p: the two-sided t-test p-value of a mean of 0. The last column applies "
            f"Holm's correction over the {len(claims)} claims of this report (family-wise error rate 5%); only a "
            "verdict that survives it should be read as a finding.")


__all__ = ["Claim", "how_judged", "judge", "verdict_table"]
