"""Exact resume: a run killed with SIGKILL and resumed ends like an uninterrupted one."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
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
    # The kill may land between last.ckpt and history.csv: resume writes the history from the checkpoint.
    rows_before = len(_history(run)) if (run / "history.csv").exists() else 0
    assert rows_before < 3
    assert main(["train", "--resume", str(run)]) == 0
    _assert_same_run(uninterrupted, run)


def test_sigkill_within_an_epoch_then_resume_matches_the_uninterrupted_run(uninterrupted, tmp_path):
    """A checkpoint every 2 optimizer steps (3 steps an epoch); the run kills itself (SIGKILL) as step 5 begins,
    the second step of epoch 2, so last.ckpt holds epoch 2 up to its first step."""
    run = tmp_path / "killed"
    args = ["train", "--config", "smoke", "--out", str(run), *SETTINGS, "train.checkpoint_every=2"]
    code = ("import os, signal, sys\n"
            "from matap.training.module import MatapModule\n"
            "step = MatapModule.training_step\n"
            "def killed_in_step_5(self, batch, batch_idx):\n"
            "    if self.global_step == 4:\n"
            "        os.kill(os.getpid(), signal.SIGKILL)\n"
            "    return step(self, batch, batch_idx)\n"
            "MatapModule.training_step = killed_in_step_5\n"
            "from matap.cli import main\n"
            f"sys.exit(main({args!r}))\n")
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert (ckpt["epoch"], ckpt["global_step"]) == (1, 4)  # within epoch 2 (counted from 0 by Lightning)
    assert [row["epoch"] for row in _history(run)] == ["1"]
    assert main(["train", "--resume", str(run)]) == 0
    _assert_same_run(uninterrupted, run)


def test_the_loader_continues_an_epoch_where_its_state_left_it():
    from matap.data import make_loader

    videos = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 64, 64), np.uint8)
    first = [b[:, 0, 0, 0].tolist() for b in make_loader(videos, 3, shuffle=True, seed=4)]
    loader = make_loader(videos, 3, shuffle=True, seed=4)
    batches = iter(loader)
    seen = [next(batches)[:, 0, 0, 0].tolist() for _ in range(2)]
    state = loader.state_dict()
    assert seen == first[:2] and state == {"epoch": 0, "batches": 2}
    resumed = make_loader(videos, 3, shuffle=True, seed=4)
    resumed.load_state_dict(state)
    assert [b[:, 0, 0, 0].tolist() for b in resumed] == first[2:]  # the rest of epoch 0, nothing twice
    assert len(resumed) == 4 and resumed.state_dict() == {"epoch": 0, "batches": 4}
    assert [b[:, 0, 0, 0].tolist() for b in resumed] == first  # the next iteration is whole again
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(1)  # a state of epoch 0 does not cut epoch 1 short
    assert sum(len(b) for b in resumed) == 10


def test_checkpoints_within_an_epoch_follow_the_step_count_or_the_clock(tmp_path):
    from types import SimpleNamespace

    from matap.training.run import RunCheckpoint

    trainer = SimpleNamespace(num_training_batches=5, global_step=0,
                              strategy=SimpleNamespace(broadcast=lambda value, src: value))
    by_steps = RunCheckpoint(tmp_path, every_steps=2)
    due = []
    for batch_idx in range(5):
        trainer.global_step = 5 + batch_idx + 1  # the second epoch: steps 6..10
        due.append(by_steps._due(trainer, batch_idx))
    assert due == [True, False, True, False, False]  # steps 6 and 8; never the epoch's last (its end saves)
    by_clock = RunCheckpoint(tmp_path, every_seconds=600)
    assert not by_clock._due(trainer, 0)
    by_clock._last_save -= 601
    assert by_clock._due(trainer, 0) and not by_clock._due(trainer, 4)
    assert not RunCheckpoint(tmp_path)._due(trainer, 0)


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


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_exits_as_interrupted_and_the_run_resumes(tmp_path, signum):
    run = tmp_path / signum.name
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.Popen([sys.executable, "-m", "matap.cli", "train", "--config", "smoke", "--out", str(run),
                             "train.epochs=50"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 300
    while not (run / "checkpoints" / "last.ckpt").exists():
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "Continue with: matap train --resume" in out
    assert "Traceback" not in err
    done = len(_history(run))
    assert main(["train", "--resume", str(run), f"train.epochs={done + 1}"]) == 0
    assert [int(row["epoch"]) for row in _history(run)] == list(range(1, done + 2))
