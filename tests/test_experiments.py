"""compare, ablate and drift on the smoke preset: the files they write, the report
against results.json, run reuse, and the statistics behind the verdicts."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from matap.baselines import BASELINES
from matap.cli import main
from matap.config import load_config
from matap.experiments import stats
from matap.experiments.compare import analyse
from matap.experiments.report import record_baselines
from matap.experiments.runs import Run, read_history
from matap.experiments.stats import fmt_summary


def rows_of(report: str) -> dict[str, list[str]]:
    """Markdown table rows of a report, keyed by their first cell without its '(worse than black
    frames ...)' label (the last such row wins)."""
    rows = {}
    for line in report.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows[re.sub(r" \(worse than black frames[^)]*\)$", "", cells[0])] = cells[1:]
    return rows


def check_baselines(results: dict, report: str, steps: int) -> None:
    """results.json holds every baseline per timestep; the report shows their rows and a verdict per model."""
    assert list(results["baselines"]) == list(BASELINES)
    for metrics in results["baselines"].values():
        assert all(len(m["per_timestep"]) == steps for m in metrics.values())
    for label in ("trivial: black frames", "trivial: last frame", "trivial: mean frame"):
        assert f"| {label} |" in report
    assert "## Against trivial predictions" in report and "baselines not recorded" not in report.lower()
    assert "- against black frames: " in report


@pytest.fixture(scope="module")
def experiments(tmp_path_factory):
    """One compare run, then ablate and drift sharing its runs folder (only k5 trains anew)."""
    root = tmp_path_factory.mktemp("experiments")
    runs = root / "runs"
    # Overrides after --seeds: argparse hands them to --seeds, and the CLI gives them back.
    common = ["--config", "smoke", "--runs", str(runs), "--seeds", "0", "1", "train.epochs=3"]
    assert main(["compare", "--out", str(root / "compare"), *common]) == 0
    assert main(["ablate", "--out", str(root / "ablate"), "--variants", "k5", "matap", "gru", *common]) == 0
    assert main(["drift", "--out", str(root / "drift"), "--context", "4", "--horizon", "12", *common]) == 0
    return root


def test_compare_writes_every_table_figure_and_gif(experiments):
    out = experiments / "compare"
    for name in ("report.md", "results.json", "figure1.png", "samples.png", "matap.gif", "gru.gif"):
        assert (out / name).stat().st_size > 0, name
    report = (out / "report.md").read_text()
    for title in ("Table 1", "Table 2", "Table 3", "Table 4", "Figure 1", "claims, tested"):
        assert title in report


def test_compare_report_shows_the_numbers_of_results_json(experiments):
    out = experiments / "compare"
    def strict(constant):
        raise AssertionError(f"results.json holds {constant}, which is not JSON")

    results = json.loads((out / "results.json").read_text(), parse_constant=strict)
    rows = rows_of((out / "report.md").read_text())
    for name, label in (("matap", "MA-TAP (ours)"), ("gru", "GRU baseline (ours)")):
        t1 = results["table1"][name]
        assert rows[label][:3] == [fmt_summary(t1["val_loss"]), fmt_summary(t1["val_ssim"]), fmt_summary(t1["train_loss"])]
        assert rows[label][3] == f"{results['parameters'][name]:,}"
    assert results["parameters"] == {"matap": 4906977, "gru": 4873633}
    assert results["num_runs"] == 4 and results["num_trained"] == 4 and results["runs_seconds"] > 0
    assert f"{results['runs_seconds']:.0f} s of training over the 4 runs" in (out / "report.md").read_text()
    for claim in results["claims"]:
        assert rows[claim["claim"]][-2:] == [f"**{claim['verdict']}**", f"**{claim['verdict_holm']}**"]
        assert len(rows[claim["claim"]]) == 8  # no stray '|' splitting a cell
    check_baselines(results, (out / "report.md").read_text(), steps=results["evaluation"]["horizon"])
    black = results["baselines"]["black"]
    assert rows["trivial: black frames"][2:4] == [f"{black['ssim']['mean']:.4f}", f"{black['mse']['mean']:.1f}"]
    # The curves in the JSON are the runs' own histories.
    for name in ("matap", "gru"):
        for i, seed in enumerate(results["seeds"]):
            history = read_history(experiments / "runs" / f"{name}-seed{seed}")
            assert results["curves"][name]["val_loss"][i] == [row["val_loss"] for row in history]


