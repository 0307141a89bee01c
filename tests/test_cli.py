import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from matap.cli import main

MATAP = [sys.executable, "-m", "matap.cli"]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([*MATAP, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def test_help_of_every_command():
    for command in ([], ["data"], ["train"], ["evaluate"], ["predict"], ["inspect"], ["bench"]):
        result = run_cli(*command, "--help")
        assert result.returncode == 0, result.stderr
        assert "usage: matap" in result.stdout


def test_smoke_run_writes_its_folder(smoke_run):
    assert (smoke_run / "config.yaml").is_file()
    assert (smoke_run / "checkpoints" / "last.ckpt").is_file()
    assert (smoke_run / "checkpoints" / "best.ckpt").is_file()
    rows = (smoke_run / "history.csv").read_text().strip().splitlines()
    assert len(rows) == 2 and rows[0].startswith("epoch,")
    assert "val_ssim" in rows[0] and "train_loss" in rows[0]
    ckpt = torch.load(smoke_run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["matap_config"]["data"]["train_size"] == 16  # the resolved config travels with the weights
    assert any(event.name.startswith("events.out.tfevents") for event in (smoke_run / "tb").iterdir())


@pytest.mark.parametrize("protocol", ["reconstruct", "autoencode", "predict", "rollout"])
def test_evaluate_protocols_write_per_timestep_json(smoke_run, tmp_path, protocol, capsys):
    out = tmp_path / "eval.json"
    args = ["evaluate", str(smoke_run), "--protocol", protocol, "--json", str(out)]
    if protocol == "rollout":
        args += ["--horizon", "30", "--num", "3"]
    assert main(args) == 0
    result = json.loads(out.read_text())
    steps = {"reconstruct": 8, "autoencode": 8, "predict": 4, "rollout": 30}[protocol]
    for name in ("bce", "mse", "mse_px", "mae", "mae_px", "ssim", "psnr"):
        per_t = result["metrics"][name]["per_timestep"]
        assert len(per_t) == steps and np.isfinite(per_t).all()
        assert result["metrics"][name]["mean"] == pytest.approx(np.mean(per_t))
    assert "SSIM (tf.image.ssim)" in capsys.readouterr().out


def test_evaluate_on_a_user_file_and_mnist_test_seq(smoke_run, tmp_path, capsys):
    videos = np.random.default_rng(0).integers(0, 256, size=(5, 20, 64, 64), dtype=np.uint8)
    np.save(tmp_path / "mnist_test_seq.npy", videos.transpose(1, 0, 2, 3))
    out = tmp_path / "e.json"
    assert main(["evaluate", str(smoke_run), "--data", str(tmp_path / "mnist_test_seq.npy"), "--context", "10",
                 "--horizon", "10", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["num_sequences"] == 5 and len(result["metrics"]["ssim"]["per_timestep"]) == 10


def test_predict_writes_a_gif(smoke_run, tmp_path):
    from PIL import Image

    gif = tmp_path / "p.gif"
    assert main(["predict", str(smoke_run), "--out", str(gif), "--num", "3"]) == 0
    with Image.open(gif) as image:
        assert image.n_frames == 8
        # two panels (truth, prediction) of 66 px side by side, three sequences stacked, scaled 2x
        assert image.size == (2 * 66 * 2, 3 * 66 * 2)


def test_data_command_generates_and_draws(tmp_path, capsys):
    png, gif = tmp_path / "d.png", tmp_path / "d.gif"
    assert main(["data", "--config", "smoke", "--split", "val", "--png", str(png), "--gif", str(gif), "--num", "2"]) == 0
    assert "shape (8, 8, 64, 64)" in capsys.readouterr().out
    assert png.stat().st_size > 0 and gif.stat().st_size > 0


def test_existing_run_is_not_overwritten(smoke_run, capsys):
    before = (smoke_run / "checkpoints" / "last.ckpt").read_bytes()
    assert main(["train", "--config", "smoke", "--out", str(smoke_run)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (smoke_run / "checkpoints" / "last.ckpt").read_bytes() == before


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--config", "smoke", "--out", "{tmp}/r", "model.memory_size=0"], "memory_size must be >= 1"),
        (["train", "--config", "smoke", "--out", "{tmp}/r", "model.num_heads=3"], "must divide"),
        (["train", "--config", "smoke", "--out", "{tmp}/r", "train.lr=-0.1"], "train.lr must be > 0"),
        (["train", "--config", "smoke", "--out", "{tmp}/r", "train.bogus=1"], "unknown key train.bogus"),
        (["train", "--config", "nope", "--out", "{tmp}/r"], "not found"),
        (["train", "--config", "smoke"], "--out"),
        (["train", "--resume", "{tmp}/none"], "no such run folder"),
        (["evaluate", "{tmp}/none"], "no such run folder or checkpoint"),
        (["evaluate", "{run}", "--data", "{tmp}/missing.npy"], "no such file"),
        (["evaluate", "{run}", "--context", "0"], "must be >= 1"),
        (["predict", "{run}", "--out", "{tmp}/x.png"], ".gif"),
        (["evaluate", "{run}", "--protocol", "dream"], "invalid choice"),
        (["data", "--file", "{tmp}/missing.npy"], "no such file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(smoke_run, tmp_path, args, message):
    args = [a.format(tmp=tmp_path, run=smoke_run) for a in args]
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("matap"), result.stderr
    assert "Traceback" not in result.stderr
    assert message in lines[0]
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_train_then_resume_extends_the_history(tmp_path):
    run = tmp_path / "r"
    assert main(["train", "--config", "smoke", "--out", str(run), "model.name=gru"]) == 0
    assert main(["train", "--resume", str(run), "train.epochs=2"]) == 0
    rows = (run / "history.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]
    assert main(["train", "--resume", str(run), "model.memory_size=3"]) == 2
