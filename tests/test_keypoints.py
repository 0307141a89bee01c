"""model.keypoints (beyond the paper): a latent of K keypoints, each its (x, y) position and d / K - 2
appearance numbers, with its own encoder (a soft arg-max) and decoder (Gaussian bumps painted on a grid).
Off by default, where the model is the paper's to the parameter."""

import math

import pytest
import torch
from torch.nn import functional as F

import matap
from matap.cli import main
from matap.config import MatapError, load_config
from matap.models import count_parameters
from matap.models.fuse import fold_batchnorm
from matap.modules.keypoints import COORD_SCALE, GRID, SIGMA, SPRITE, KeypointDecoder, KeypointEncoder, grid_points

CELL = 2 / (GRID - 1)     # one grid cell in the [-1, 1] frame units


def test_the_default_is_the_papers_model():
    assert matap.build_model("matap").keypoints == 0
    assert count_parameters(matap.build_model("matap")) == 4_906_977
    # the paper encoder's convolution blocks, a 3x3 score conv (64 -> K), a linear map 128 -> m
    encoder = (16 * 32 + 32 + 64) + (32 * 64 * 16 + 64 + 128) + (64 * 128 * 16 + 128 + 256) \
        + (64 * 4 * 9 + 4) + (128 * 14 + 14)
    # paint (m -> 128), two 3x3 conv blocks at 128, transposed convs 128 -> 64 -> 32, the output conv
    decoder = (14 * 128 + 128) + 2 * (128 * 128 * 9 + 128 + 256) + (128 * 64 * 16 + 64 + 128) \
        + (64 * 32 * 16 + 32 + 64) + (32 * 9 + 1)
    model = matap.build_model("matap", keypoints=4)
    assert isinstance(model.encoder, KeypointEncoder) and isinstance(model.decoder, KeypointDecoder)
    assert count_parameters(model.encoder) == encoder == 169_138
    assert count_parameters(model.decoder) == decoder == 462_017
    paper = matap.build_model("matap")
    assert count_parameters(model) == 4_906_977 - count_parameters(paper.encoder) - count_parameters(paper.decoder) \
        + encoder + decoder


def test_the_encoder_writes_each_keypoint_as_the_expected_position_and_the_features_there():
    torch.manual_seed(0)
    encoder = KeypointEncoder(64, 4).eval()
    x = torch.rand(3, 1, 64, 64)
    with torch.no_grad():
        z = encoder(x)
        weights, coarse = encoder.attend(x)                                      # (3, 4, 256), (3, 128, 8, 8)
    assert z.shape == (3, 64) and z.dtype == torch.float32
    points = grid_points()
    for n in range(3):
        for k in range(4):
            w = weights[n, k].view(GRID, GRID)
            x_by_hand = sum(float(w[i, j]) * float(points[i * GRID + j, 0]) for i in range(GRID) for j in range(GRID))
            y_by_hand = sum(float(w[i, j]) * float(points[i * GRID + j, 1]) for i in range(GRID) for j in range(GRID))
            assert z[n, 2 * k].item() == pytest.approx(COORD_SCALE * x_by_hand, abs=1e-4)
            assert z[n, 2 * k + 1].item() == pytest.approx(COORD_SCALE * y_by_hand, abs=1e-4)
            # appearance: the 8x8 features, each cell weighted by the sum of the weights of its 2x2 fine cells
            cell_weights = w.view(8, 2, 8, 2).sum(dim=(1, 3))
            seen = (coarse[n] * cell_weights).sum(dim=(1, 2))
            torch.testing.assert_close(z[n, 8 + 14 * k: 8 + 14 * (k + 1)], encoder.look(seen), atol=1e-4, rtol=1e-4)
    assert z[:, :8].abs().max() <= COORD_SCALE


def test_a_keypoint_follows_a_bright_spot():
    """Scores that are the frame's brightness, pooled to the grid: the soft arg-max finds the spot."""
    encoder = KeypointEncoder(6, 2).eval()
    encoder.trunk = lambda x: (F.avg_pool2d(x, 4).flatten(2).expand(-1, 2, -1).mul(50),
                               torch.zeros(x.shape[0], 128, 8, 8))
    x = torch.zeros(1, 1, 64, 64)
    x[0, 0, 8:12, 40:44] = 1.0                     # grid cell row 2, column 10
    with torch.no_grad():
        z = encoder(x)
    expected = COORD_SCALE * grid_points()[2 * GRID + 10]
    torch.testing.assert_close(z[0, :2], expected, atol=1e-3, rtol=0)


