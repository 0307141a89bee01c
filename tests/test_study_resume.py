"""A study killed with SIGKILL in the middle of a run and started again ends with the results of an
uninterrupted one: finished runs are reused, the half-trained run resumes from its last checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from matap.cli import main

ARGS = ["--config", "smoke", "--seeds", "0", "train.epochs=3"]
# What legitimately differs between two invocations: when, how long, and how much was trained here.
VOLATILE = {"written", "command", "runs_seconds", "train_seconds", "wall_seconds", "num_trained"}


def _results(out: Path) -> dict:
    results = json.loads((out / "results.json").read_text())
    return {key: value for key, value in results.items() if key not in VOLATILE}


def _assert_close(a, b, where: str = "") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_close(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert b == pytest.approx(a, abs=1e-6), where
    else:
        assert a == b, where


def test_a_study_killed_mid_run_finishes_with_the_uninterrupted_results(tmp_path, capsys):
    assert main(["compare", "--out", str(tmp_path / "whole"), "--runs", str(tmp_path / "whole-runs"), *ARGS]) == 0

    runs = tmp_path / "killed-runs"
    command = [sys.executable, "-m", "matap.cli", "compare", "--out", str(tmp_path / "killed"), "--runs", str(runs),
               *ARGS]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, PYTHONWARNINGS="ignore"))
    deadline = time.time() + 300
    # Kill as soon as a run has its first epoch's checkpoint: that run is then half-trained.
    while not any(runs.glob("*/checkpoints/last.ckpt")):
        assert proc.poll() is None and time.time() < deadline, "the study ended before it could be killed"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "results.json").exists()
    half = next(runs.glob("*/checkpoints/last.ckpt")).parents[1]
    history = half / "history.csv"
    assert not history.exists() or len(history.read_text().splitlines()) - 1 < 3  # killed before its last epoch

    capsys.readouterr()
    assert main(["compare", "--out", str(tmp_path / "killed"), "--runs", str(runs), *ARGS]) == 0
    assert f"resuming {half}" in capsys.readouterr().out  # continued from its checkpoint, not trained afresh
    _assert_close(_results(tmp_path / "whole"), _results(tmp_path / "killed"))


def test_each_run_is_scored_as_soon_as_it_is_trained_so_a_study_survives_the_loss_of_its_checkpoints(
        tmp_path, monkeypatch, capsys):
    import shutil

    from matap.experiments import runner
    from matap.experiments.runs import read_scores

    def stop(*args, **kwargs):   # the study ends (a session over, a machine lost) after its last run trained
        raise RuntimeError("stopped before the report")

    runs, out = tmp_path / "runs", tmp_path / "out"
    args = ["compare", "--out", str(out), "--runs", str(runs), "--config", "smoke", "--seeds", "0", "1",
            "train.epochs=2"]
    with monkeypatch.context() as m:
        m.setattr(runner, "compute_used", stop)
        with pytest.raises(RuntimeError, match="stopped before the report"):
            main(args)
    assert not (out / "results.json").exists()
    from matap.config import load_config

    ev = load_config("smoke").eval
    keys = {f"{protocol} {ev.context}->{ev.horizon} T={ev.context + ev.horizon}" for protocol in ("autoencode", "predict")}
    names = sorted(p.name for p in runs.iterdir())
    assert names == ["gru-seed0", "gru-seed1", "matap-seed0", "matap-seed1"]
    for name in names:
        evaluations = read_scores(runs / name)["evaluations"]
        assert set(evaluations) == keys, name
        assert all(entry["epochs"] == 2 for entry in evaluations.values())
    stored = read_scores(runs / "matap-seed0")["evaluations"][f"predict {ev.context}->{ev.horizon} T={ev.context + ev.horizon}"]["result"]

    for name in ("matap-seed0", "gru-seed0"):   # the pictures are drawn from seed 1, which kept its checkpoints
        shutil.rmtree(runs / name / "checkpoints")
    capsys.readouterr()
    assert main(args) == 0
    assert "no checkpoint: its scores.json stands in for it" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    ssim = results["evaluation"]["models"]["matap"]["predict"]["ssim"]
    assert stored["metrics"]["ssim"]["mean"] == ssim["values"][0]
    assert {"samples.png", "matap.gif", "gru.gif"} <= {p.name for p in out.iterdir()}


def test_a_model_without_any_checkpoint_left_gets_a_report_without_its_pictures(tmp_path, capsys):
    import shutil

    runs, out = tmp_path / "runs", tmp_path / "out"
    args = ["compare", "--out", str(out), "--runs", str(runs), "--config", "smoke", "--seeds", "0", "train.epochs=1"]
    assert main(args) == 0
    shutil.rmtree(runs / "matap-seed0" / "checkpoints")   # every seed of MA-TAP lost its checkpoints
    for picture in ("samples.png", "matap.gif", "gru.gif"):
        (out / picture).unlink()
    capsys.readouterr()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "no seed of matap has its checkpoints/last.ckpt any more" in err
    assert (out / "gru.gif").is_file() and (out / "samples.png").is_file()
    assert not (out / "matap.gif").exists()
    report = (out / "report.md").read_text()
    assert "MA-TAP (not drawn: no checkpoint was left)" in report
    assert "[GRU baseline](gru.gif)" in report
