"""A claim put to the test: a quantity per seed that is larger when the claim is right, its mean
with a confidence interval over seeds, a target, and the verdict; and the one table that shows
the verdicts in every report."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

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
        """The claim as results.json holds it, with its summary over seeds and verdict."""
        s = stats.summary(np.log(self.values).tolist() if self.log_scale else self.values)
        return {"id": self.id, "source": self.source, "claim": self.claim, "paper": self.paper,
                "measure": self.measure, "unit": self.unit, "per_seed": [float(v) for v in self.values],
                "summary": s, "log_scale": self.log_scale, "target": self.target,
                "verdict": stats.verdict(s, math.log(self.target) if self.log_scale else self.target)}


def verdict_table(claims: Sequence[dict[str, Any]]) -> str:
    """The claims of a results.json as a table: claim, where and the paper's figure (when the claims
    quote the paper), how it was measured, the mean, its 95% interval and the verdict."""
    quoted = any(c.get("paper") for c in claims)
    rows = []
    for c in claims:
        s, unit = c["summary"], c.get("unit", "")
        if c.get("log_scale"):
            mean = stats.fmt_g(None if s["mean"] is None else math.exp(s["mean"]), unit)
            ci = stats.fmt_ci(s) if s["ci"] is None else f"[{math.exp(s['ci'][0]):.3g}, {math.exp(s['ci'][1]):.3g}]"
        else:
            mean, ci = stats.fmt_g(s["mean"], unit), stats.fmt_ci(s)
        where = [c["source"], c["paper"]] if quoted else []
        rows.append([c["claim"], *where, c["measure"], mean, ci, f"**{c['verdict']}**"])
    header = ["claim", *(["where", "paper"] if quoted else []), "measured as", "mean", "95% CI", "verdict"]
    return table(header, rows)


__all__ = ["Claim", "verdict_table"]