def test_a_second_invocation_reuses_the_runs_and_report_renders_again(experiments, capsys):
    out = experiments / "compare"
    before = json.loads((out / "results.json").read_text())
    assert main(["compare", "--out", str(out), "--config", "smoke", "--seeds", "0", "1",
                 "--runs", str(experiments / "runs"), "train.epochs=3"]) == 0
    assert capsys.readouterr().out.count("finished run found") == 4
    after = json.loads((out / "results.json").read_text())
    assert after["table1"] == before["table1"] and after["claims"] == before["claims"]
    assert after["num_trained"] == 0 and after["runs_seconds"] == before["runs_seconds"]
    assert "trained 0 of them" in (out / "report.md").read_text()
    rendered = (out / "report.md").read_text()
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.md").read_text() == rendered


@pytest.mark.parametrize("name", ["compare", "ablate", "drift"])
def test_reports_say_what_their_rollouts_feed_back(experiments, tmp_path, name):
    """The smoke preset rolls out in latent space; with model.rollout_feedback=frame the same report says that
    the decoded frames go back in, and a results.json that predates the record reads as latent rollouts."""
    results = json.loads((experiments / name / "results.json").read_text())
    assert results["feedback"] == "latent"
    assert "in latent space" in (experiments / name / "report.md").read_text()
    for feedback, words in (("frame", "feeding the encoding of each decoded frame back into the cell"),
                            (None, "in latent space")):
        folder = tmp_path / str(feedback)
        folder.mkdir()
        edited = {k: v for k, v in results.items() if k != "feedback"}
        if feedback:
            edited["feedback"] = feedback
        (folder / "results.json").write_text(json.dumps(edited))
        assert main(["report", str(folder)]) == 0
        report = (folder / "report.md").read_text()
        assert words in report
        assert feedback != "frame" or "in latent space" not in report


def test_ablate_reports_each_variant(experiments):
    out = experiments / "ablate"
    results = json.loads((out / "results.json").read_text())
    assert list(results["variants"]) == ["k5", "matap", "gru"]
    assert (out / "ablate.png").stat().st_size > 0
    rows = rows_of((out / "report.md").read_text().split("## Against trivial predictions")[0])
    for name, v in results["variants"].items():
        assert rows[name][1:4] == [fmt_summary(v["val_bce"]), fmt_summary(v["val_loss"]), fmt_summary(v["val_ssim"])]
    assert rows["5"][0] == "0.0017" and rows["10"][2] == fmt_summary(results["variants"]["matap"]["val_ssim"])
    check_baselines(results, (out / "report.md").read_text(), steps=results["evaluation"]["horizon"])


def test_drift_curves_cover_the_horizon_and_levels_match_them(experiments):
    out = experiments / "drift"
    results = json.loads((out / "results.json").read_text())
    assert (out / "drift.png").stat().st_size > 0
    for name in ("matap", "gru"):
        curves = results["curves"][name]["ssim"]
        assert np.array(curves).shape == (2, 12)
        for level, firsts in results["frames_to_fall_below"][name].items():
            for curve, first in zip(curves, firsts):
                expected = next((t for t, v in enumerate(curve, 1) if v < float(level)), None)
                assert first == expected
    rows = rows_of((out / "report.md").read_text())
    for claim in results["claims"]:
        assert rows[claim["claim"]][-2:] == [f"**{claim['verdict']}**", f"**{claim['verdict_holm']}**"]
    check_baselines(results, (out / "report.md").read_text(), steps=12)
    # The same sequences as the models: the baselines equal those of a fresh record on the same results.
    again = dict(results)
    record_baselines(again)
    assert again["baselines"] == results["baselines"]


def _without_checkpoints(runs: Path, into: Path) -> Path:
    """A copy of a runs folder with only what a repository would keep of each run: config.yaml,
    history.csv and scores.json (no checkpoints, no TensorBoard events)."""
    import shutil

    for run in runs.iterdir():
        (into / run.name).mkdir(parents=True)
        for name in ("config.yaml", "history.csv", "scores.json"):
            shutil.copy(run / name, into / run.name / name)
    return into


