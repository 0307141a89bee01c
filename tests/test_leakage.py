"""No future frame reaches a prediction.

In evaluation mode (BatchNorm on its running statistics, dropout off) every
output of the teacher-forced pass at step t, and every rolled-out frame, must be
a function of the frames it is allowed to see. Each test changes the frames it
must not see and checks that the outputs it guards stay exactly the same (an
untrained model's outputs move little with their input, so any tolerance would
hide a small leak), and that the change did reach the outputs it is allowed to
reach (so the test can fail).

In training mode BatchNorm normalises with the statistics of the whole batch,
all frames of all sequences together, as every BatchNorm model does; that is
a property of training, not of the predictions scored here.
"""

import pytest
import torch

import matap
from matap.evaluation import frames_for
from matap.models import available_models

T, CONTEXT, HORIZON = 8, 4, 5
VARIANTS = [(name, {}) for name in available_models()] + [("matap", {"mask_empty": True})]


def _model(name: str, options: dict) -> torch.nn.Module:
    torch.manual_seed(0)
    model = matap.build_model(name, **options)
    # Give BatchNorm running statistics that are not the identity, as a trained model has.
    model.train()
    with torch.no_grad():
        model(torch.rand(4, T, 1, 64, 64))
    return model.eval()


def _frames(seed: int) -> torch.Tensor:
    return torch.rand(2, T, 1, 64, 64, generator=torch.Generator().manual_seed(seed))  # (B, T, 1, H, W)


def _change_after(x: torch.Tensor, t: int) -> torch.Tensor:
    """``x`` with every frame after index ``t`` replaced by a blank one."""
    y = x.clone()
    y[:, t + 1:] = 0
    return y


@pytest.mark.parametrize("name, options", VARIANTS, ids=lambda v: v if isinstance(v, str) else str(v or ""))
@torch.no_grad()
def test_teacher_forced_outputs_up_to_t_ignore_later_frames(name, options):
    model = _model(name, options)
    x = _frames(0)
    out = model(x)
    decoded = model.decode(out.z_next)                     # the paper's reconstruction of frame t
    for t in range(T - 1):
        changed = model(_change_after(x, t))
        torch.testing.assert_close(changed.z[:, :t + 1], out.z[:, :t + 1], rtol=0, atol=0)
        torch.testing.assert_close(changed.z_next[:, :t + 1], out.z_next[:, :t + 1], rtol=0, atol=0)
        torch.testing.assert_close(model.decode(changed.z_next)[:, :t + 1], decoded[:, :t + 1], rtol=0, atol=0)
        # The change is visible after t: the comparison above can fail.
        assert (changed.z_next[:, t + 1:] - out.z_next[:, t + 1:]).abs().max() > 1e-4


@pytest.mark.parametrize("name, options", VARIANTS, ids=lambda v: v if isinstance(v, str) else str(v or ""))
@torch.no_grad()
def test_rollout_ignores_the_frames_after_the_context(name, options):
    model = _model(name, options)
    x = _frames(1)
    changed = _change_after(x, CONTEXT - 1)
    for protocol in ("predict", "rollout"):
        pred, target = frames_for(model, x, protocol, CONTEXT, HORIZON)
        pred_changed, target_changed = frames_for(model, changed, protocol, CONTEXT, HORIZON)
        torch.testing.assert_close(pred_changed, pred, rtol=0, atol=0)
        assert not torch.equal(target_changed, target)  # the future did change
    # Changing the last context frame does change the rollout.
    earlier = _change_after(x, CONTEXT - 2)
    assert not torch.equal(frames_for(model, earlier, "predict", CONTEXT, HORIZON)[0], pred)
    z, z_earlier = model.encode(x[:, :CONTEXT]), model.encode(earlier[:, :CONTEXT])
    assert (model.rollout_latents(z_earlier, HORIZON) - model.rollout_latents(z, HORIZON)).abs().max() > 1e-4


@pytest.mark.parametrize("name", available_models())
@torch.no_grad()
def test_rollout_latents_depend_on_the_context_alone(name):
    model = _model(name, {})
    z = torch.randn(2, CONTEXT, 64, generator=torch.Generator().manual_seed(2))
    first = model.rollout_latents(z, HORIZON)
    again = model.rollout_latents(z.clone(), HORIZON)
    torch.testing.assert_close(again, first, rtol=0, atol=0)
    # The k-th rolled-out latent does not depend on how long the rollout is.
    torch.testing.assert_close(model.rollout_latents(z, 2), first[:, :2], rtol=0, atol=0)
