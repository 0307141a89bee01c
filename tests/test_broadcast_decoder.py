"""model.decoder=broadcast (beyond the paper): the latent tiled over a 16x16 grid beside each cell's
coordinates. Off by default, where the model is the paper's to the parameter."""

import pytest
import torch
from torch import nn

import matap
from matap.cli import main
from matap.config import MatapError, load_config
from matap.models import LatentVideoModel, count_parameters
from matap.models.fuse import fold_batchnorm
from matap.modules import BroadcastDecoder

# latent in (64 x 128 + 128), coordinates in (2 x 128), 1x1 conv (128 x 128 + 128) and 3x3 conv
# (128 x 128 x 9 + 128) with their BatchNorms (2 x 128 each), transposed convs 128 -> 64 and 64 -> 32
# (4x4, + bias) with theirs, and the 3x3 output conv (32 x 9 + 1).
BROADCAST = (64 * 128 + 128) + 2 * 128 + (128 * 128 + 128) + 256 + (128 * 128 * 9 + 128) + 256 \
    + (128 * 64 * 16 + 64) + 128 + (64 * 32 * 16 + 32) + 64 + (32 * 9 + 1)
PAPER_DECODER = 2_548_929


def test_the_default_is_the_papers_model():
    paper = matap.build_model("matap")
    assert not isinstance(paper.decoder, BroadcastDecoder)
    assert count_parameters(paper) == 4_906_977 and count_parameters(paper.decoder) == PAPER_DECODER
    broadcast = matap.build_model("matap", decoder="broadcast")
    assert count_parameters(broadcast.decoder) == BROADCAST == 337_601
    assert count_parameters(broadcast) == 4_906_977 - PAPER_DECODER + BROADCAST


def test_the_grid_holds_each_cells_coordinates():
    decoder = BroadcastDecoder(8)
    x, y = decoder.coords[0]
    assert x.shape == (16, 16)
    assert x[0, 0] == -1 and x[0, -1] == 1 and y[0, 0] == -1 and y[-1, 0] == 1
    assert torch.equal(x[3], x[11]) and torch.equal(y[:, 3], y[:, 11])    # x varies along rows, y down columns


def test_the_first_layer_is_a_1x1_convolution_over_the_tiled_latent_and_coordinates():
    torch.manual_seed(0)
    decoder = BroadcastDecoder(8, width=16)
    z = torch.randn(3, 8)
    tiled = torch.cat([z[:, :, None, None].expand(3, 8, 16, 16), decoder.coords.expand(3, 2, 16, 16)], dim=1)
    conv = nn.Conv2d(10, 16, kernel_size=1)
    with torch.no_grad():
        conv.weight.copy_(torch.cat([decoder.latent_in.weight, decoder.coords_in.weight[:, :, 0, 0]], dim=1)
                          [:, :, None, None])
        conv.bias.copy_(decoder.latent_in.bias)
        by_hand = torch.relu(conv(tiled))
        stem = torch.relu(decoder.latent_in(z)[:, :, None, None] + decoder.coords_in(decoder.coords))
    torch.testing.assert_close(stem, by_hand, atol=1e-5, rtol=1e-5)


def test_where_a_latent_is_rendered_depends_on_the_coordinates():
    """With the coordinates' weights zeroed every grid cell sees the same input, so the 16x16 map is flat
    (up to the border of the 3x3 convolution); with them, the cells differ."""
    torch.manual_seed(0)
    decoder = BroadcastDecoder(8).eval()
    z = torch.randn(2, 8)
    with torch.no_grad():
        stem = torch.relu(decoder.latent_in(z)[:, :, None, None] + decoder.coords_in(decoder.coords))
        assert stem[:, :, 5:11, 5:11].std(dim=(2, 3)).max() > 1e-2
        decoder.coords_in.weight.zero_()
        stem = torch.relu(decoder.latent_in(z)[:, :, None, None] + decoder.coords_in(decoder.coords))
        assert stem.std(dim=(2, 3)).max() == 0


def test_it_decodes_rolls_out_and_folds_like_the_papers_decoder():
    torch.manual_seed(0)
    model = matap.build_model("matap", decoder="broadcast")
    model.train()
    x = torch.rand(4, 5, 1, 64, 64)
    model(x)                                       # running statistics that are not the initial ones
    model.eval()
    with torch.no_grad():
        assert model.decode(model.encode(x)).shape == (4, 5, 1, 64, 64)
        torch.testing.assert_close(fold_batchnorm(model).rollout(x[:2, :3], 3), model.rollout(x[:2, :3], 3),
                                   atol=1e-5, rtol=1e-4)


def test_every_parameter_learns():
    torch.manual_seed(0)
    model = matap.build_model("matap", decoder="broadcast")
    logits = model.decode(torch.randn(2, 3, 64))
    nn.functional.binary_cross_entropy_with_logits(logits, torch.rand_like(logits)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoder.parameters())


def test_bad_settings_are_refused():
    with pytest.raises(MatapError, match="no content path"):
        load_config("smoke", ["model.decoder=broadcast", "model.content_path=true"])
    with pytest.raises(MatapError, match="decoder"):
        load_config("smoke", ["model.decoder=spatial"])
    with pytest.raises(MatapError, match="no content path"):
        matap.build_model("matap", decoder="broadcast", content_path=True)
    cell = matap.build_model("gru").cell
    with pytest.raises(ValueError, match="decoder must be one of"):
        LatentVideoModel(cell, decoder="nope")
    with pytest.raises(ValueError, match="no content path"):
        LatentVideoModel(cell, decoder="broadcast", content_path=True)


def test_trains_and_predicts_through_the_cli(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--config", "smoke", "--out", str(run), "model.decoder=broadcast"]) == 0
    assert "model matap (d=64, K=10, heads=4, decoder=broadcast)" in capsys.readouterr().out
    assert main(["evaluate", str(run), "--protocol", "predict"]) == 0
    assert main(["predict", str(run), "--out", str(tmp_path / "p.gif")]) == 0