def test_the_decoder_paints_gaussian_bumps_that_move_with_the_coordinates():
    torch.manual_seed(0)
    decoder = KeypointDecoder(64, 4).eval()
    z = torch.zeros(1, 64)
    z[0, :2] = COORD_SCALE * grid_points()[5 * GRID + 6]     # keypoint 0 on the centre of cell (5, 6)
    with torch.no_grad():
        bumps = decoder.bumps(z)[0, 0].view(GRID, GRID)
        assert bumps[5, 6] == pytest.approx(1.0)
        assert bumps[5, 7].item() == pytest.approx(math.exp(-CELL ** 2 / (2 * SIGMA ** 2)), rel=1e-4)
        assert bumps[7, 8].item() == pytest.approx(math.exp(-8 * CELL ** 2 / (2 * SIGMA ** 2)), rel=1e-4)
        z[0, 8:] = torch.randn(56)
        before = decoder.painted(z)
        z[0, 0] += COORD_SCALE * CELL                          # every keypoint's x: one cell to the right
        z[0, 2] += COORD_SCALE * CELL
        z[0, 4] += COORD_SCALE * CELL
        z[0, 6] += COORD_SCALE * CELL
        after = decoder.painted(z)
    # away from the borders the painted map moved by one column
    torch.testing.assert_close(after[..., 4:12, 5:12], before[..., 4:12, 4:11], atol=1e-5, rtol=1e-4)


def test_it_decodes_rolls_out_folds_and_trains_every_parameter():
    torch.manual_seed(0)
    model = matap.build_model("matap", keypoints=4, velocity=True)
    x = torch.rand(4, 5, 1, 64, 64)
    logits = model.decode(model.encode(x))
    assert logits.shape == (4, 5, 1, 64, 64)
    F.binary_cross_entropy_with_logits(logits, x).backward()
    for part in (model.encoder, model.decoder):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(fold_batchnorm(model).rollout(x[:2, :3], 3), model.rollout(x[:2, :3], 3),
                                   atol=1e-5, rtol=1e-4)


def test_positions_stay_in_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    encoder = KeypointEncoder(64, 4).eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        z = encoder(x)
        weights, _ = encoder.attend(x)
    assert z.dtype == torch.float32
    torch.testing.assert_close(z[:, :8], COORD_SCALE * (weights.double() @ grid_points().double()).flatten(1).float(),
                               atol=1e-5, rtol=0)


def test_bad_settings_are_refused():
    with pytest.raises(MatapError, match="does not split"):
        load_config("smoke", ["model.keypoints=5"])                 # 64 is not a multiple of 5
    with pytest.raises(MatapError, match="does not split"):
        load_config("smoke", ["model.keypoints=32"])                # 64 / 32 = 2: no appearance number
    with pytest.raises(MatapError, match="own encoder and decoder"):
        load_config("smoke", ["model.keypoints=4", "model.content_path=true"])
    with pytest.raises(MatapError, match="own encoder and decoder"):
        load_config("smoke", ["model.keypoints=4", "model.decoder=broadcast"])
    with pytest.raises(ValueError, match="does not split"):
        KeypointEncoder(64, 5)


