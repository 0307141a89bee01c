"""The decoders that read the context frames besides the latent ("skip", "appearance"): what each reads,
and that training, rollouts and evaluation hand them the context."""

import numpy as np
import pytest
import torch

from matap.config import load_config
from matap.errors import MatapError
from matap.evaluation import evaluate
from matap.models import build_model, count_parameters
from matap.objectives import build_objective
from matap.registry import DECODERS

CONDITIONED = [name for name in DECODERS.names() if getattr(DECODERS.get(name), "conditioned", False)]


def _model(decoder: str, feedback: str = "latent"):
    torch.manual_seed(0)
    return build_model("matap", decoder=decoder, rollout_feedback=feedback, encoder_dropout=0.0,
                       attn_dropout=0.0, predictor_dropout=0.0)


def test_the_registry_holds_both_conditioned_decoders():
    assert set(CONDITIONED) == {"skip", "appearance"}
    assert not getattr(DECODERS.get("paper"), "conditioned", False)


@pytest.mark.parametrize("decoder", CONDITIONED)
def test_a_conditioned_decoder_needs_the_context_and_the_paper_objective_is_refused(decoder):
    model = _model(decoder).eval()
    with pytest.raises(MatapError, match="condition"):
        model.decode(torch.randn(2, 3, 64))
    with pytest.raises(MatapError, match="objective.name=predict"):
        load_config("smoke", [f"model.decoder={decoder}", "objective.name=paper"])
    assert model.condition(torch.rand(2, 3, 1, 64, 64)) is not None
    assert _model("paper").condition(torch.rand(2, 3, 1, 64, 64)) is None


def test_the_skip_decoder_reads_frame_s_minus_1_within_the_context_and_the_last_context_frame_after_it():
    model = _model("skip").eval()
    context = torch.rand(1, 4, 1, 64, 64)
    z = torch.randn(1, 7, 64)          # frames 0 ... 6 of the sequence: 4 in the context, 3 after it
    with torch.no_grad():
        base = model.decode(z, model.condition(context))
        for changed in range(4):
            other = context.clone()
            other[:, changed] = torch.rand(1, 1, 64, 64)
            moved = (model.decode(z, model.condition(other)) - base).abs().amax(dim=(0, 2, 3, 4)) > 0   # (7,)
            reads = [max(s - 1, 0) if s < 4 else 3 for s in range(7)]
            assert moved.tolist() == [r == changed for r in reads], changed


def test_the_appearance_decoder_reads_one_vector_per_sequence_whatever_the_frame():
    model = _model("appearance").eval()
    context = torch.rand(2, 4, 1, 64, 64)
    with torch.no_grad():
        cond = model.condition(context)
        assert cond.shape == (2, 128)
        z = torch.randn(2, 1, 64).expand(2, 5, 64)             # one latent decoded as frames 0 ... 4
        frames = model.decode(z, cond)
        torch.testing.assert_close(frames, frames[:, :1].expand_as(frames))
        # the maximum over positions: a digit moved by whole 8-pixel cells, well inside the frame, reads alike
        still = torch.zeros(1, 4, 1, 64, 64)
        still[..., 16:32, 16:32] = context[:1, :, :, :16, :16]
        moved = torch.roll(still, shifts=(8, 16), dims=(-2, -1))
        torch.testing.assert_close(model.condition(moved), model.condition(still), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("decoder", CONDITIONED)
def test_a_rollout_decodes_its_frames_after_the_context_with_every_feedback(decoder):
    context = torch.rand(2, 4, 1, 64, 64)
    for feedback in ("latent", "frame"):
        model = _model(decoder, feedback).eval()
        with torch.no_grad():
            cond = model.condition(context)
            latents, logits = model.rollout_steps(model.encode(context), 3, cond)
            expected = model.decode(latents, cond, 4)
            if logits is not None:
                torch.testing.assert_close(logits, expected)
            torch.testing.assert_close(model.rollout(context, 3), torch.sigmoid(expected))


@pytest.mark.parametrize("decoder", CONDITIONED)
def test_the_predict_objective_trains_every_parameter_through_the_rollout_term(decoder):
    cfg = load_config("smoke", [f"model.decoder={decoder}", "objective.name=predict", "objective.rollout_weight=1",
                                "objective.rollout_context=3", "data.seq_len=6", "model.rollout_feedback=frame"])
    model = _model(decoder, "frame").train()
    assert count_parameters(model) > count_parameters(_model("paper"))
    out = build_objective(cfg.objective)(model, torch.rand(2, 6, 1, 64, 64), with_frames=True)
    assert set(out.terms) == {"next", "ae", "latent", "rollout"} and torch.isfinite(out.loss)
    assert out.pairs["rollout"][0].shape == (2, 3, 1, 64, 64)
    out.loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters()), decoder


@pytest.mark.parametrize("decoder", CONDITIONED)
def test_evaluation_folds_the_batchnorm_of_a_conditioned_decoder_and_scores_what_eval_mode_predicts(decoder):
    model = _model(decoder).eval()
    videos = (np.random.default_rng(0).random((3, 8, 64, 64)) * 255).astype(np.uint8)
    x = torch.from_numpy(videos).float().div(255).unsqueeze(2)
    scored = evaluate(model, videos, "predict", context=4, horizon=4)
    with torch.no_grad():
        pred = model.rollout(x[:, :4], 4)
    mse = ((pred - x[:, 4:]) ** 2).sum(dim=(2, 3, 4)).mean().item()
    assert scored["metrics"]["mse"]["mean"] == pytest.approx(mse, rel=1e-3)
    for protocol in ("reconstruct", "autoencode"):
        assert np.isfinite(evaluate(model, videos, protocol, context=4, horizon=4)["metrics"]["bce"]["mean"])
