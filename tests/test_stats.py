"""Intervals that respect the range of what they bound, p-values that agree with the verdicts,
and Holm's correction; the committed reports hold no share interval outside [0, 1]."""

import json
from pathlib import Path

import pytest

from matap.experiments import stats
from matap.experiments.compare import CLAIM_BOUNDS, SHARES_OF_EPOCHS

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


def test_clopper_pearson_known_values():
    assert stats.clopper_pearson(0, 10) == pytest.approx((0.0, 0.30849), abs=1e-5)
    assert stats.clopper_pearson(10, 10) == pytest.approx((0.69151, 1.0), abs=1e-5)
    low, high = stats.clopper_pearson(15, 24)
    assert low == pytest.approx(0.40594, abs=1e-5) and high == pytest.approx(0.81201, abs=1e-5)
    with pytest.raises(ValueError):
        stats.clopper_pearson(3, 2)


def test_a_share_interval_stays_inside_0_and_1():
    # Three seeds at 1.0, 1.0 and 0.75 of 8 epochs: Student t gave [0.56, 1.28].
    t = stats.summary([1.0, 1.0, 0.75])
    assert t["ci"][1] > 1
    s = stats.share_summary([8, 8, 6], [8, 8, 8])
    assert s["method"] == "clopper-pearson" and s["mean"] == pytest.approx(22 / 24)
    assert 0 <= s["ci"][0] < s["mean"] < s["ci"][1] <= 1
    assert s["values"] == [1.0, 1.0, 0.75]


def test_a_bounded_mean_is_clipped_to_its_range():
    s = stats.summary([0.99, 0.5, 0.98], bounds=(0.0, 1.0))
    assert s["ci"][1] == 1.0 and s["ci"][0] > 0
    assert stats.summary([0.4, 0.5, 0.6], bounds=(0.0, 1.0))["ci"] == stats.summary([0.4, 0.5, 0.6])["ci"]


@pytest.mark.parametrize("s, target", [
    (stats.summary([1.0, 1.1, 0.9]), 0.0), (stats.summary([-1.0, -1.1, -0.9]), 0.0),
    (stats.summary([1.0, -1.0, 0.5]), 0.0), (stats.summary([0.3, 0.3, 0.3]), 0.3),
    (stats.share_summary([20, 20, 20], [20, 20, 20]), 0.9), (stats.share_summary([8, 7, 6], [8, 8, 8]), 0.9),
    (stats.share_summary([2, 1, 0], [8, 8, 8]), 0.5), (stats.share_summary([5, 4, 3], [8, 8, 8]), 0.5),
])
def test_the_p_value_agrees_with_the_interval(s, target):
    above, below = stats.p_values(s, target)
    claims = [{"summary": s, "target": target}]
    stats.judge(claims)
    decided = claims[0]["verdict"] != stats.UNSURE
    assert (claims[0]["p"] <= 0.05) == decided
    assert claims[0]["verdict_holm"] == claims[0]["verdict"]  # one claim: Holm changes nothing
    if decided:
        assert (above < below) == (claims[0]["verdict"] == stats.HOLDS)


def test_holm_adjusts_step_down():
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5]) == [0.5]
    claims = [{"summary": stats.summary(v), "target": 0.0} for v in ([1.0, 1.01, 0.99], [0.3, 0.4, 0.2], [0.2, -0.1, 0.4])]
    stats.judge(claims)
    assert [c["verdict"] for c in claims] == [stats.HOLDS, stats.HOLDS, stats.UNSURE]
    # Three claims at once: the weaker of the two that hold alone does not survive the correction.
    assert [c["verdict_holm"] for c in claims] == [stats.HOLDS, stats.UNSURE, stats.UNSURE]


@pytest.mark.parametrize("folder", sorted(p.parent.name for p in RESULTS.glob("*/results.json")))
def test_committed_reports_keep_bounded_intervals_in_bounds(folder):
    results = json.loads((RESULTS / folder / "results.json").read_text())
    for claim in results.get("claims", []):
        ci = claim["summary"]["ci"]
        assert "verdict_holm" in claim and "p" in claim, claim["id"]
        if ci is None:
            continue
        if claim["id"] in SHARES_OF_EPOCHS:
            assert claim["summary"]["method"] == "clopper-pearson"
            assert 0 <= ci[0] <= ci[1] <= 1, (claim["id"], ci)
        if results["kind"] == "compare" and claim["id"] in CLAIM_BOUNDS:
            low, high = CLAIM_BOUNDS[claim["id"]]
            assert low <= ci[0] <= ci[1] <= high, (claim["id"], ci)
