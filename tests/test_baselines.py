"""The trivial baselines (all-black frames, the last context frame, the mean training frame):
their frames and scores against hand-computed values, `matap evaluate` printing and writing
them, and the experiment reports with and without them."""

import json
import math

import numpy as np
import pytest
import torch

from matap.baselines import (
    BASELINES,
    evaluate_baselines,
    format_comparison,
    mean_training_frame,
    predict_frames,
    verdicts,
    worse_than_black,
)
from matap.cli import main
from matap.config import load_config
from matap.errors import MatapError
from matap.experiments import drift
from matap.experiments.report import data_description, record_baselines, render_folder
from matap.experiments.stats import summary

PIXELS = 64 * 64
BRIGHT, FIFTH, TWO_FIFTHS = 255, 51, 102  # 1.0, 0.2 and 0.4 once divided by 255


def tiny_video() -> np.ndarray:
    """uint8 (1, 4, 64, 64): two context frames, then two frames to predict, a few bright pixels each."""
    video = np.zeros((1, 4, 64, 64), dtype=np.uint8)
    video[0, 0, 20, 20] = BRIGHT
    video[0, 1, 20, 22] = BRIGHT  # the last context frame: a dot, and a dim pixel
    video[0, 1, 40, 40] = FIFTH
    video[0, 2, 20, 24] = BRIGHT  # first target: the dot moved on, the dim pixel gone
    video[0, 3, 20, 26] = BRIGHT  # second target: the dot further on, the dim pixel back brighter
    video[0, 3, 40, 40] = TWO_FIFTHS
    return video


def mean_frame() -> np.ndarray:
    frame = np.zeros((64, 64))
    frame[32, 32] = 0.5
    return frame


def gaussian_window() -> np.ndarray:
    """The 11 weights of tf.image.ssim's Gaussian (sigma 1.5), normalised."""
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    return g / g.sum()


def ssim_of_black_frame(pixels: list[tuple[int, int, float]]) -> float:
    """SSIM of an all-black prediction against a target that is black but for isolated pixels (r, c, value)
    more than 10 apart, by hand: with x = 0 every window is c1 / (mu_y^2 + c1) * c2 / (var_y + c2); a window
    without a bright pixel scores 1, one holding a pixel of value v at window weight w has mu_y = w v and
    var_y = w v^2 - (w v)^2. The frame's SSIM is the mean over the 54 x 54 valid windows."""
    c1, c2 = 0.01**2, 0.03**2
    g = gaussian_window()
    total = 54 * 54.0
    for r, c, v in pixels:
        for i in range(r - 10, r + 1):
            for j in range(c - 10, c + 1):
                w = g[r - i] * g[c - j]
                total += c1 / ((w * v) ** 2 + c1) * c2 / (w * v**2 - (w * v) ** 2 + c2) - 1
    return total / (54 * 54)


def test_each_baseline_predicts_its_frames():
    x = torch.from_numpy(tiny_video()).float().div(255).unsqueeze(2)  # (1, 4, 1, 64, 64)
    context = x[:, :2]
    black = predict_frames("black", context, 3, mean_frame())
    last = predict_frames("last_frame", context, 3, mean_frame())
    mean = predict_frames("mean_frame", context, 3, mean_frame())
    for frames in (black, last, mean):
        assert frames.shape == (1, 3, 1, 64, 64)
    assert torch.count_nonzero(black) == 0
    for t in range(3):
        assert torch.equal(last[:, t], x[:, 1])
        assert torch.equal(mean[0, t, 0], torch.from_numpy(mean_frame()).float())


def test_bad_baseline_input_is_a_one_line_error():
    context = torch.zeros(2, 3, 1, 64, 64)
    with pytest.raises(MatapError, match="unknown baseline"):
        predict_frames("blur", context, 2, mean_frame())
    with pytest.raises(MatapError, match="mean frame"):
        predict_frames("mean_frame", context, 2, np.zeros((32, 32)))
    with pytest.raises(MatapError, match="predict, rollout, reconstruct or autoencode"):
        evaluate_baselines(tiny_video(), mean_frame(), "denoise", 2, 2)