def test_trains_and_predicts_through_the_cli(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--config", "smoke", "--out", str(run), "model.keypoints=4", "model.track=true"]) == 0
    assert "model matap (d=64, K=10, heads=4, keypoints=4, tracked)" in capsys.readouterr().out
    assert main(["evaluate", str(run), "--protocol", "predict"]) == 0
    assert main(["predict", str(run), "--out", str(tmp_path / "p.gif")]) == 0


def test_the_straight_line_moves_the_positions_and_keeps_the_appearance():
    torch.manual_seed(0)
    model = matap.build_model("matap", keypoints=4, velocity=True, velocity_gain=0.5).eval()
    torch.nn.init.zeros_(model.predictor[-1].weight)
    torch.nn.init.zeros_(model.predictor[-1].bias)
    z, z_before, h = torch.randn(3, 64), torch.randn(3, 64), torch.randn(3, 64)
    with torch.no_grad():
        out = model.predict(h, z, z_before)
    torch.testing.assert_close(out[:, :8], z[:, :8] + 0.5 * (z[:, :8] - z_before[:, :8]))
    torch.testing.assert_close(out[:, 8:], z[:, 8:])
    paper = matap.build_model("matap", velocity=True).eval()
    paper.predictor.load_state_dict(model.predictor.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(paper.predict(h, z, z_before), 2 * z - z_before)   # the paper's latent: all of it


def test_tracking_keeps_a_keypoint_on_the_spot_it_was_on():
    """Two equally bright spots: without the prior the soft arg-max lands between them; with it,
    each frame's keypoint stays on the spot nearest the previous frame's position."""
    encoder = KeypointEncoder(6, 2).eval()
    encoder.trunk = lambda x: (F.avg_pool2d(x, 4).flatten(2).expand(-1, 2, -1).mul(50).float(),
                               torch.zeros(x.shape[0], 128, 8, 8))
    frames = torch.zeros(1, 3, 1, 64, 64)
    for t in range(3):
        frames[0, t, 0, 8:12, 8 + 4 * t:12 + 4 * t] = 1.0          # spot A: row 2, columns 2, 3, 4
        frames[0, t, 0, 48:52, 48 - 4 * t:52 - 4 * t] = 1.0        # spot B: row 12, columns 12, 11, 10
    points = grid_points()
    with torch.no_grad():
        alone = encoder(frames[:, 1])
        torch.testing.assert_close(alone[0, :2], COORD_SCALE * (points[2 * GRID + 3] + points[12 * GRID + 11]) / 2,
                                   atol=1e-3, rtol=0)
        start = encoder.prior(points[2 * GRID + 2].view(1, 1, 2).expand(1, 2, 2))      # as if it was on A
        assert start.shape == (1, 2, 256) and start[0, 0, 2 * GRID + 2] == 0
        z = encoder(frames[:, 1], before=points[2 * GRID + 2].view(1, 1, 2).expand(1, 2, 2))
        torch.testing.assert_close(z[0, :2], COORD_SCALE * points[2 * GRID + 3], atol=1e-3, rtol=0)
        tracked = encoder.track(frames)                  # frame 0 lands between; the prior then picks one
    assert tracked.shape == (1, 3, 6)
    first = tracked[0, 0, :2]
    torch.testing.assert_close(first, COORD_SCALE * (points[2 * GRID + 2] + points[12 * GRID + 12]) / 2,
                               atol=1e-3, rtol=0)


def test_a_tracked_model_encodes_sequences_frame_after_frame():
    torch.manual_seed(0)
    model = matap.build_model("matap", keypoints=4, track=True).eval()
    x = torch.rand(2, 4, 1, 64, 64)
    with torch.no_grad():
        z = model.encode(x)
        by_hand = [model.encoder(x[:, 0])]
        for t in range(1, 4):
            by_hand.append(model.encoder(x[:, t], by_hand[-1][:, :8].view(2, 4, 2) / COORD_SCALE))
    torch.testing.assert_close(z, torch.stack(by_hand, dim=1), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(z[:, 1:], matap.build_model("matap", keypoints=4).eval().encode(x)[:, 1:])
    with pytest.raises(MatapError, match="track follows keypoints"):
        load_config("smoke", ["model.track=true"])


def test_a_sprite_is_drawn_centred_on_its_keypoint_and_moves_with_it():
    torch.manual_seed(0)
    decoder = KeypointDecoder(64, 4, sprites=True).eval()
    assert count_parameters(decoder) == 462_017 - (14 * 128 + 128) + (14 * 128 * SPRITE ** 2 + 128 * SPRITE ** 2)
    z = torch.zeros(1, 64)
    z[0, 8:22] = torch.randn(14)                                # keypoint 0 alone has an appearance
    z[0, :2] = COORD_SCALE * grid_points()[7 * GRID + 6]        # on the centre of cell (row 7, column 6)
    z[0, 2:8] = COORD_SCALE * 0.9                               # the others far off, drawing nothing (zero)
    half = SPRITE // 2
    with torch.no_grad():
        sprite = decoder.paint(z[:, 8:22]).view(128, SPRITE, SPRITE)
        drawn = decoder.painted(z)[0]                            # (128, 16, 16)
        others = KeypointDecoder(64, 4, sprites=True).eval()
        others.paint = decoder.paint
        z_empty = z.clone()
        z_empty[0, 8:22] = 0
        blank = others.painted(z_empty)[0]                      # each keypoint draws its bias
    # keypoint 0's sprite lies on cells rows 3..11, columns 2..10; elsewhere only the other keypoints' bias sprites
    torch.testing.assert_close(drawn[:, 7 - half:7 + half + 1, 6 - half:6 + half + 1] - blank[:, 7 - half:8 + half, 6 - half:7 + half]
                               + decoder.paint.bias.view(128, SPRITE, SPRITE), sprite, atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        z[0, 0] += COORD_SCALE * CELL / 2                       # half a cell to the right: bilinear between cells
        moved = decoder.painted(z)[0]
        moved_blank = others.painted(torch.cat([z[:, :8], z_empty[:, 8:]], dim=1))[0]
    left, right = (drawn - blank)[:, 7, 4], (drawn - blank)[:, 7, 5]
    torch.testing.assert_close((moved - moved_blank)[:, 7, 5], (left + right) / 2, atol=1e-4, rtol=1e-4)


def test_sprites_need_keypoints():
    with pytest.raises(MatapError, match="sprites draws keypoints"):
        load_config("smoke", ["model.sprites=true"])
    model = matap.build_model("matap", keypoints=4, track=True, sprites=True)
    x = torch.rand(2, 4, 1, 64, 64)
    F.binary_cross_entropy_with_logits(model.decode(model.encode(x)), x).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoder.parameters())


def test_on_the_fine_grid_a_keypoint_is_the_mean_over_2_pixel_cells_and_reads_the_8x8_cell_it_is_in():
    with pytest.raises(MatapError, match="fine_keypoints finds keypoints"):
        load_config("smoke", ["model.fine_keypoints=true"])
    torch.manual_seed(0)
    encoder = KeypointEncoder(64, 4, fine=True).eval()
    assert count_parameters(encoder) == count_parameters(KeypointEncoder(64, 4)) == 169_138   # no parameters
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        z = encoder(x)
        weights, coarse = encoder.attend(x)                                       # (2, 4, 1024), (2, 128, 8, 8)
    assert weights.shape == (2, 4, 32 * 32)
    axis = torch.linspace(-1, 1, 32)
    for n in range(2):
        for k in range(4):
            w = weights[n, k].view(32, 32)
            assert z[n, 2 * k].item() == pytest.approx(COORD_SCALE * float((w.sum(0) * axis).sum()), abs=1e-4)
            assert z[n, 2 * k + 1].item() == pytest.approx(COORD_SCALE * float((w.sum(1) * axis).sum()), abs=1e-4)
            seen = (coarse[n] * w.view(8, 4, 8, 4).sum(dim=(1, 3))).sum(dim=(1, 2))      # 4x4 fine cells per 8x8 cell
            torch.testing.assert_close(z[n, 8 + 14 * k: 8 + 14 * (k + 1)], encoder.look(seen), atol=1e-4, rtol=1e-4)
    # a spot two pixels wide is found to its 2-pixel cell, between two cells of the 16x16 grid
    encoder.trunk = lambda x: (F.avg_pool2d(x, 2).flatten(2).expand(-1, 4, -1).mul(50),
                               torch.zeros(x.shape[0], 128, 8, 8))
    spot = torch.zeros(1, 1, 64, 64)
    spot[0, 0, 10:12, 42:44] = 1.0                                                 # fine cell row 5, column 21
    with torch.no_grad():
        found = encoder(spot)[0, :2]
    torch.testing.assert_close(found, COORD_SCALE * torch.stack([axis[21], axis[5]]), atol=1e-3, rtol=0)
    model = matap.build_model("matap", keypoints=4, track=True, fine_keypoints=True)
    model.decode(model.encode(torch.rand(1, 3, 1, 64, 64))).mean().backward()
    assert model.encoder.scores.weight.grad.abs().sum() > 0