def test_a_report_is_rebuilt_from_runs_whose_checkpoints_are_gone(experiments, tmp_path, capsys):
    """compare again on the small files of its runs: the same numbers, the training time from
    scores.json, the pictures kept; without the pictures, the same report with a warning and a note
    where they were; for an evaluation never stored, one line that says what is missing."""
    import shutil

    runs = _without_checkpoints(experiments / "runs", tmp_path / "runs")
    out = tmp_path / "compare"
    shutil.copytree(experiments / "compare", out)
    before = json.loads((out / "results.json").read_text())
    argv = ["--config", "smoke", "--seeds", "0", "1", "--runs", str(runs), "train.epochs=3"]
    assert main(["compare", "--out", str(out), *argv]) == 0
    printed = capsys.readouterr().out
    assert printed.count("no checkpoint: its scores.json stands in for it") == 4 and "kept matap.gif" in printed
    after = json.loads((out / "results.json").read_text())
    for key in ("table1", "claims", "evaluation", "baselines", "runs_seconds", "files"):
        assert after[key] == before[key], key
    assert after["num_trained"] == 0

    assert main(["compare", "--out", str(tmp_path / "fresh"), *argv]) == 0
    err = capsys.readouterr().err
    assert err.count("checkpoints/last.ckpt any more") == 2 and "its pictures are not drawn" in err
    fresh = json.loads((tmp_path / "fresh" / "results.json").read_text())
    assert fresh["table1"] == before["table1"] and fresh["files"].keys().isdisjoint({"samples", "matap", "gru"})
    assert "Still frames: not drawn (no checkpoint was left)." in (tmp_path / "fresh" / "report.md").read_text()
    assert main(["drift", "--out", str(tmp_path / "drift"), "--context", "4", "--horizon", "6", *argv]) == 2
    err = capsys.readouterr().err
    assert "checkpoints/last.ckpt is gone" in err and "rollout 4->6 T=10" in err


def test_a_runs_folder_of_another_config_is_refused(experiments, capsys):
    code = main(["compare", "--out", str(experiments / "other"), "--config", "smoke", "--seeds", "0",
                 "--runs", str(experiments / "runs"), "train.epochs=3", "train.lr=0.01"])
    assert code == 2
    assert "another config" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["ablate", "--out", "x", "--variants", "k7"], "unknown k7"),
    (["compare", "--out", "x", "--seeds", "1", "1"], "each seed once"),
    (["drift", "--out", "x", "--horizon", "1"], "horizon (1) >= 2"),
])
def test_bad_experiment_arguments(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_summary_gives_the_student_t_interval():
    s = stats.summary([1.0, 2.0, 3.0])
    assert s["mean"] == 2.0 and s["std"] == 1.0
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2 degrees of freedom)
    assert s["ci"] == pytest.approx([2 - half, 2 + half])
    assert stats.summary([5.0])["ci"] is None


@pytest.mark.parametrize("values, target, verdict", [
    ([1.0, 1.1, 0.9], 0.0, stats.HOLDS),
    ([-1.0, -1.1, -0.9], 0.0, stats.FAILS),
    ([1.0, -1.0, 0.5], 0.0, stats.UNSURE),
    ([0.95, 0.96, 0.97], 0.9, stats.HOLDS),
    ([2.0], 0.0, stats.UNSURE),
])
def test_verdicts(values, target, verdict):
    assert stats.verdict(stats.summary(values), target) == verdict


def _runs(curves: dict[str, list[list[float]]]) -> dict[str, list[Run]]:
    cfg = load_config("smoke")
    out = {}
    for name in ("matap", "gru"):
        out[name] = []
        for seed, loss in enumerate(curves[name]):
            history = [{"val_loss": v, "val_ssim": 1 - v, "train_loss": v + 0.01} for v in loss]
            out[name].append(Run(name, seed, Path("."), cfg if name == "matap" else load_config("smoke", ["model.name=gru"]),
                                 history))
    return out


def test_claims_follow_designed_histories():
    """MA-TAP lower and smoother on every epoch of every seed: the directional claims hold."""
    rng = np.random.default_rng(0)
    epochs = 20  # 60 of 60 epochs won: the Clopper-Pearson interval clears 0.9 (30 of 30 would not)
    base = np.linspace(0.9, 0.3, epochs)
    curves = {"matap": [list(base - 0.05 + rng.normal(0, 0.001, epochs)) for _ in range(3)],
              "gru": [list(base + 0.1 * (np.arange(epochs) % 2) + rng.normal(0, 0.001, epochs)) for _ in range(3)]}
    verdicts = {c["id"]: c["verdict"] for c in analyse(_runs(curves))["claims"]}
    assert verdicts["final-val-loss"] == stats.HOLDS
    assert verdicts["wins-90pct"] == stats.HOLDS
    assert verdicts["mean-loss-gap"] == stats.HOLDS
    assert verdicts["oscillation"] == stats.HOLDS
    assert verdicts["baseline-peak"] == stats.FAILS
    # Swap the models: now the same claims fail.
    swapped = {c["id"]: c["verdict"] for c in analyse(_runs({"matap": curves["gru"], "gru": curves["matap"]}))["claims"]}
    assert swapped["final-val-loss"] == stats.FAILS and swapped["wins-90pct"] == stats.FAILS
    assert swapped["oscillation"] == stats.FAILS