def test_scores_match_hand_computed_values():
    scores = evaluate_baselines(tiny_video(), mean_frame(), "predict", context=2, horizon=2, batch_size=1)
    assert list(scores) == list(BASELINES)
    for result in scores.values():
        assert (result["protocol"], result["num_sequences"], result["context"], result["horizon"]) == \
            ("predict", 1, 2, 2)
    black, last, mean = (scores[name]["metrics"] for name in BASELINES)

    # All-black frames: the error is the target itself.
    black_mse = [1.0, 1.0 + 0.4**2]  # sum of squared target pixels
    assert black["mse"]["per_timestep"] == pytest.approx(black_mse, rel=1e-6)
    assert black["mse_px"]["per_timestep"] == pytest.approx([m / PIXELS for m in black_mse], rel=1e-6)
    assert black["mae"]["per_timestep"] == pytest.approx([1.0, 1.4], rel=1e-6)
    assert black["psnr"]["per_timestep"] == pytest.approx([10 * math.log10(PIXELS / m) for m in black_mse], rel=1e-6)
    assert black["mse"]["mean"] == pytest.approx(np.mean(black_mse), rel=1e-6)
    eps = 1e-7  # the prediction 0 is clipped to eps, as Keras does
    bce = [(-sum(y * math.log(eps) + (1 - y) * math.log(1 - eps) for y in ys) - (PIXELS - len(ys)) * math.log(1 - eps))
           / PIXELS for ys in ([1.0], [1.0, 0.4])]
    assert black["bce"]["per_timestep"] == pytest.approx(bce, rel=1e-4)
    assert black["ssim"]["per_timestep"] == pytest.approx(
        [ssim_of_black_frame([(20, 24, 1.0)]), ssim_of_black_frame([(20, 26, 1.0), (40, 40, 0.4)])], rel=1e-5)

    # The last context frame (dot at column 22, 0.2 at (40, 40)) against each target.
    assert last["mse"]["per_timestep"] == pytest.approx([1 + 1 + 0.2**2, 1 + 1 + 0.2**2], rel=1e-6)
    assert last["mae"]["per_timestep"] == pytest.approx([1 + 1 + 0.2, 1 + 1 + 0.2], rel=1e-6)

    # The mean frame (0.5 at (32, 32)) against each target.
    assert mean["mse"]["per_timestep"] == pytest.approx([1 + 0.25, 1 + 0.4**2 + 0.25], rel=1e-6)
    assert mean["mae"]["per_timestep"] == pytest.approx([1 + 0.5, 1 + 0.4 + 0.5], rel=1e-6)


def test_a_still_video_is_predicted_exactly_by_its_last_frame():
    video = np.repeat(tiny_video()[:, 1:2], 5, axis=1)  # (1, 5, 64, 64): the same frame throughout
    last = evaluate_baselines(video, mean_frame(), "rollout", context=2, horizon=3)["last_frame"]["metrics"]
    assert last["mse"]["per_timestep"] == [0.0, 0.0, 0.0]
    assert last["ssim"]["per_timestep"] == pytest.approx([1.0, 1.0, 1.0], abs=1e-6)
    assert last["psnr"]["per_timestep"] == pytest.approx([100.0] * 3)  # MSE floored at 1e-10


def test_mean_training_frame_averages_every_frame_of_the_first_sequences(tmp_path):
    train = np.zeros((3, 2, 64, 64), dtype=np.uint8)
    train[0, 0, 0, 0] = BRIGHT  # 1 of the 4 frames of the first two sequences
    train[:, :, 1, 1] = FIFTH  # every frame
    train[2, :, 5, 5] = BRIGHT  # only the third sequence, left out below
    np.save(tmp_path / "train.npy", train)
    cfg = load_config("smoke", ["data.source=array", f"data.train_path={tmp_path / 'train.npy'}",
                                f"data.val_path={tmp_path / 'train.npy'}", "data.layout=NT"])
    frame = mean_training_frame(cfg, max_sequences=2, chunk=1)
    assert frame.shape == (64, 64)
    expected = np.zeros((64, 64))
    expected[0, 0], expected[1, 1] = 0.25, 0.2
    np.testing.assert_allclose(frame, expected, rtol=1e-12, atol=0)
    everything = mean_training_frame(cfg)
    assert everything[5, 5] == pytest.approx(2 / 6) and everything[0, 0] == pytest.approx(1 / 6)


def comparison_result(model_ssim: float, model_mse: float) -> dict:
    def metrics(ssim: float, mse: float) -> dict:
        values = {"ssim": ssim, "mse": mse, "psnr": 14.0, "bce": 0.2}
        return {name: {"mean": v, "per_timestep": [v, v]} for name, v in values.items()}

    return {"metrics": metrics(model_ssim, model_mse),
            "baselines": {"black": metrics(0.72, 174.0), "last_frame": metrics(0.6, 290.0),
                          "mean_frame": metrics(0.17, 154.0)}}


@pytest.mark.parametrize("ssim, mse, label", [
    (0.80, 150.0, ""),
    (0.50, 150.0, "worse than black frames on SSIM"),
    (0.80, 180.0, "worse than black frames on MSE"),
    (0.50, 180.0, "worse than black frames"),
    (0.72, 174.0, "worse than black frames"),  # a tie does not beat the baseline
])
def test_a_model_not_beating_black_frames_is_labelled(ssim, mse, label):
    assert worse_than_black({"ssim": ssim, "mse": mse}, {"ssim": 0.72, "mse": 174.0}) == label
    first_row = format_comparison(comparison_result(ssim, mse)).splitlines()[2]
    assert first_row.startswith("model" + (f" ({label})" if label else "") + "  ")


