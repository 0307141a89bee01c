"""What a rollout feeds back, and how the encoder and decoder normalise inside it."""

import torch
from torch import nn

from matap.config import FEEDBACKS as FEEDBACK_CHOICES
from matap.models import build_model
from matap.models.video_model import FEEDBACKS


def _running(model):
    return [m.running_mean.clone() for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def _model(feedback):
    torch.manual_seed(0)
    model = build_model("matap", rollout_feedback=feedback, encoder_dropout=0.0, attn_dropout=0.0,
                        predictor_dropout=0.0)
    with torch.no_grad():  # running statistics that differ from any batch's, as after training
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model


def test_every_feedback_is_a_config_choice():
    assert tuple(FEEDBACKS) == FEEDBACK_CHOICES


def test_frame_feedback_in_training_moves_the_running_statistics_and_the_running_stats_variant_does_not():
    z = torch.randn(3, 4, 64)
    for feedback, moved in (("frame", True), ("frame_running_stats", False)):
        model = _model(feedback).train()
        before = _running(model)
        rolled, logits = model.rollout_steps(z, 3)
        assert rolled.shape == (3, 3, 64) and logits.shape == (3, 3, 1, 64, 64)
        changed = [not torch.equal(a, b) for a, b in zip(before, _running(model))]
        assert all(changed) if moved else not any(changed), feedback
        assert all(m.training for m in model.modules())  # every layer is back in training mode


def test_the_running_stats_rollout_in_training_is_the_evaluation_rollout_and_carries_gradients():
    z = torch.randn(2, 4, 64)
    trained = _model("frame_running_stats").train()
    evaluated = _model("frame").eval()
    evaluated.load_state_dict(trained.state_dict())
    rolled, logits = trained.rollout_steps(z, 3)
    with torch.no_grad():
        expected, expected_logits = evaluated.rollout_steps(z, 3)
    torch.testing.assert_close(rolled, expected)
    torch.testing.assert_close(logits, expected_logits)
    logits.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trained.decoder.parameters())
    assert trained.encoder.features[0][0].weight.grad.abs().sum() > 0  # through the fed-back frames


def test_outside_training_both_frame_feedbacks_roll_out_alike():
    context = torch.rand(2, 4, 1, 64, 64)
    plain, variant = _model("frame").eval(), _model("frame_running_stats").eval()
    variant.load_state_dict(plain.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(plain.rollout(context, 3), variant.rollout(context, 3))