def test_first_to_reach_and_rolling_variance():
    assert stats.first_to_reach([0.5, 0.3, 0.1], 0.2, below=True) == 3
    assert stats.first_to_reach([0.1, 0.3], 0.5, below=False) is None
    assert stats.rolling_variance([1, 2, 3, 4, 5, 6], 5) == pytest.approx([2.5, 2.5])
    assert stats.oscillation([0.9, 0.5, 0.3, 0.2]) == 0.0          # learning fast is not oscillating
    assert stats.oscillation([0.1, 0.3, 0.2, 0.4]) == 1.0
    assert stats.finite_or_none({"a": [float("nan"), 1.0], "b": float("inf")}) == {"a": [None, 1.0], "b": None}
    assert re.fullmatch(r"\d\.\d{4} ± \d\.\d{4}", fmt_summary(stats.summary([0.1, 0.2])))


def test_memory_claims_compare_each_memory_with_fifo_seed_by_seed(monkeypatch):
    """A memory better than FIFO on every seed holds on both claims; one worse on every seed does not
    hold; one that differs by noise around zero is inconclusive; the knobs of MA-TAP itself (K, the
    switches) and the GRU are not memories beyond FIFO, and without FIFO there is nothing to judge."""
    import matap.experiments.ablate as ablate

    def row(ssim, bce):
        return {"predict_ssim": stats.summary(ssim), "val_bce": stats.summary(bce)}

    fifo_ssim, fifo_bce = [0.40, 0.45, 0.50], [0.130, 0.125, 0.120]
    rows = {"matap": row(fifo_ssim, fifo_bce), "k5": row([0.9] * 3, [0.01] * 3), "gru": row([0.9] * 3, [0.01] * 3),
            "better": row([s + 0.05 + d for s, d in zip(fifo_ssim, (0, 0.001, -0.001))],
                          [b - 0.01 + d for b, d in zip(fifo_bce, (0, 0.0002, -0.0002))]),
            "worse": row([s - 0.05 + d for s, d in zip(fifo_ssim, (0, 0.001, -0.001))],
                         [b + 0.01 + d for b, d in zip(fifo_bce, (0, 0.0002, -0.0002))]),
            "same": row([s + d for s, d in zip(fifo_ssim, (0.01, -0.01, 0.001))],
                        [b + d for b, d in zip(fifo_bce, (0.001, -0.001, 0.0001))])}
    claims = {c["id"]: c for c in ablate.memory_claims(rows)}
    assert sorted(claims) == ["better-bce", "better-ssim", "same-bce", "same-ssim", "worse-bce", "worse-ssim"]
    assert claims["better-ssim"]["per_seed"] == pytest.approx([0.05, 0.051, 0.049])
    assert {k: c["verdict"] for k, c in claims.items()} == {
        "better-ssim": stats.HOLDS, "better-bce": stats.HOLDS, "worse-ssim": stats.FAILS, "worse-bce": stats.FAILS,
        "same-ssim": stats.UNSURE, "same-bce": stats.UNSURE}
    assert ablate.memory_claims({k: v for k, v in rows.items() if k != "matap"}) == []
    # the report shows the verdicts in a section of their own, which older results without claims lack
    results = {"variants": {}, "claims": list(claims.values()), "seeds": [0, 1, 2], "epochs": 1, "frame_term": "val_next",
               "headline_ssim": "val_ssim_next", "evaluation": {"context": 10, "horizon": 10}, "files": {"figure": "a.png"}}
    monkeypatch.setattr(ablate, "header", lambda r, title: f"# {title}\n")
    text = ablate.render(results)
    assert "## The memories beyond FIFO against MA-TAP" in text and "| better predicts better than FIFO MA-TAP |" in text
    assert "## The memories beyond FIFO" not in ablate.render({**results, "claims": []})
