"""The digits' centres the generator can hand out beside its videos, and the position term
(``objective.position_weight``) that tells keypoints where the digits are."""

import numpy as np
import pytest
import torch

from matap.config import DataConfig, load_config
from matap.data import generate, make_loader, training_stream
from matap.errors import MatapError
from matap.modules.keypoints import COORD_SCALE, KeypointDecoder, from_frame_units
from matap.objectives import best_pairing, pairings, position_error
from matap.training.run import batch_size


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


def test_a_wide_digits_centre_is_its_boxs_and_two_digits_are_drawn_where_told():
    wide = np.full((1, 20, 28), 255, dtype=np.uint8)                 # 20 rows, 28 columns: centre (13.5, 9.5)
    videos, centres = generate(wide, 0, "train", range(3), seq_len=6, num_digits=1, motion="classic", centres=True)
    ys, xs = np.mgrid[0:64, 0:64]
    mass = videos.astype(np.float64)
    told = (centres[:, :, 0] + 1) * 63 / 2
    np.testing.assert_allclose(told[..., 0], (mass * xs).sum(axis=(2, 3)) / mass.sum(axis=(2, 3)), atol=1e-4)
    np.testing.assert_allclose(told[..., 1], (mass * ys).sum(axis=(2, 3)) / mass.sum(axis=(2, 3)), atol=1e-4)
    # two digits: each frame is the two blocks drawn at the told centres, each centre its own digit's
    videos, centres = generate(_block_digit(), 5, "train", range(3), seq_len=8, num_digits=2, motion="classic",
                               centres=True)
    corners = np.rint((centres + 1) * 63 / 2 - 13.5).astype(int)     # (x, y) of each box's top-left corner
    for i in range(3):
        for t in range(8):
            drawn = np.zeros((64, 64), dtype=np.uint8)
            for x, y in corners[i, t]:
                drawn[y + 10:y + 18, x + 10:x + 18] = 255
            np.testing.assert_array_equal(videos[i, t], drawn)


def test_told_centres_land_on_the_grid_cell_the_decoder_paints_at_that_pixel():
    # pixel (13.5, 49.5) is the centre of grid cell (column 3, row 12): 4 i + 1.5
    told = torch.tensor([[2 * 13.5 / 63 - 1, 2 * 49.5 / 63 - 1]])
    z = torch.cat([COORD_SCALE * from_frame_units(told).flatten(), torch.zeros(3)])[None]   # one keypoint, d = 5
    bumps = KeypointDecoder(latent_dim=5, keypoints=1).bumps(z)[0, 0]                       # (256,)
    assert bumps.argmax().item() == 12 * 16 + 3
    assert bumps[12 * 16 + 3].item() == pytest.approx(1.0, abs=1e-6)


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
    # in the keypoint grid's units; the generator's frame units are 30 / 31.5 of them
    digits = torch.tensor([[0.5, 0.0], [-0.5, 0.2]]).expand(2, 2, 2, 2).clone()           # (B, T, D, 2)
    centres = digits * 30 / 31.5
    swapped = torch.tensor([[-0.5, 0.2], [0.5, 0.0], [0.9, 0.9]])
    shifted = torch.tensor([[0.6, 0.0], [-0.4, 0.2], [-0.9, 0.9]])
    where = torch.stack([swapped, shifted])[:, None].expand(2, 2, 3, 2)                    # (B, T, K, 2)
    z = torch.cat([COORD_SCALE * where.flatten(2), torch.randn(2, 2, 3 * 5)], dim=2)       # d = 21
    # sequence 0: 0 (swapped pairing); sequence 1: 0.1^2 for each of the two digits; mean over both
    assert position_error(z, centres, 3).item() == pytest.approx(0.005, rel=1e-4)
    assert position_error(z[:1], centres[:1], 3).item() == pytest.approx(0.0, abs=1e-10)
    assert pairings(2) == [(0, 1), (1, 0)]
    assert best_pairing(z, centres, 3).tolist() == [1, 0]
    # a pairing given: sequence 0 held to the order 0 -> 0, 1 -> 1 (1^2 + 0.2^2 for each digit)
    held = position_error(z, centres, 3, torch.tensor([0, 0]))
    assert held.item() == pytest.approx((1.04 + 0.01) / 2, rel=1e-4)


