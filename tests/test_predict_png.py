"""`matap predict --png`: the labelled context | truth | prediction picture and its SSIM plot."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from matap import viz
from matap.cli import main
from matap.errors import MatapError

N_VIDEOS, LENGTH = 3, 9          # the --data file: 3 videos of 9 frames
NUM, CONTEXT, HORIZON = 2, 3, 4  # shown: the first 2 videos, frames 1-3 as context, 4-7 predicted


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, Path]:
    """Seeded uint8 videos (N, T, 64, 64) in a .npy file: bright squares on noise, different in every frame."""
    rng = np.random.default_rng(7)
    v = rng.integers(0, 60, size=(N_VIDEOS, LENGTH, 64, 64), dtype=np.uint8)
    for n in range(N_VIDEOS):
        for t in range(LENGTH):
            y, x = rng.integers(0, 48, size=2)
            v[n, t, y: y + 16, x: x + 16] = rng.integers(150, 256)
    path = tmp_path_factory.mktemp("data") / "videos.npy"
    np.save(path, v)
    return v, path


def _cell(image: np.ndarray, layout: viz.PredictionLayout, seq: int, row: int, frame: int) -> np.ndarray:
    """Decode one frame of the picture back to (64, 64) uint8, checking that it is grey and scaled by
    whole pixels (every SCALE x SCALE block one value)."""
    left, top, right, bottom = layout.cell(seq, row, frame)
    tile = image[top:bottom, left:right]
    assert tile.shape == (layout.tile_h, layout.tile_w, 3)
    assert (tile == tile[..., :1]).all(), "frames are drawn in grey"
    frame_px = tile[:: viz.SCALE, :: viz.SCALE, 0]
    assert (np.repeat(np.repeat(frame_px, viz.SCALE, 0), viz.SCALE, 1) == tile[..., 0]).all(), "nearest-neighbour 2x"
    return frame_px


def _rollout(run: Path, clip: np.ndarray, context: int, horizon: int) -> np.ndarray:
    """The model's own rollout (the unfused model of the best checkpoint) as uint8 (N, horizon, 64, 64)."""
    from matap.checkpoint import load_model
    from matap.data import to_frames

    model, _, _ = load_model(run, "best")
    with torch.inference_mode():
        pred = model.rollout(to_frames(torch.from_numpy(clip))[:, :context], horizon)[:, :, 0].float().numpy()
    return pred


@pytest.fixture(scope="module")
def picture(smoke_run: Path, videos, tmp_path_factory: pytest.TempPathFactory):
    v, path = videos
    png = tmp_path_factory.mktemp("png") / "pred.png"
    args = ["predict", str(smoke_run), "--data", str(path), "--layout", "NT", "--png", str(png), "--num", str(NUM),
            "--context", str(CONTEXT), "--horizon", str(HORIZON)]
    assert main(args) == 0
    with Image.open(png) as image:
        assert image.format == "PNG"
        pixels = np.asarray(image.convert("RGB"))
    return pixels, png, args


def test_png_size_follows_the_layout(picture):
    pixels, _, _ = picture
    layout = viz.PredictionLayout(NUM, CONTEXT, HORIZON, 64, 64, plot=True)
    expected_w = viz.MARGIN + viz.LABEL_W + (CONTEXT + HORIZON) * (64 * viz.SCALE + viz.GRID) + viz.GRID + viz.MARGIN
    block_h = viz.HEADER_H + 3 * (64 * viz.SCALE + viz.GRID) + viz.GRID
    expected_h = (viz.MARGIN + NUM * block_h + (NUM - 1) * viz.BLOCK_GAP + viz.PLOT_GAP + viz.PLOT_H + viz.MARGIN)
    assert (layout.width, layout.height) == (expected_w, expected_h)
    assert pixels.shape == (expected_h, expected_w, 3)


def test_png_rows_show_context_truth_and_the_models_rollout(picture, videos, smoke_run):
    pixels, _, _ = picture
    v, _ = videos
    layout = viz.PredictionLayout(NUM, CONTEXT, HORIZON, 64, 64)
    clip = v[:NUM, : CONTEXT + HORIZON]
    pred = _rollout(smoke_run, clip, CONTEXT, HORIZON)
    expected_pred = np.rint(np.clip(pred, 0, 1) * 255)
    for s in range(NUM):
        for f in range(1, CONTEXT + 1):
            np.testing.assert_array_equal(_cell(pixels, layout, s, 0, f), v[s, f - 1])
        for f in range(CONTEXT + 1, CONTEXT + HORIZON + 1):
            np.testing.assert_array_equal(_cell(pixels, layout, s, 1, f), v[s, f - 1])
            shown = _cell(pixels, layout, s, 2, f).astype(np.int16)
            assert np.abs(shown - expected_pred[s, f - CONTEXT - 1]).max() <= 1  # fused BatchNorm: float rounding
        # aligned: no frame where a row has none (context row after frame C, truth and prediction before C+1)
        for row, frames in ((0, range(CONTEXT + 1, CONTEXT + HORIZON + 1)), (1, range(1, CONTEXT + 1)),
                            (2, range(1, CONTEXT + 1))):
            for f in frames:
                left, top, right, bottom = layout.cell(s, row, f)
                assert (pixels[top:bottom, left:right] == viz.BACKGROUND).all()
    # the prediction row is not the truth row (the test tells them apart)
    assert not np.array_equal(_cell(pixels, layout, 0, 2, CONTEXT + 1), _cell(pixels, layout, 0, 1, CONTEXT + 1))


