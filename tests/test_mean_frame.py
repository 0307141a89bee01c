"""Under the paper's protocol every frame is a target: the mean training frame, one frame for every
input, is scored beside the models in Table 1 of `compare --objective paper`."""

import json

import numpy as np
import pytest
import torch

from matap import metrics
from matap.baselines import RECONSTRUCTION_BASELINES, evaluate_baselines, mean_training_frame
from matap.cli import main
from matap.config import load_config
from matap.data import load_split


@pytest.mark.parametrize("protocol", ["reconstruct", "autoencode"])
def test_the_mean_frame_reconstructs_every_frame_alike(protocol):
    cfg = load_config("smoke")
    videos, mean = load_split(cfg.data, "val"), mean_training_frame(cfg)
    scores = evaluate_baselines(videos, mean, protocol, batch_size=3)
    assert list(scores) == list(RECONSTRUCTION_BASELINES)
    frames = torch.from_numpy(np.asarray(videos, dtype=np.float32) / 255)           # (N, T, 64, 64)
    guess = torch.from_numpy(mean).float().expand_as(frames)
    for name, fn in (("bce", metrics.bce), ("ssim", metrics.ssim)):
        expected = fn(guess, frames).double().mean(0)                                # per timestep
        np.testing.assert_allclose(scores["mean_frame"]["metrics"][name]["per_timestep"], expected, rtol=1e-5)
    assert len(scores["black"]["metrics"]["ssim"]["per_timestep"]) == cfg.data.seq_len


def test_paper_objective_report_puts_the_mean_frame_beside_table_1(tmp_path):
    out = tmp_path / "compare"
    assert main(["compare", "--config", "smoke", "--objective", "paper", "--seeds", "0", "--out", str(out),
                 "train.epochs=2"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["split"] == "test" and results["data"].endswith("scores on the test set")
    constant = results["reconstruction_baselines"]
    report = (out / "report.md").read_text()
    for name, label in (("mean_frame", "mean frame"), ("black", "black frames")):
        m = constant[name]
        assert f"| trivial: {label} (no model) | {m['bce']['mean']:.4f} | {m['ssim']['mean']:.4f} |  | 0 |" in report
    assert "**The mean frame.**" in report and "no evidence that either model uses its input" in report
    assert f"BCE term alone {results['table1']['matap']['val_rec']['mean']:.4f}" in report
    assert "(last.ckpt) on the test set" in report


def test_evaluate_reconstruct_shows_the_constant_reconstructions(smoke_run, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(smoke_run), "--protocol", "reconstruct", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert list(result["baselines"]) == list(RECONSTRUCTION_BASELINES)
    cfg = load_config("smoke")
    direct = evaluate_baselines(load_split(cfg.data, "val"), mean_training_frame(cfg), "reconstruct")
    assert result["baselines"]["mean_frame"] == direct["mean_frame"]["metrics"]
    mean = result["baselines"]["mean_frame"]
    assert f"mean frame        {mean['bce']['mean']:.4f}    {mean['ssim']['mean']:.4f}" in printed
    assert "shows no use of its input" in printed
