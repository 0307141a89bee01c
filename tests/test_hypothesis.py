"""matap hypothesis: the levels each hypothesis trains, the sign of its claims on designed
numbers, and one study on the smoke preset end to end."""

import json

import pytest

from matap.cli import main
from matap.config import load_config
from matap.experiments.hypothesis import HYPOTHESES


def _scores(matap: dict, gru: dict) -> dict:
    """results["scores"]: level -> model -> metric -> per-seed values."""
    return {level: {"matap": matap[level], "gru": gru[level]} for level in matap}


def test_digits_claims_are_the_change_of_matap_s_lead_between_the_levels():
    matap = {"digits2": {"ssim": [0.70, 0.72], "mse": [150.0, 152.0]},
             "digits3": {"ssim": [0.65, 0.66], "mse": [200.0, 190.0]}}
    gru = {"digits2": {"ssim": [0.69, 0.72], "mse": [151.0, 150.0]},   # leads: ssim 0.01, 0; mse 1, -2
           "digits3": {"ssim": [0.62, 0.64], "mse": [210.0, 191.0]}}   # leads: ssim 0.03, 0.02; mse 10, 1
    claims = {c.id: c for c in HYPOTHESES["digits"].claims({"scores": _scores(matap, gru)})}
    assert claims["occlusion-ssim"].values == pytest.approx([0.02, 0.02])
    assert claims["occlusion-mse"].values == pytest.approx([9.0, 3.0])   # a lower MSE counts as a lead


def test_length_claims_measure_the_lead_over_the_horizon():
    horizon = 4
    grows = {"ssim": [[0.5, 0.5, 0.5, 0.5]], "mse": [[100.0] * horizon]}
    falls = {"ssim": [[0.5, 0.45, 0.4, 0.35]], "mse": [[100.0] * horizon]}
    results = {"horizon": horizon, "curves": {"len50": {"matap": grows, "gru": falls}},
               "scores": _scores({"len20": {"ssim": [0.5], "mse": [100.0]}, "len50": {"ssim": [0.5], "mse": [100.0]}},
                                 {"len20": {"ssim": [0.5], "mse": [100.0]}, "len50": {"ssim": [0.425], "mse": [90.0]}})}
    claims = {c.id: c for c in HYPOTHESES["length"].claims(results)}
    assert claims["length-horizon"].values == pytest.approx([0.5])       # +0.05 per frame, per 10 frames
    assert claims["length-training"].values == pytest.approx([0.075])
    assert claims["length-training-mse"].values == pytest.approx([-10.0])


def test_schedule_claims_read_the_baseline_s_oscillations():
    wobble = {"constant": {"matap": [0.2], "gru": [0.8]}, "cosine": {"matap": [0.1], "gru": [0.3]},
              "restarts": {"matap": [0.5], "gru": [0.9]}}
    claims = {c.id: c for c in HYPOTHESES["schedule"].claims({"oscillation": wobble})}
    assert claims["oscillation-cosine"].values == pytest.approx([0.5])
    assert claims["oscillation-restarts"].values == pytest.approx([-0.1])


def test_capacity_doubles_the_budget_the_preset_has():
    timed = HYPOTHESES["capacity"].levels(load_config("quick"))
    counted = HYPOTHESES["capacity"].levels(load_config("small"))
    assert timed["budget2x"][1] == ["train.max_time=18"] and counted["budget2x"][1] == ["train.epochs=16"]
    assert timed["d64"][1] == [] and timed["d128"][1] == ["model.latent_dim=128"]


def test_a_level_that_leaves_the_preset_as_it_is_reuses_the_runs_of_compare(tmp_path):
    runs = tmp_path / "runs"
    assert main(["compare", "--config", "smoke", "--out", str(tmp_path / "c"), "--runs", str(runs),
                 "--seeds", "0", "train.epochs=3"]) == 0
    trained = {p.name: (p / "history.csv").read_text() for p in runs.iterdir()}
    assert sorted(trained) == ["gru-seed0", "matap-seed0"]
    out = tmp_path / "schedule"
    assert main(["hypothesis", "--hypothesis", "schedule", "--config", "smoke", "--out", str(out), "--runs", str(runs),
                 "--seeds", "0", "train.epochs=3"]) == 0
    # the smoke preset's schedule is "none": the constant level is compare's runs, the two others are new
    assert sorted(p.name for p in runs.iterdir()) == sorted(
        [*trained, *(f"{m}-{level}-seed0" for m in ("gru", "matap") for level in ("cosine", "restarts"))])
    assert all((runs / name / "history.csv").read_text() == history for name, history in trained.items())
    results = json.loads((out / "results.json").read_text())
    assert results["num_trained"] == 4 and results["num_runs"] == 6
    assert len(results["scores"]["constant"]["matap"]["ssim"]) == 1


def test_schedule_needs_epochs_to_count_reversals(tmp_path, capsys):
    assert main(["hypothesis", "--hypothesis", "schedule", "--config", "smoke", "--out", str(tmp_path / "s"),
                 "--seeds", "0", "train.epochs=2"]) == 2
    assert "train.epochs >= 3" in capsys.readouterr().err


def test_digits_study_scores_each_level_beside_its_own_baselines(tmp_path):
    out = tmp_path / "digits"
    assert main(["hypothesis", "--hypothesis", "digits", "--config", "smoke", "--out", str(out),
                 "--seeds", "0", "1", "train.epochs=1"]) == 0
    results = json.loads((out / "results.json").read_text())
    # 2 digits is the smoke preset as it is: those runs are the ones compare trains, and share its names
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(
        f"{m}{level}-seed{s}" for m in ("gru", "matap") for level in ("", "-digits3") for s in (0, 1))
    assert [c["id"] for c in results["claims"]] == ["occlusion-ssim", "occlusion-mse"]
    assert all(c["verdict"] in ("holds", "does not hold", "inconclusive") for c in results["claims"])
    black = {level: b["black"]["ssim"]["mean"] for level, b in results["level_baselines"].items()}
    assert black["digits3"] < black["digits2"]                  # a third digit leaves less of the frame black
    for level in ("digits2", "digits3"):
        assert len(results["scores"][level]["matap"]["ssim"]) == 2
        assert len(results["curves"][level]["gru"]["mse"][0]) == 10
    report = (out / "report.md").read_text()
    assert report.count("| trivial: black frames |") == 2 and "### 3 digits" in report
    assert f"{black['digits3']:.4f}" in report
    assert (out / "hypothesis.png").is_file() and (out / "samples.png").is_file()
    assert main(["report", str(out)]) == 0
    assert (out / "report.md").read_text() == report