def test_png_has_labels_numbers_and_the_ssim_plot(picture):
    pixels, _, _ = picture
    layout = viz.PredictionLayout(NUM, CONTEXT, HORIZON, 64, 64)
    dark = (pixels < 128).all(axis=-1)
    for s in range(NUM):
        top = layout.block_y(s)
        for f in range(1, CONTEXT + HORIZON + 1):  # a number above every column
            x = layout.column_x(f)
            assert dark[top: top + viz.HEADER_H, x: x + layout.tile_w].any()
        for row in range(3):  # a name left of every row
            y = layout.row_y(s, row)
            assert dark[y: y + layout.tile_h, viz.MARGIN: layout.grid_x].any()
    plot = pixels[layout.plot_y: layout.plot_y + viz.PLOT_H]
    assert dark[layout.plot_y: layout.plot_y + viz.PLOT_H].sum() > 500            # axes, ticks, text
    blue = (plot[..., 2] > 150) & (plot[..., 0] < 100)                             # the prediction curve
    assert blue.any()
    # the curve lies over the future columns, a point at the centre of each, and not over the context
    # columns (the legend's blue handle sits in the label column, left of the grid)
    assert not blue[:, layout.grid_x: layout.column_x(CONTEXT + 1) - viz.GRID].any()
    for f in range(CONTEXT + 1, CONTEXT + HORIZON + 1):
        centre = layout.column_x(f) + layout.tile_w // 2
        assert blue[:, centre - 2: centre + 3].any()


def test_cli_prints_the_ssim_it_plots(smoke_run, videos, tmp_path, capsys):
    from matap.metrics import ssim

    v, path = videos
    png = tmp_path / "p.png"
    assert main(["predict", str(smoke_run), "--data", str(path), "--layout", "NT", "--png", str(png),
                 "--num", str(NUM), "--context", str(CONTEXT), "--horizon", str(HORIZON)]) == 0
    lines = {line.split()[1]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  SSIM")}
    clip = v[:NUM, : CONTEXT + HORIZON]
    truth = torch.from_numpy(clip[:, CONTEXT:] / 255.0).float()
    pred = torch.from_numpy(_rollout(smoke_run, clip, CONTEXT, HORIZON))
    last = torch.from_numpy(clip[:, CONTEXT - 1: CONTEXT] / 255.0).float().expand_as(truth)
    expected = {"prediction": ssim(pred, truth).mean(0), "black": ssim(torch.zeros_like(truth), truth).mean(0),
                "last": ssim(last, truth).mean(0)}
    for name, values in expected.items():
        printed = [float(x) for x in lines[name].split()[-HORIZON:]]
        np.testing.assert_allclose(printed, values.numpy(), atol=2e-3)


def test_ssim_curves_and_picture_without_a_model():
    rng = np.random.default_rng(0)
    context = rng.integers(0, 256, size=(2, 2, 64, 64), dtype=np.uint8)
    truth = rng.integers(0, 256, size=(2, 3, 64, 64), dtype=np.uint8)
    curves = viz.ssim_curves(context, truth, truth.astype(np.float32) / 255)
    np.testing.assert_allclose(curves["prediction"], 1.0, atol=1e-5)   # a perfect prediction
    assert set(curves) == {"prediction", "black", "last context"}
    assert all(len(c) == 3 and (c < 0.5).all() for k, c in curves.items() if k != "prediction")
    image = viz.render_prediction_strip(context, truth, truth, plot=False)
    layout = viz.PredictionLayout(2, 2, 3, plot=False)
    assert image.size == (layout.width, layout.height)
    pixels = np.asarray(image)
    np.testing.assert_array_equal(_cell(pixels, layout, 1, 0, 2), context[1, 1])
    np.testing.assert_array_equal(_cell(pixels, layout, 1, 2, 5), truth[1, 2])
    with pytest.raises(MatapError, match="differ"):
        viz.render_prediction_strip(context, truth, truth[:, :2])


def test_png_is_deterministic_and_works_with_the_gif(smoke_run, videos, tmp_path, picture):
    _, first_png, args = picture
    png, gif = tmp_path / "again.png", tmp_path / "again.gif"
    again = [a if a != str(first_png) else str(png) for a in args] + ["--out", str(gif)]
    assert main(again) == 0
    assert png.read_bytes() == first_png.read_bytes()
    with Image.open(gif) as image:
        assert image.n_frames == CONTEXT + HORIZON


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "matap.cli", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_neither_out_nor_png_is_one_line_and_exit_2(smoke_run):
    result = _run_cli("predict", str(smoke_run))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("matap: error: "), result.stderr
    assert "--out" in lines[0] and "--png" in lines[0]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--context", "4", "--horizon", "4"], "the videos have 6 frames, too short for --context 4 + --horizon 4"),
        (["--context", "6"], "the videos have 6 frames, too short for --context 6"),
        (["--horizon", "0"], "--horizon must be >= 1"),
    ],
)
def test_short_videos_are_one_line_and_exit_2(smoke_run, tmp_path, capsys, extra, message):
    np.save(tmp_path / "short.npy", np.zeros((2, 6, 64, 64), dtype=np.uint8))
    png = tmp_path / "x.png"
    assert main(["predict", str(smoke_run), "--data", str(tmp_path / "short.npy"), "--layout", "NT", "--png", str(png),
                 *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("matap: error: ") and message in err[0], err
    assert not png.exists()


def test_wrong_png_name_is_refused(smoke_run, tmp_path, capsys):
    assert main(["predict", str(smoke_run), "--png", str(tmp_path / "x.jpg")]) == 2
    assert ".png" in capsys.readouterr().err


def test_help_describes_png():
    result = _run_cli("predict", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "--png FILE" in text and "context" in text and "SSIM" in text and "same PNG" in text
