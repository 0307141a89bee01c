"""The digits' centres the generator can hand out beside its videos, and the position term
(``objective.position_weight``) that tells keypoints where the digits are."""

import numpy as np
import pytest
import torch

from matap.config import DataConfig, load_config
from matap.data import generate, make_loader, training_stream
from matap.errors import MatapError
from matap.modules.keypoints import COORD_SCALE
from matap.objectives import position_error


def _block_digit() -> np.ndarray:
    """One 28x28 "digit": an 8x8 block in the middle (rows and columns 10-17), its mass centre the box's."""
    digit = np.zeros((1, 28, 28), dtype=np.uint8)
    digit[0, 10:18, 10:18] = 255
    return digit


@pytest.mark.parametrize("motion", ["classic", "reference"])
def test_told_centres_are_where_each_digit_is_drawn(motion):
    videos, centres = generate(_block_digit(), 3, "train", range(4), seq_len=12, num_digits=1, motion=motion,
                               centres=True)
    assert centres.shape == (4, 12, 1, 2) and centres.dtype == np.float32
    ys, xs = np.mgrid[0:64, 0:64]
    mass = videos.astype(np.float64)
    total = mass.sum(axis=(2, 3))
    drawn_x = (mass * xs).sum(axis=(2, 3)) / total          # pixels
    drawn_y = (mass * ys).sum(axis=(2, 3)) / total
    told = (centres[:, :, 0] + 1) * 63 / 2                  # frame units -> pixels, (x, y)
    np.testing.assert_allclose(told[..., 0], drawn_x, atol=1e-4)
    np.testing.assert_allclose(told[..., 1], drawn_y, atol=1e-4)
    assert np.ptp(told[..., 0]) > 5 and np.ptp(told[..., 1]) > 5   # the digit moves in both directions
    # asking for the centres changes nothing in the videos
    np.testing.assert_array_equal(videos, generate(_block_digit(), 3, "train", range(4), 12, 1, motion))


def test_a_stream_with_centres_hands_out_each_sequence_with_its_own(tmp_path):
    cfg = DataConfig(stream=True, cache_dir=str(tmp_path), train_size=6, val_size=4, seq_len=5)
    plain, told = training_stream(cfg), training_stream(cfg, centres=True)
    videos, centres = told.__getitems__([9, 2])
    np.testing.assert_array_equal(videos.numpy(), plain.__getitems__([9, 2]).numpy())
    assert centres.shape == (2, 5, 2, 2)
    one_video, one_centres = told[2]
    torch.testing.assert_close(one_centres, centres[1])
    torch.testing.assert_close(one_video, videos[1])
    batch = next(iter(make_loader(told, 3, shuffle=True, seed=0)))
    assert isinstance(batch, tuple) and batch[0].shape == (3, 5, 64, 64) and batch[1].shape == (3, 5, 2, 2)


def test_the_position_error_pairs_keypoints_and_digits_as_fits_each_sequence():
    # digits at (0.5, 0) and (-0.5, 0.2) in both frames; sequence 0's keypoints swapped onto them, sequence
    # 1's on them in order but 0.1 off in x; a third keypoint (not paired with any digit) far away
    digits = torch.tensor([[0.5, 0.0], [-0.5, 0.2]]).expand(2, 2, 2, 2).clone()           # (B, T, D, 2)
    swapped = torch.tensor([[-0.5, 0.2], [0.5, 0.0], [0.9, 0.9]])
    shifted = torch.tensor([[0.6, 0.0], [-0.4, 0.2], [-0.9, 0.9]])
    where = torch.stack([swapped, shifted])[:, None].expand(2, 2, 3, 2)                    # (B, T, K, 2)
    z = torch.cat([COORD_SCALE * where.flatten(2), torch.randn(2, 2, 3 * 5)], dim=2)       # d = 21
    # sequence 0: 0 (swapped pairing); sequence 1: 0.1^2 for each of the two digits; mean over both
    assert position_error(z, digits, 3).item() == pytest.approx(0.005, rel=1e-5)
    assert position_error(z[:1], digits[:1], 3).item() == pytest.approx(0.0, abs=1e-10)


def test_the_position_term_needs_keypoints_for_each_digit_and_a_stream():
    assert load_config("smoke", ["model.keypoints=2", "data.stream=true", "objective.name=predict",
                                 "objective.position_weight=1"]).objective.position_weight == 1
    for overrides in (["data.stream=true", "objective.name=predict"],
                      ["model.keypoints=1", "data.stream=true", "objective.name=predict"],
                      ["model.keypoints=2", "objective.name=predict"],
                      ["model.keypoints=2", "data.stream=true", "objective.name=paper"]):
        with pytest.raises(MatapError, match="position_weight"):
            load_config("smoke", overrides + ["objective.position_weight=1"])


def test_training_with_told_positions_records_the_term(tmp_path):
    from matap.cli import main

    run = tmp_path / "told"
    assert main(["train", "--config", "smoke", "--out", str(run), "train.epochs=1", "data.stream=true",
                 "model.keypoints=2", "objective.name=predict", "objective.position_weight=10",
                 "train.progress_bar=false"]) == 0
    header, row = (run / "history.csv").read_text().strip().splitlines()[:2]
    value = float(row.split(",")[header.split(",").index("train_position")])
    assert 0 < value < 8   # a mean squared distance in frame units: at most 2^2 + 2^2


def test_the_rollout_position_term_scores_the_rolled_keypoints_against_the_frames_they_predict():
    import matap
    from matap.config import ObjectiveConfig
    from matap.objectives import PredictObjective

    torch.manual_seed(0)
    model = matap.build_model("matap", keypoints=2, track=True).eval()
    x = torch.rand(2, 6, 1, 64, 64)
    centres = torch.rand(2, 6, 2, 2) * 2 - 1
    base = {"name": "predict", "rollout_weight": 0.5, "rollout_context": 3}
    plain = PredictObjective(ObjectiveConfig(**base))(model, x, centres=centres)
    told = PredictObjective(ObjectiveConfig(**base, position_weight=2.0, rollout_position_weight=3.0))(
        model, x, centres=centres)
    with torch.no_grad():
        z = model.encode(x)
        rolled = model.rollout_steps(z[:, :3], 3, model.content(x))[0]
    torch.testing.assert_close(told.terms["position"], position_error(z, centres, 2), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(told.terms["rollout_position"], position_error(rolled, centres[:, 3:], 2),
                               rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(told.loss, plain.loss + 2.0 * told.terms["position"]
                               + 3.0 * told.terms["rollout_position"], rtol=1e-4, atol=1e-5)
    # without centres (validation) neither term is taken
    unseen = PredictObjective(ObjectiveConfig(**base, position_weight=2.0, rollout_position_weight=3.0))(model, x)
    assert "position" not in unseen.terms and "rollout_position" not in unseen.terms
    with pytest.raises(MatapError, match="rollout_position_weight"):
        load_config("smoke", ["model.keypoints=2", "data.stream=true", "objective.name=predict",
                              "objective.rollout_position_weight=1"])