def test_one_pairing_holds_for_the_whole_sequence():
    # frame 0: keypoints in the digits' order; frame 1: swapped. Per frame each fits exactly; over the
    # sequence either pairing is wrong in one frame: (0 + 1^2 + 0.2^2 twice) / (2 frames x 2 digits)
    digits = torch.tensor([[0.5, 0.0], [-0.5, 0.2]]).expand(1, 2, 2, 2)
    where = torch.stack([digits[0, 0], digits[0, 0].flip(0)])[None]                        # (1, 2, 2, 2)
    z = torch.cat([COORD_SCALE * where.flatten(2), torch.zeros(1, 2, 2 * 3)], dim=2)
    assert position_error(z, digits * 30 / 31.5, 2).item() == pytest.approx(2 * 1.04 / 4, rel=1e-4)


def test_the_position_term_needs_keypoints_for_each_digit_and_a_stream():
    assert load_config("smoke", ["model.keypoints=2", "data.stream=true", "objective.name=predict",
                                 "objective.position_weight=1"]).objective.position_weight == 1
    for overrides in (["data.stream=true", "objective.name=predict"],
                      ["model.keypoints=1", "data.stream=true", "objective.name=predict"],
                      ["model.keypoints=2", "objective.name=predict"],
                      ["model.keypoints=2", "data.stream=true", "objective.name=paper"]):
        with pytest.raises(MatapError, match="position_weight"):
            load_config("smoke", overrides + ["objective.position_weight=1"])
    with pytest.raises(MatapError, match="at most 4 digits"):
        load_config("smoke", ["model.keypoints=8", "data.num_digits=5", "data.stream=true", "objective.name=predict",
                              "objective.position_weight=1"])


def test_a_batch_with_centres_counts_its_sequences():
    videos = torch.zeros(3, 5, 64, 64, dtype=torch.uint8)
    assert batch_size(videos) == 3
    assert batch_size((videos, torch.zeros(3, 5, 2, 2))) == 3


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
    base = {"name": "predict", "rollout_weight": 0.5, "rollout_context": 3, "rollout_ramp": 0.5}
    # at 10% of training the curriculum rolls out 1 frame of the 3 after the context
    plain = PredictObjective(ObjectiveConfig(**base))(model, x, centres=centres, progress=0.1)
    told = PredictObjective(ObjectiveConfig(**base, position_weight=2.0, rollout_position_weight=3.0))(
        model, x, centres=centres, progress=0.1)
    with torch.no_grad():
        z = model.encode(x)
        rolled = model.rollout_steps(z[:, :3], 1, model.content(x))[0]                    # (2, 1, d)
    pairing = best_pairing(z, centres, 2)
    torch.testing.assert_close(told.terms["position"], position_error(z, centres, 2), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(told.terms["rollout_position"], position_error(rolled, centres[:, 3:4], 2, pairing),
                               rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(told.loss, plain.loss + 2.0 * told.terms["position"]
                               + 3.0 * told.terms["rollout_position"], rtol=1e-4, atol=1e-5)
    # without centres: validation (eval mode) takes neither term; training refuses to go on without them
    objective = PredictObjective(ObjectiveConfig(**base, position_weight=2.0, rollout_position_weight=3.0))
    unseen = objective(model, x)
    assert "position" not in unseen.terms and "rollout_position" not in unseen.terms
    with pytest.raises(ValueError, match="centres"):
        objective(model.train(), x)
    with pytest.raises(MatapError, match="rollout_position_weight"):
        load_config("smoke", ["model.keypoints=2", "data.stream=true", "objective.name=predict",
                              "objective.rollout_position_weight=1"])
