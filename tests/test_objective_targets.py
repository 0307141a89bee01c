"""Which frame each objective scores each output against, on a hand-made sequence.

The model here is a stand-in whose every part is exact: frame t is one grey level v_t, the
encoder maps it to z_t = logit(v_t), the decoder maps a latent back to that level, and the
predictor is perfect (its output at step t is z_{t+1}). So a decoded output is the frame it
stands for, and a pair of the objective matches its target exactly when the objective scores
the output against the frame it predicts."""

import pytest
import torch

from matap import metrics
from matap.config import ObjectiveConfig
from matap.models import TeacherForced
from matap.objectives import PaperObjective, PredictObjective

T, C = 6, 3  # frames, rollout context


class PerfectModel:
    training = False

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        return torch.logit(frames.mean(dim=(2, 3, 4)))[..., None]  # (B, T, 1): z_t = logit(v_t)

    def content(self, frames: torch.Tensor) -> None:
        return None  # no content path

    def decode(self, z: torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
        size = (4, 4) if frames is None else frames.shape[-2:]
        return z[..., None, None].expand(*z.shape[:2], 1, *size)  # (B, T', 1, H, W) logits: sigmoid(z) everywhere

    def __call__(self, frames: torch.Tensor) -> TeacherForced:
        z = self.encode(frames)
        return TeacherForced(z, torch.cat([z[:, 1:], z[:, -1:]], dim=1))  # the prediction at t is z_{t+1}

    def rollout_latents(self, z_context: torch.Tensor, horizon: int) -> torch.Tensor:
        return self.future[:, z_context.shape[1]:z_context.shape[1] + horizon]

    def rollout_steps(self, z_context: torch.Tensor, horizon: int, content: None = None) -> tuple[torch.Tensor, None]:
        return self.rollout_latents(z_context, horizon), None  # latent feedback: nothing decoded on the way


def grey_sequence(size: int = 4) -> torch.Tensor:
    """(1, T, 1, size, size): frame t is the grey level (t + 1) / (T + 2)."""
    levels = torch.arange(1, T + 1, dtype=torch.float32) / (T + 2)
    return levels[None, :, None, None, None].expand(1, T, 1, size, size).contiguous()


def test_paper_scores_the_prediction_of_frame_t_plus_1_against_frame_t():
    x, model = grey_sequence(), PerfectModel()
    out = PaperObjective(ObjectiveConfig(name="paper"))(model, x, with_frames=True)
    predicted, target = out.pairs["recon"]
    assert set(out.pairs) == {"recon"} and torch.equal(target, x)         # every frame t is a target ...
    torch.testing.assert_close(predicted[:, :-1], x[:, 1:])               # ... of the prediction of frame t+1
    assert out.terms["latent"] == 0                                        # the latent is pulled to z_{t+1}
    assert PaperObjective.target_offset == 0 and PaperObjective.frame_term in out.terms


def test_predict_scores_each_output_against_the_frame_it_stands_for():
    x, model = grey_sequence(), PerfectModel()
    model.future = model.encode(x)
    cfg = ObjectiveConfig(name="predict", rollout_weight=1.0, rollout_context=C)
    out = PredictObjective(cfg)(model, x, with_frames=True)
    assert set(out.pairs) == {"next", "recon", "rollout"}
    for name, (predicted, target) in out.pairs.items():
        torch.testing.assert_close(predicted, target, msg=name)           # a perfect model matches every target
    torch.testing.assert_close(out.pairs["next"][1], x[:, 1:])             # next: frames 2..T
    torch.testing.assert_close(out.pairs["recon"][1], x)                   # the autoencoder: every frame
    torch.testing.assert_close(out.pairs["rollout"][1], x[:, C:])          # the rollout: the frames after the context
    assert out.terms["latent"] == 0 and out.terms["rollout_latent"] == 0
    assert PredictObjective.target_offset == 1 and PredictObjective.frame_term in out.terms


def test_rollout_bce_weight_scales_the_bce_of_the_rollout_term_alone():
    x, model = grey_sequence(size=16), PerfectModel()
    model.future = model.encode(x) + 0.7                                     # rolls out too bright
    target = x[:, C:]
    rolled = torch.sigmoid(model.future[:, C:])[..., None, None].expand_as(target)
    bce = torch.nn.functional.binary_cross_entropy(rolled, target)
    dissimilarity = 1 - metrics.ssim(rolled, target).mean()
    assert bce > 0.1 and dissimilarity > 0.001                             # both parts are there to be weighed
    terms = {}
    for w in (0.0, 0.5, 1.0):
        cfg = ObjectiveConfig(name="predict", rollout_weight=1.0, rollout_context=C, ssim_weight=1.0,
                              rollout_bce_weight=w)
        terms[w] = PredictObjective(cfg)(model, x).terms
        torch.testing.assert_close(terms[w]["rollout"], w * bce + dissimilarity)
    for name in ("next", "ae", "latent"):
        assert terms[0.0][name] == terms[1.0][name]                           # the other terms are untouched


def _latent_term_by_hand(model, encoded: torch.Tensor, detach: bool) -> torch.Tensor:
    """The teacher-forced latent term from the encodings (B, T, d), written out: the prediction of
    z_{t+1} against z_{t+1}, over the spread of the batch (detached target) or, with the target
    attached, over how much each sequence's latents move in time."""
    h, _ = model.unroll(encoded)
    predicted = model.predict(h, encoded)[:, :-1]
    target = encoded[:, 1:]
    if detach:
        return torch.nn.functional.mse_loss(predicted, target.detach()) / target.detach().var()
    return torch.nn.functional.mse_loss(predicted, target) / target.var(dim=1).mean()


@pytest.mark.parametrize("detach", [True, False])
def test_the_latent_terms_value_and_gradient_reach_the_encoding_as_written(detach):
    """latent_detach=True: the gradient reaches the encoder through the prediction alone; False: through
    the target and the spread too, and the spread is each sequence's movement over time."""
    import matap

    torch.manual_seed(0)
    model = matap.build_model("matap").eval()                     # no dropout; batch norm from running statistics
    x = torch.rand(2, 5, 1, 64, 64)
    encoded = []
    handle = model.encoder.register_forward_hook(lambda module, args, out: encoded.append(out) or out.retain_grad())
    out = PredictObjective(ObjectiveConfig(name="predict", latent_detach=detach))(model, x)
    handle.remove()
    out.terms["latent"].backward()
    by_objective = encoded[0].grad.view(2, 5, -1)

    leaf = encoded[0].detach().view(2, 5, -1).requires_grad_()
    by_hand = _latent_term_by_hand(model, leaf, detach)
    by_hand.backward()
    torch.testing.assert_close(out.terms["latent"].detach(), by_hand.detach())
    assert leaf.grad.abs().max() > 1e-5                               # there is a gradient to compare
    torch.testing.assert_close(by_objective, leaf.grad, rtol=1e-4, atol=1e-7)
    if not detach:                                                    # the target's share is really there
        model.zero_grad()
        detached = leaf.detach().requires_grad_()
        _latent_term_by_hand(model, detached, True).backward()
        assert not torch.allclose(leaf.grad, detached.grad, atol=1e-6)


def _levels_sequence(z: torch.Tensor, size: int = 4) -> torch.Tensor:
    """(1, T, 1, size, size) whose frame t is the grey level sigmoid(z_t), so that PerfectModel encodes it as z_t."""
    return torch.sigmoid(z)[None, :, None, None, None].expand(1, len(z), 1, size, size).contiguous()


def test_the_curvature_term_is_zero_on_a_straight_path_and_measures_a_bend():
    model = PerfectModel()
    steps = torch.arange(T, dtype=torch.float32)
    straight = _levels_sequence(-1.5 + 0.5 * steps)                     # z_t on a line: no bend
    bent = _levels_sequence(-1.5 + 0.5 * (steps - 2).abs())            # goes back at t = 2, as a bounce does
    cfg = ObjectiveConfig(name="predict", curvature_weight=2.0)
    off = PredictObjective(ObjectiveConfig(name="predict"))(model, bent)
    on = PredictObjective(cfg)(model, bent)
    assert "curvature" not in off.terms                                   # weight 0: no term at all
    torch.testing.assert_close(PredictObjective(cfg)(model, straight).terms["curvature"], torch.tensor(0.0))

    z = model.encode(bent)                                                # (1, T, 1)
    second = z[:, 2:] - 2 * z[:, 1:-1] + z[:, :-2]                        # 1.0 at the turn, 0 elsewhere
    by_hand = second.pow(2).mean() / z.var(dim=1).mean()
    assert by_hand > 0.1
    torch.testing.assert_close(on.terms["curvature"], by_hand)
    torch.testing.assert_close(on.loss, off.loss + 2.0 * by_hand)        # weighted into the loss, the rest unchanged


def test_the_curvature_term_does_not_reward_latents_that_stand_still():
    """Divided by the movement over time, the term is the same at any scale of the path: shrinking the
    latents towards a constant does not lower it."""
    model = PerfectModel()
    steps = torch.arange(T, dtype=torch.float32)
    cfg = ObjectiveConfig(name="predict", curvature_weight=1.0)
    terms = [PredictObjective(cfg)(model, _levels_sequence(scale * (steps - 2).abs())).terms["curvature"]
             for scale in (1.0, 0.1)]
    torch.testing.assert_close(terms[0], terms[1], rtol=1e-3, atol=1e-6)


def test_with_keypoints_the_curvature_term_can_take_the_positions_alone():
    import matap
    from matap.config import load_config
    from matap.errors import MatapError

    torch.manual_seed(0)
    model = matap.build_model("matap", keypoints=4, track=True).eval()
    x = torch.rand(2, 5, 1, 64, 64)
    whole = PredictObjective(ObjectiveConfig(name="predict", curvature_weight=1.0))(model, x).terms["curvature"]
    alone = PredictObjective(ObjectiveConfig(name="predict", curvature_weight=1.0, curvature_positions=True))(
        model, x).terms["curvature"]
    with torch.no_grad():
        where = model.encode(x)[..., :8]                                  # the 4 keypoints' (x, y), scaled
    second = where[:, 2:] - 2 * where[:, 1:-1] + where[:, :-2]
    torch.testing.assert_close(alone, second.pow(2).mean() / where.var(dim=1).mean(), rtol=1e-4, atol=1e-6)
    assert not torch.allclose(alone, whole)
    with pytest.raises(MatapError, match="curvature_positions"):
        load_config("smoke", ["objective.curvature_weight=1", "objective.curvature_positions=true"])
    with pytest.raises(MatapError, match="curvature_positions"):
        load_config("smoke", ["model.keypoints=4", "objective.curvature_positions=true"])


def test_the_separation_term_is_one_for_keypoints_that_coincide_and_falls_with_their_distance():
    import math

    import matap
    from matap.config import load_config
    from matap.errors import MatapError
    from matap.modules.keypoints import COORD_SCALE
    from matap.objectives import SEPARATION, separation

    # three keypoints in frame units: 0 and 1 one width apart along x, 2 on top of 0; appearance ignored
    where = torch.tensor([[0.0, 0.0], [SEPARATION, 0.0], [0.0, 0.0]])
    z = torch.cat([COORD_SCALE * where.flatten(), torch.randn(3 * 4)])[None, None]   # (1, 1, d = 18)
    expected = (math.exp(-0.5) + 1.0 + math.exp(-0.5)) / 3                             # pairs (0,1), (0,2), (1,2)
    assert separation(z, 3).item() == pytest.approx(expected, rel=1e-6)
    far = torch.cat([COORD_SCALE * torch.tensor([-0.9, -0.9, 0.9, 0.9]), torch.randn(60)])[None, None]
    assert separation(far, 2).item() < 1e-10

    torch.manual_seed(0)
    model = matap.build_model("matap", keypoints=4, track=True).eval()
    x = torch.rand(2, 5, 1, 64, 64)
    plain = PredictObjective(ObjectiveConfig(name="predict"))(model, x)
    pushed = PredictObjective(ObjectiveConfig(name="predict", separation_weight=2.0))(model, x)
    with torch.no_grad():
        own = separation(model.encode(x), 4)
    torch.testing.assert_close(pushed.terms["separation"], own, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(pushed.loss, plain.loss + 2.0 * own, rtol=1e-4, atol=1e-5)
    assert "separation" not in plain.terms
    with pytest.raises(MatapError, match="separation_weight"):
        load_config("smoke", ["objective.separation_weight=1"])
    with pytest.raises(MatapError, match="separation_weight"):
        load_config("smoke", ["model.keypoints=1", "objective.separation_weight=1"])
