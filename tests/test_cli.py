import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from matap.cli import main
from matap.errors import MatapError

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


def test_evaluate_uint8_scores_the_predictions_as_written_images(smoke_run, tmp_path, capsys):
    from matap.checkpoint import load_model
    from matap.evaluation import as_uint8, evaluate
    from matap.experiments.report import split_videos
    from matap.metrics import mse_per_frame

    floats, rounded = tmp_path / "floats.json", tmp_path / "uint8.json"
    assert main(["evaluate", str(smoke_run), "--split", "test", "--json", str(floats)]) == 0
    assert main(["evaluate", str(smoke_run), "--split", "test", "--uint8", "--json", str(rounded)]) == 0
    assert "predictions scored as uint8 images" in capsys.readouterr().out
    a, b = json.loads(floats.read_text()), json.loads(rounded.read_text())
    assert "predictions" not in a and b["predictions"] == "uint8"
    assert a["metrics"]["mse"]["mean"] != b["metrics"]["mse"]["mean"]
    # all-black frames are exact in uint8; the mean frame is not
    assert b["baselines"]["black"]["mse"] == a["baselines"]["black"]["mse"]
    # what --uint8 scores: the rollout rounded to steps of 1/255
    model, cfg, _ = load_model(smoke_run, "best")
    videos = np.array(split_videos(cfg, "test", 8))
    x = torch.from_numpy(videos).float().div(255).unsqueeze(2)
    with torch.no_grad():
        pred = as_uint8(model.eval().rollout(x[:, :4], 4))
    assert torch.equal(pred * 255, (pred * 255).round())
    expected = mse_per_frame(pred, x[:, 4:8]).mean().item()
    assert b["metrics"]["mse"]["mean"] == pytest.approx(expected, rel=1e-4)
    with pytest.raises(MatapError, match="does not score frames"):
        evaluate(model, videos, "latent", 4, 4, uint8=True)



def test_evaluate_and_predict_roll_out_with_the_feedback_asked_for(smoke_run, tmp_path, monkeypatch):
    """--feedback changes what is fed back after the first predicted frame, not that frame itself;
    without it the run's model.rollout_feedback (latent in the smoke preset) is used."""
    mse = {}
    for feedback in ("latent", "frame", None):
        out = tmp_path / f"{feedback}.json"
        asked = ["--feedback", feedback] if feedback else []
        assert main(["evaluate", str(smoke_run), "--no-baselines", "--json", str(out), *asked]) == 0
        result = json.loads(out.read_text())
        assert result["feedback"] == (feedback or "latent")
        mse[feedback] = result["metrics"]["mse"]["per_timestep"]
    assert mse[None] == mse["latent"]
    assert mse["frame"][0] == pytest.approx(mse["latent"][0], rel=1e-5)
    assert mse["frame"][1:] != mse["latent"][1:]              # bit for bit, as the repeated default run is
    from matap.models.video_model import LatentVideoModel

    seen, rollout = [], LatentVideoModel.rollout
    monkeypatch.setattr(LatentVideoModel, "rollout",
                        lambda model, *args, **kwargs: seen.append(model.feedback) or rollout(model, *args, **kwargs))
    for feedback in ("frame", "latent"):
        assert main(["predict", str(smoke_run), "--png", str(tmp_path / f"{feedback}.png"), "--num", "2",
                     "--feedback", feedback]) == 0
    assert main(["predict", str(smoke_run), "--png", str(tmp_path / "default.png"), "--num", "2"]) == 0
    assert seen == ["frame", "latent", "latent"]


def _videos(n: int, t: int) -> np.ndarray:
    from matap.data import generate
    from matap.data.digits import load_digits

    return generate(load_digits("mnist", "val"), 0, "val", range(n), seq_len=t)


def test_evaluate_on_a_user_file_in_either_layout(smoke_run, tmp_path):
    videos = _videos(5, 20)
    np.save(tmp_path / "mnist_test_seq.npy", videos.transpose(1, 0, 2, 3))
    np.save(tmp_path / "videos.npy", videos)
    scores = []
    for name in ("mnist_test_seq.npy", "videos.npy"):
        out = tmp_path / f"{name}.json"
        assert main(["evaluate", str(smoke_run), "--data", str(tmp_path / name), "--context", "10",
                     "--horizon", "10", "--no-baselines", "--json", str(out)]) == 0
        result = json.loads(out.read_text())
        assert result["num_sequences"] == 5 and len(result["metrics"]["ssim"]["per_timestep"]) == 10
        scores.append(result["metrics"])
    assert scores[0] == scores[1]


def test_a_file_whose_layout_the_content_cannot_tell_needs_layout(smoke_run, tmp_path):
    static = np.repeat(_videos(3, 1), 8, axis=1)  # three still videos of 8 frames
    np.save(tmp_path / "still.npy", static)
    for command in (["evaluate", str(smoke_run)], ["predict", str(smoke_run), "--out", str(tmp_path / "p.gif")],
                    ["data"]):
        args = [*command, "--file" if command == ["data"] else "--data", str(tmp_path / "still.npy")]
        result = run_cli(*args)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("matap: error:") and "--layout NT" in lines[0], lines
        assert main([*args, "--layout", "NT"]) == 0
    assert (tmp_path / "p.gif").is_file()


@pytest.mark.parametrize("layout", ["NT", "TN"])
def test_data_save_reads_back_as_the_same_videos(tmp_path, layout, capsys):
    from matap.config import load_config
    from matap.data import load_split, load_videos

    out = tmp_path / "mnist_test_seq_x.npy"
    assert main(["data", "--config", "smoke", "--split", "test", "--save", str(out), "--save-layout", layout,
                 "data.val_size=6"]) == 0
    assert np.load(out).shape[:2] == ((6, 8) if layout == "NT" else (8, 6))  # 6 sequences of 8 frames
    np.testing.assert_array_equal(load_videos(out), load_split(load_config("smoke", ["data.val_size=6"]).data, "test"))
    assert main(["data", "--file", str(out)]) == 0
    assert "shape (6, 8, 64, 64) (N, T, H, W)" in capsys.readouterr().out


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
    err = capsys.readouterr().err
    assert "already holds a run" in err and f"matap train --resume {smoke_run}" in err and "--overwrite" in err
    assert (smoke_run / "checkpoints" / "last.ckpt").read_bytes() == before


def test_the_library_names_no_cli_flag_for_an_existing_run(smoke_run):
    from matap.config import load_config
    from matap.training import train

    with pytest.raises(MatapError, match="already holds a run") as caught:
        train(load_config("smoke"), smoke_run)
    message = str(caught.value).replace(str(smoke_run), "RUN")
    assert "--" not in message and "overwrite=True" in message


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
        (["predict", "{run}", "--out", "{tmp}/x.jpg"], "give a .gif, .mp4 or .png"),
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


@pytest.mark.parametrize("name, shape", [("matap", "(d=64, K=10, heads=4)"), ("gru", "(d=64)")])
def test_the_run_header_names_only_what_the_cell_has(name, shape, capsys):
    from matap.cli import _print_config_summary
    from matap.config import load_config

    _print_config_summary(load_config("smoke", [f"model.name={name}"]))
    assert capsys.readouterr().out.startswith(f"model {name} {shape}  objective ")
