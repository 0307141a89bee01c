"""Which frame each objective scores each output against, on a hand-made sequence.

The model here is a stand-in whose every part is exact: frame t is one grey level v_t, the
encoder maps it to z_t = logit(v_t), the decoder maps a latent back to that level, and the
predictor is perfect (its output at step t is z_{t+1}). So a decoded output is the frame it
stands for, and a pair of the objective matches its target exactly when the objective scores
the output against the frame it predicts."""

import torch

from matap import metrics
from matap.config import ObjectiveConfig
from matap.models import TeacherForced
from matap.objectives import PaperObjective, PredictObjective

T, C = 6, 3  # frames, rollout context


class PerfectModel:
    training = False
    size = 4  # of the frames it decodes

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        return torch.logit(frames.mean(dim=(2, 3, 4)))[..., None]  # (B, T, 1): z_t = logit(v_t)

    def condition(self, context: torch.Tensor) -> None:
        return None

    def decode(self, z: torch.Tensor, cond=None, at=0) -> torch.Tensor:
        return z[..., None, None].expand(*z.shape[:2], 1, self.size, self.size)  # logits: sigmoid(z) everywhere

    def __call__(self, frames: torch.Tensor) -> TeacherForced:
        z = self.encode(frames)
        return TeacherForced(z, torch.cat([z[:, 1:], z[:, -1:]], dim=1))  # the prediction at t is z_{t+1}

    def rollout_latents(self, z_context: torch.Tensor, horizon: int, cond=None) -> torch.Tensor:
        return self.future[:, z_context.shape[1]:z_context.shape[1] + horizon]

    def rollout_steps(self, z_context: torch.Tensor, horizon: int, cond=None) -> tuple[torch.Tensor, None]:
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
    cfg = ObjectiveConfig(name="predict", weights={"rollout_weight": 1.0}, rollout_context=C)
    out = PredictObjective(cfg)(model, x, with_frames=True)
    assert set(out.pairs) == {"next", "recon", "rollout"}
    for name, (predicted, target) in out.pairs.items():
        torch.testing.assert_close(predicted, target, msg=name)           # a perfect model matches every target
    torch.testing.assert_close(out.pairs["next"][1], x[:, 1:])             # next: frames 2..T
    torch.testing.assert_close(out.pairs["recon"][1], x)                   # the autoencoder: every frame
    torch.testing.assert_close(out.pairs["rollout"][1], x[:, C:])          # the rollout: the frames after the context
    assert out.terms["latent"] == 0 and set(out.terms) == {"next", "ae", "latent", "rollout"}
    assert PredictObjective.target_offset == 1 and PredictObjective.frame_term in out.terms


def test_the_ssim_weight_adds_the_dissimilarity_to_each_frame_term():
    x, model = grey_sequence(size=16), PerfectModel()
    model.size = 16                                                          # SSIM's window needs 11 pixels
    model.future = model.encode(x) + 0.7                                     # rolls out too bright
    target = x[:, C:]
    rolled = torch.sigmoid(model.future[:, C:])[..., None, None].expand_as(target)
    bce = torch.nn.functional.binary_cross_entropy(rolled, target)
    dissimilarity = 1 - metrics.ssim(rolled, target).mean()
    assert bce > 0.1 and dissimilarity > 0.001                             # both parts are there to be weighed
    terms = {w: PredictObjective(ObjectiveConfig(name="predict", weights={"rollout_weight": 1.0}, rollout_context=C,
                                                 ssim_weight=w))(model, x).terms for w in (0.0, 2.0)}
    torch.testing.assert_close(terms[0.0]["rollout"], bce)
    torch.testing.assert_close(terms[2.0]["rollout"], bce + 2.0 * dissimilarity)
    assert terms[0.0]["latent"] == terms[2.0]["latent"]                     # a latent term has no SSIM


def test_the_loss_is_the_weighted_sum_of_the_terms():
    x, model = grey_sequence(), PerfectModel()
    model.future = model.encode(x) + 0.3
    cfg = ObjectiveConfig(name="predict", ae_weight=0.5, latent_weight=0.2, weights={"rollout_weight": 3.0}, rollout_context=C)
    out = PredictObjective(cfg)(model, x)
    t = out.terms
    torch.testing.assert_close(out.loss, t["next"] + 0.5 * t["ae"] + 0.2 * t["latent"] + 3.0 * t["rollout"])
    assert "rollout" not in PredictObjective(ObjectiveConfig(name="predict"))(model, x).terms   # weight 0: not run


def _latent_term_by_hand(model, encoded: torch.Tensor) -> torch.Tensor:
    """The teacher-forced latent term from the encodings (B, T, d), written out: the prediction of
    z_{t+1} against the detached z_{t+1}, over the spread of the batch."""
    h, _ = model.unroll(encoded)
    predicted = model.predict_sequence(h, encoded)[:, :-1]
    target = encoded[:, 1:]
    return torch.nn.functional.mse_loss(predicted, target.detach()) / target.detach().var()


def test_the_latent_terms_value_and_gradient_reach_the_encoding_through_the_prediction_alone():
    import matap

    torch.manual_seed(0)
    model = matap.build_model("matap").eval()                     # no dropout; batch norm from running statistics
    x = torch.rand(2, 5, 1, 64, 64)
    encoded = []
    handle = model.encoder.register_forward_hook(lambda module, args, out: encoded.append(out) or out.retain_grad())
    out = PredictObjective(ObjectiveConfig(name="predict"))(model, x)
    handle.remove()
    out.terms["latent"].backward()
    by_objective = encoded[0].grad.view(2, 5, -1)

    leaf = encoded[0].detach().view(2, 5, -1).requires_grad_()
    by_hand = _latent_term_by_hand(model, leaf)
    by_hand.backward()
    torch.testing.assert_close(out.terms["latent"].detach(), by_hand.detach())
    assert leaf.grad.abs().max() > 1e-5                               # there is a gradient to compare
    torch.testing.assert_close(by_objective, leaf.grad, rtol=1e-4, atol=1e-7)
