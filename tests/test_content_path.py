"""model.content_path (beyond the paper): the decoder also reads the encoder's feature maps of the
sequence's first frame. Off by default, where the model is the paper's to the parameter."""

import pytest
import torch

import matap
from matap.cli import main
from matap.config import ObjectiveConfig
from matap.models import count_parameters
from matap.models.fuse import fold_batchnorm
from matap.objectives import PredictObjective

# The three transposed convolutions take 128, 64 and 32 more input channels, 4x4 kernels each.
EXTRA = (128 * 128 + 64 * 64 + 32 * 32) * 16


def test_the_default_is_the_papers_model():
    assert not matap.build_model("matap").content_path
    assert count_parameters(matap.build_model("matap", content_path=True)) == 4_906_977 + EXTRA == 5_251_041


def test_the_decoder_reads_the_first_frame_and_only_it():
    torch.manual_seed(0)
    model = matap.build_model("matap", content_path=True).eval()
    x = torch.rand(2, 4, 1, 64, 64)
    z = torch.randn(2, 3, 64)
    with torch.no_grad():
        base = model.decode(z, x)
        later = x.clone()
        later[:, 1:] = torch.rand(2, 3, 1, 64, 64)
        first = x.clone()
        first[:, 0] = torch.rand(2, 1, 64, 64)
        assert torch.equal(model.decode(z, later), base)            # frames after the first do not enter
        assert (model.decode(z, first) - base).abs().max() > 1e-3  # the first frame does
    with pytest.raises(ValueError, match="content path"):
        model.decode(z)


@pytest.mark.parametrize("feedback", ["latent", "frame"])
def test_rollout_decodes_with_the_first_context_frame(feedback):
    torch.manual_seed(0)
    model = matap.build_model("matap", content_path=True, rollout_feedback=feedback).eval()
    context = torch.rand(2, 3, 1, 64, 64)
    with torch.no_grad():
        frames = model.rollout(context, horizon=4)
        latents, _ = model.rollout_steps(model.encode(context), 4, model.content(context))
        by_hand = torch.sigmoid(model.decode(latents, context))
    assert frames.shape == (2, 4, 1, 64, 64)
    torch.testing.assert_close(frames, by_hand)


def test_batchnorm_folding_keeps_the_content_path():
    torch.manual_seed(0)
    model = matap.build_model("matap", content_path=True)
    model.train()
    model(torch.rand(4, 5, 1, 64, 64))            # running statistics that are not the initial ones
    model.eval()
    context = torch.rand(2, 3, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fold_batchnorm(model).rollout(context, 3), model.rollout(context, 3),
                                   atol=1e-5, rtol=1e-4)


def test_the_objective_trains_every_parameter_through_it():
    torch.manual_seed(0)
    model = matap.build_model("matap", content_path=True, rollout_feedback="frame")
    cfg = ObjectiveConfig(name="predict", ssim_weight=1.0, rollout_weight=0.5, rollout_context=3)
    PredictObjective(cfg)(model, torch.rand(2, 5, 1, 64, 64)).loss.backward()
    skip_weights = [block[0].weight for block in model.decoder.features[:3]]
    assert all(w.grad is not None and w.grad.abs().sum() > 0 for w in skip_weights)


def test_trains_and_predicts_through_the_cli(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--config", "smoke", "--out", str(run), "model.content_path=true"]) == 0
    assert main(["evaluate", str(run), "--protocol", "predict"]) == 0
    assert main(["predict", str(run), "--out", str(tmp_path / "p.gif")]) == 0