def test_comparison_table_and_verdict_lines():
    text = format_comparison(comparison_result(0.80, 180.0))
    lines = text.splitlines()
    assert [line.split("  ")[0] for line in lines[3:6]] == ["black frames", "last frame", "mean frame"]
    assert "beats black frames: SSIM yes (0.800 > 0.720), MSE no (180.0 > 174.0)" in lines
    assert "beats mean frame: SSIM yes (0.800 > 0.170), MSE no (180.0 > 154.0)" in lines
    assert verdicts({"ssim": 0.5, "mse": 150.0}, {"ssim": 0.72, "mse": 174.0},
                    {"ssim": [0.4, 0.8], "mse": [150.0, 190.0]}) == \
        "SSIM no (0.500 < 0.720; 1 of 2 seeds), MSE yes (150.0 < 174.0; 1 of 2 seeds)"


def test_evaluate_prints_and_writes_the_baselines(smoke_run, tmp_path, capsys):
    from matap.data import generated_split

    out = tmp_path / "eval.json"
    assert main(["evaluate", str(smoke_run), "--protocol", "predict", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    for row in ("black frames", "last frame", "mean frame", "beats black frames: SSIM", "beats last frame: SSIM",
                "beats mean frame: SSIM"):
        assert row in printed
    result = json.loads(out.read_text())
    assert list(result["baselines"]) == list(BASELINES)
    for metrics in result["baselines"].values():
        assert metrics.keys() == result["metrics"].keys()
        assert all(len(m["per_timestep"]) == 4 for m in metrics.values())
    # Scored on the run's own validation set (smoke: 4 -> 4) and its training data's mean frame.
    cfg = load_config("smoke", [])
    target = generated_split(cfg.data, "val")[:, 4:8].astype(np.float64) / 255  # (N, 4, 64, 64)
    assert result["baselines"]["black"]["mse"]["per_timestep"] == pytest.approx(
        (target**2).sum(axis=(2, 3)).mean(0), rel=1e-5)
    assert result["baselines"]["mean_frame"]["mse"]["per_timestep"] == pytest.approx(
        ((target - mean_training_frame(cfg)) ** 2).sum(axis=(2, 3)).mean(0), rel=1e-5)
    # SSIM split by window: black frames get every empty window whole; the two parts add up to SSIM.
    import torch
    from torch.nn.functional import max_pool2d

    empty = (max_pool2d(torch.from_numpy(target).flatten(0, 1)[:, None], 11, stride=1) == 0).double()
    assert result["baselines"]["black"]["ssim_empty"]["per_timestep"] == pytest.approx(
        empty.view(len(target), 4, -1).mean(-1).mean(0).numpy(), rel=1e-5)
    for metrics in [result["metrics"], *result["baselines"].values()]:
        assert [a + b for a, b in zip(metrics["ssim_empty"]["per_timestep"], metrics["ssim_digits"]["per_timestep"])] \
            == pytest.approx(metrics["ssim"]["per_timestep"], rel=1e-5)
    assert "SSIM split by window" in printed


def test_evaluate_without_baselines(smoke_run, tmp_path, capsys):
    for protocol in ("predict", "autoencode"):
        out = tmp_path / "eval.json"
        assert main(["evaluate", str(smoke_run), "--protocol", protocol, "--no-baselines", "--json", str(out)]) == 0
        printed = capsys.readouterr().out
        assert "beats black frames" not in printed and "against constant predictions" not in printed
        assert "baselines" not in json.loads(out.read_text())


def test_autoencode_is_shown_beside_constant_frames(smoke_run, tmp_path, capsys):
    from matap.data import generated_split

    out = tmp_path / "eval.json"
    assert main(["evaluate", str(smoke_run), "--protocol", "autoencode", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert list(result["baselines"]) == ["black", "mean_frame"]
    cfg = load_config("smoke", [])
    frames = generated_split(cfg.data, "val").astype(np.float64) / 255             # every frame is a target
    black = result["baselines"]["black"]
    assert black["mse"]["per_timestep"] == pytest.approx((frames**2).sum(axis=(2, 3)).mean(0), rel=1e-5)
    assert "against constant predictions of every frame" in printed
    assert f"{'black frames':<14}{black['bce']['mean']:>10.4f}{black['ssim']['mean']:>10.4f}" in printed


def drift_results(context: int = 4, horizon: int = 12) -> dict:
    """A drift results.json as the smoke preset would write it, with designed model curves."""
    cfg = load_config("smoke", [])
    steps = np.arange(horizon)
    curves = {"matap": {"ssim": [list(0.5 - 0.01 * steps), list(0.52 - 0.01 * steps)],
                        "mse": [list(150.0 + steps), list(152.0 + steps)], "bce": [[0.2] * horizon] * 2},
              "gru": {"ssim": [list(0.4 - 0.01 * steps)] * 2, "mse": [list(140.0 + steps)] * 2,
                      "bce": [[0.3] * horizon] * 2}}
    results = {"kind": "drift", "command": "matap drift --config smoke", "preset": "smoke", "overrides": [],
               "objective": cfg.objective.name, "seeds": [0, 1], "matap_version": "test", "written": "now",
               "machine": {"cpu": "cpu", "cores": 2, "torch_threads": 2, "torch": "2", "python": "3", "gpu": None},
               "data": data_description(cfg), "train": {}, "runs_seconds": 1.0, "num_runs": 4, "num_trained": 0,
               "train_seconds": 0.0, "wall_seconds": 1.0,
               "files": {"drift": "drift.png", "matap": "matap.gif", "gru": "gru.gif", "samples": "samples.png"}}
    results.update(drift.analyse(curves, context, horizon, cfg.data.seq_len))
    return results


def test_a_report_renders_without_baselines_and_gains_them(tmp_path):
    out = tmp_path / "drift"
    out.mkdir()
    results = drift_results()
    (out / "results.json").write_text(json.dumps(results))
    report = render_folder(out).read_text()
    assert "baselines not recorded" in report.lower()
    assert "trivial: black frames" not in report and "worse than black frames" not in report

    assert main(["report", str(out), "--baselines"]) == 0
    recorded = json.loads((out / "results.json").read_text())
    assert {k: v for k, v in recorded.items() if k != "baselines"} == results  # the model numbers are kept
    assert list(recorded["baselines"]) == list(BASELINES)
    assert all(len(recorded["baselines"][b]["ssim"]["per_timestep"]) == 12 for b in BASELINES)
    assert (out / "drift.png").stat().st_size > 0
    report = (out / "report.md").read_text()
    assert "baselines not recorded" not in report.lower()
    black = recorded["baselines"]["black"]
    ssim_row = next(line for line in report.splitlines() if line.startswith("| trivial: black frames"))
    assert f"| {black['ssim']['per_timestep'][0]:.4f} |" in ssim_row
    # Designed curves: both models are far below black frames on SSIM and better on MSE only when below it.
    assert black["ssim"]["mean"] > 0.5
    assert "| MA-TAP (worse than black frames" in report
    assert "against black frames: **no model is better on SSIM**" in report


def test_ablate_report_shows_baseline_rows_and_labels():
    from matap.experiments.ablate import render

    variants = {name: {"description": name, "overrides": [], **{k: summary([0.1, 0.2]) for k in
                       ("val_bce", "val_loss", "val_ssim", "val_ssim_mean_over_epochs")},
                       "predict_ssim": summary(ssim), "predict_mse": summary(mse)}
                for name, ssim, mse in (("k5", [0.8, 0.9], [100.0, 110.0]), ("gru", [0.3, 0.4], [100.0, 110.0]))}
    results = {**drift_results(), "kind": "ablate", "variants": variants, "frame_term": "val_next", "epochs": 1,
               "evaluation": {"context": 4, "horizon": 4}, "headline_ssim": "val_ssim_next",
               "files": {"figure": "ablate.png"}}
    assert "baselines not recorded" in render(results).lower()
    def metrics(ssim: float, mse: float) -> dict:
        return {"ssim": {"mean": ssim, "per_timestep": [ssim]}, "mse": {"mean": mse, "per_timestep": [mse]}}

    results["baselines"] = {"black": metrics(0.7, 120.0), "last_frame": metrics(0.6, 200.0),
                            "mean_frame": metrics(0.2, 90.0)}
    report = render(results)
    assert "| k5 | MA-TAP, K = 5 |" in report  # beats black frames on both: no label; the variant's description
    assert "| gru (worse than black frames on SSIM) | no memory (the GRU baseline) |" in report
    assert "| trivial: black frames | no model |  |  |  | 0.7000 | 120.0 |" in report
    assert "against black frames: **gru is not better on SSIM**; every model is better on MSE." in report
    assert "against mean frame: every model is better on SSIM; **no model is better on MSE** (best: k5, 105.0" in report


def test_baselines_refuse_a_preset_that_now_gives_other_data():
    results = drift_results()
    results["data"] = results["data"].replace("16 train", "17 train")
    with pytest.raises(MatapError, match="other data"):
        record_baselines(results)
