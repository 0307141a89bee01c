"""Exact resume: a run killed with SIGKILL and resumed ends like an uninterrupted one."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from matap.cli import main

SETTINGS = ["train.epochs=3", "train.deterministic=true", "data.train_size=24", "train.seed=7"]


def _history(run: Path) -> list[dict[str, str]]:
    with open(run / "history.csv") as fh:
        return list(csv.DictReader(fh))


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("resume") / "full"
    assert main(["train", "--config", "smoke", "--out", str(run), *SETTINGS]) == 0
    return run


def _assert_same_run(a: Path, b: Path) -> None:
    ha, hb = _history(a), _history(b)
    assert [row["epoch"] for row in hb] == ["1", "2", "3"]  # no duplicated or missing rows
    for ra, rb in zip(ha, hb):
        assert ra.keys() == rb.keys()
        for key in ra:
            assert float(ra[key]) == pytest.approx(float(rb[key]), abs=1e-6), key
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], atol=1e-6, rtol=0, msg=key)


def test_sigkill_then_resume_matches_the_uninterrupted_run(uninterrupted, tmp_path):
    run = tmp_path / "killed"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.Popen([sys.executable, "-m", "matap.cli", "train", "--config", "smoke", "--out", str(run),
                             *SETTINGS], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 300
    # Kill as soon as the first epoch's checkpoint is on disk: somewhere in epoch 2.
    while not (run / "checkpoints" / "last.ckpt").exists():
        assert proc.poll() is None and time.time() < deadline, "training ended before it could be killed"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rows_before = len(_history(run))
    assert rows_before < 3
    assert main(["train", "--resume", str(run)]) == 0
    _assert_same_run(uninterrupted, run)


def test_resume_from_a_finished_epoch_matches(uninterrupted, tmp_path):
    run = tmp_path / "stepwise"
    assert main(["train", "--config", "smoke", "--out", str(run), *SETTINGS[1:], "train.epochs=1"]) == 0
    assert main(["train", "--resume", str(run), "train.epochs=2"]) == 0
    assert main(["train", "--resume", str(run), "train.epochs=3"]) == 0
    _assert_same_run(uninterrupted, run)


def test_non_finite_loss_stops_with_the_epoch_and_step_and_keeps_the_checkpoint(tmp_path, monkeypatch, capsys):
    from matap.objectives import PredictObjective

    original = PredictObjective.__call__
    calls = {"train": 0}

    def poisoned(self, model, x, with_frames=False, progress=1.0):
        out = original(self, model, x, with_frames, progress)
        if torch.is_grad_enabled():
            calls["train"] += 1
            if calls["train"] == 4:  # epoch 2, step 2 (2 training steps per smoke epoch)
                out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(PredictObjective, "__call__", poisoned)
    run = tmp_path / "nan"
    assert main(["train", "--config", "smoke", "--out", str(run), "train.epochs=3"]) == 1
    err = capsys.readouterr().err
    assert "non-finite training loss" in err and "epoch 2, step 2" in err
    assert [row["epoch"] for row in _history(run)] == ["1"]
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 0 and all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())


def test_ctrl_c_exits_cleanly_and_the_run_resumes(tmp_path):
    run = tmp_path / "sigint"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.Popen([sys.executable, "-m", "matap.cli", "train", "--config", "smoke", "--out", str(run),
                             "train.epochs=50"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 300
    while not (run / "checkpoints" / "last.ckpt").exists():
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "Continue with: matap train --resume" in out
    assert "Traceback" not in err
    done = len(_history(run))
    assert main(["train", "--resume", str(run), f"train.epochs={done + 1}"]) == 0
    assert [int(row["epoch"]) for row in _history(run)] == list(range(1, done + 2))
