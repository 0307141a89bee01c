"""The Python API as the README shows it: load a run, predict a user's videos, score them."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import matap
import matap.metrics
from matap.cli import main
from matap.data import generate
from matap.data.digits import load_digits

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_snippet() -> str:
    """The first Python block of the README's "Python API" section."""
    section = README.read_text().split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def user_folder(smoke_run, tmp_path, monkeypatch) -> Path:
    """A folder as the snippet expects it: runs/x (a trained run) and videos.npy (uint8, 20 frames)."""
    shutil.copytree(smoke_run, tmp_path / "runs" / "x")
    np.save(tmp_path / "videos.npy", generate(load_digits("mnist", "val"), 3, "val", range(3), seq_len=20))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_readme_snippet_runs_and_scores_as_evaluate_does(user_folder, capsys):
    scope: dict = {}
    exec(compile(readme_snippet(), "README.md", "exec"), scope)
    printed = capsys.readouterr().out
    assert re.fullmatch(r"SSIM 0\.\d{3}\n", printed), printed
    ssim = scope["ssim"]
    assert ssim.shape == (3, 10) and not ssim.requires_grad
    assert main(["evaluate", "runs/x", "--data", "videos.npy", "--context", "10", "--horizon", "10",
                 "--no-baselines", "--json", "e.json"]) == 0
    per_frame = json.loads((user_folder / "e.json").read_text())["metrics"]["ssim"]["per_timestep"]
    np.testing.assert_allclose(ssim.mean(0).numpy(), per_frame, atol=1e-6)


def test_load_returns_the_model_ready_to_predict(smoke_run):
    model = matap.load(smoke_run)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # folded
    assert model.config.model.name == "matap" and model.checkpoint.name == "best.ckpt"
    assert matap.load(smoke_run, which="last").checkpoint.name == "last.ckpt"


def test_the_model_takes_frames_as_users_hold_them(smoke_run):
    model = matap.load(smoke_run)
    videos = torch.from_numpy(generate(load_digits("mnist", "val"), 0, "val", range(2), seq_len=6))  # uint8 (2, 6, 64, 64)
    frames = videos.unsqueeze(2).float() / 255                                                     # (2, 6, 1, 64, 64)
    expected = model.rollout(frames[:, :4], 2)
    assert expected.shape == (2, 2, 1, 64, 64) and 0 <= expected.min() and expected.max() <= 1
    for form in (videos, videos.unsqueeze(2), frames[:, :, 0]):
        torch.testing.assert_close(model.rollout(form[:, :4], 2), expected)
        torch.testing.assert_close(model(form).z_next, model(frames).z_next)
    score = matap.metrics.ssim(expected, videos[:, 4:])
    torch.testing.assert_close(score, matap.metrics.ssim(expected, frames[:, 4:]))
    assert score.shape == (2, 2)
