"""The ingredients of prediction training: a stream of fresh training sequences, the
rollout curriculum, and the time budget."""

import numpy as np
import pytest
import torch

from matap.config import DataConfig, ObjectiveConfig, load_config
from matap.data import GeneratedVideos, generate, generated_split, make_loader, training_stream
from matap.data.digits import load_digits
from matap.errors import MatapError
from matap.models import build_model, count_parameters
from matap.objectives import PredictObjective


def _stream_config(tmp_path, **kw) -> DataConfig:
    kw = {"train_size": 6, "val_size": 4, "seq_len": 5, **kw}
    return DataConfig(stream=True, cache_dir=str(tmp_path), **kw)


def test_stream_epoch_zero_is_the_cached_training_set_and_later_epochs_are_new(tmp_path):
    cfg = _stream_config(tmp_path)
    stream = training_stream(cfg)
    loader = make_loader(stream, 3, shuffle=True, seed=1)
    epoch0 = torch.cat(list(loader))
    cached = np.asarray(generated_split(cfg, "train"))
    # the same sequences as the cached set, in a shuffled order
    assert sorted(v.tobytes() for v in epoch0.numpy()) == sorted(v.tobytes() for v in cached)
    loader.sampler.set_epoch(1)
    epoch1 = torch.cat(list(loader)).numpy()
    expected = generate(load_digits("mnist", "train"), cfg.seed, "train", range(6, 12), seq_len=5)
    assert sorted(v.tobytes() for v in epoch1) == sorted(v.tobytes() for v in expected)
    assert not set(v.tobytes() for v in epoch1) & set(v.tobytes() for v in cached)


def test_stream_is_a_function_of_seed_and_index(tmp_path):
    cfg = _stream_config(tmp_path)
    a, b = training_stream(cfg), training_stream(cfg)
    np.testing.assert_array_equal(a.__getitems__([40, 3]).numpy(), b.__getitems__([40, 3]).numpy())
    np.testing.assert_array_equal(a[40].numpy(), b.__getitems__([7, 40])[1].numpy())
    other_seed = training_stream(_stream_config(tmp_path, seed=1))
    assert not torch.equal(a[40], other_seed[40])
    first, again = make_loader(a, 2, True, seed=5), make_loader(b, 2, True, seed=5)
    for loader in (first, again):
        loader.sampler.set_epoch(3)
    assert all(torch.equal(x, y) for x, y in zip(first, again))


def _crop(image: np.ndarray) -> bytes:
    rows, cols = np.nonzero(image)
    return image[rows.min():rows.max() + 1, cols.min():cols.max() + 1].tobytes()


def test_stream_draws_training_digits_only(tmp_path):
    train, held_out = load_digits("mnist", "train"), load_digits("mnist", "val")
    train_crops = {_crop(d) for d in train if d.any()}
    held_out_crops = {_crop(d) for d in held_out if d.any()} - train_crops
    stream = training_stream(_stream_config(tmp_path, num_digits=1, motion="classic", seq_len=1))
    assert isinstance(stream, GeneratedVideos)
    frames = stream.__getitems__(list(range(1000, 1050))).numpy()[:, 0]  # one digit on black: the digit itself
    crops = {_crop(f) for f in frames}
    assert crops <= train_crops
    assert not crops & held_out_crops


def test_test_split_uses_held_out_digits_and_differs_from_validation(tmp_path):
    np.testing.assert_array_equal(load_digits("mnist", "test"), load_digits("mnist", "val"))
    cfg = DataConfig(train_size=2, val_size=3, seq_len=4, cache_dir=str(tmp_path))
    val, test = generated_split(cfg, "val"), generated_split(cfg, "test")
    assert test.shape == val.shape and not np.array_equal(test, val)


def test_stream_needs_generated_data():
    with pytest.raises(MatapError, match="data.stream"):
        load_config("smoke", ["data.stream=true", "data.source=array", "data.train_path=a.npy",
                              "data.val_path=b.npy"])


@pytest.mark.parametrize("progress, expected", [(0.0, 1), (0.1, 3), (0.25, 6), (0.49, 10), (0.5, 10), (1.0, 10)])
def test_rollout_curriculum_grows_the_horizon(progress, expected):
    objective = PredictObjective(ObjectiveConfig(weights={"rollout_weight": 1.0}, rollout_context=10, rollout_ramp=0.5))
    assert objective.rollout_horizon(20, progress) == expected


def test_without_a_ramp_the_full_horizon_is_trained_from_the_start():
    objective = PredictObjective(ObjectiveConfig(weights={"rollout_weight": 1.0}, rollout_context=4, rollout_ramp=0.0))
    assert objective.rollout_horizon(8, 0.0) == 4


def test_rollout_term_scores_the_curriculum_horizon_against_the_right_frames():
    torch.manual_seed(0)
    model = build_model("matap", encoder_dropout=0.0, predictor_dropout=0.0, attn_dropout=0.0).eval()
    objective = PredictObjective(ObjectiveConfig(weights={"rollout_weight": 1.0}, rollout_context=3, rollout_ramp=0.5))
    x = torch.rand(2, 8, 1, 64, 64)
    out = objective(model, x, with_frames=True, progress=0.2)  # horizon 1 + int(0.4 * 5) = 3
    pred, target = out.pairs["rollout"]
    assert pred.shape == (2, 3, 1, 64, 64)
    torch.testing.assert_close(target, x[:, 3:6])
    with torch.no_grad():
        torch.testing.assert_close(pred, model.rollout(x[:, :3], 3), atol=1e-5, rtol=1e-4)
    full = objective(model, x, with_frames=True)  # validation: progress 1, every frame after the context
    assert full.pairs["rollout"][0].shape[1] == 5


def _frame_feedback_model():
    torch.manual_seed(0)
    return build_model("matap", encoder_dropout=0.0, predictor_dropout=0.0, attn_dropout=0.0,
                       rollout_feedback="frame").eval()


def test_frame_feedback_feeds_the_encoding_of_each_decoded_frame_back_into_the_cell():
    model = _frame_feedback_model()
    context = torch.rand(2, 3, 1, 64, 64)
    with torch.no_grad():
        h, state = model.unroll(model.encode(context))
        z_next, expected = model.predictor(h[:, -1]), []
        for _ in range(4):
            frame = torch.sigmoid(model.decoder(z_next))
            expected.append(frame)
            h_t, state = model.cell(model.encoder(frame), state)
            z_next = model.predictor(h_t)
        torch.testing.assert_close(model.rollout(context, 4), torch.stack(expected, dim=1))
        # the first step is the teacher-forced prediction from the context, whatever the feedback
        model.feedback = "latent"
        torch.testing.assert_close(model.rollout(context, 1), expected[0][:, None])


def _plain_and(feedback: str, **option: str):
    """The paper's model without dropout, and the same weights with another part (``option``)."""
    torch.manual_seed(0)
    models = [build_model("matap", encoder_dropout=0.0, predictor_dropout=0.0, attn_dropout=0.0,
                          rollout_feedback=feedback, **extra).eval() for extra in ({}, option)]
    models[1].load_state_dict(models[0].state_dict())
    assert count_parameters(models[1]) == count_parameters(models[0])
    return models


def _rollout_by_hand(model, paper_predictor, context: torch.Tensor, feedback: str, start) -> torch.Tensor:
    """Three rolled-out latents written out: each is start(fed, fed one step before) + P(h), where fed is
    the cell's input (the last context latent first, then the latent or the encoding of its frame) and P
    the paper's predictor."""
    h, state = model.unroll(context)
    before, fed = context[:, -2], context[:, -1]
    z_next, expected = start(fed, before) + paper_predictor(h[:, -1]), []
    for _ in range(3):
        expected.append(z_next)
        frame = torch.sigmoid(model.decoder(z_next))
        before, fed = fed, (model.encoder(frame) if feedback == "frame" else z_next)
        h_t, state = model.cell(fed, state)
        z_next = start(fed, before) + paper_predictor(h_t)
    return torch.stack(expected, dim=1)


@pytest.mark.parametrize("feedback", ["latent", "frame"])
def test_velocity_predictor_extends_the_last_step_and_has_no_parameters(feedback):
    plain, moving = _plain_and(feedback, predictor="velocity")
    x = torch.rand(2, 5, 1, 64, 64)
    with torch.no_grad():
        out, ref = moving(x), plain(x)
        z = ref.z
        line = torch.cat([z[:, :1], 2 * z[:, 1:] - z[:, :-1]], dim=1)      # no movement before the first step
        torch.testing.assert_close(out.z_next, line + ref.z_next)           # z^_{t+1} = 2 z_t - z_{t-1} + P(h_t)
        # a rollout extends the last two inputs of the cell: the context's, then what it fed back
        context = moving.encode(x[:, :3])
        torch.testing.assert_close(moving.rollout_latents(context, 3),
                                   _rollout_by_hand(moving, plain.predictor, context, feedback,
                                                    lambda fed, before: 2 * fed - before))


def test_velocity_predictor_with_no_correction_rolls_out_a_straight_line():
    torch.manual_seed(0)
    model = build_model("matap", predictor_dropout=0.0, predictor="velocity").eval()
    for p in model.predictor.parameters():
        torch.nn.init.zeros_(p)                                             # P(h) = 0: the line alone
    context = torch.randn(2, 4, 64)
    with torch.no_grad():
        rolled = model.rollout_latents(context, 5)
    step = context[:, -1] - context[:, -2]
    line = torch.stack([context[:, -1] + k * step for k in range(1, 6)], dim=1)
    torch.testing.assert_close(rolled, line)


def test_frame_feedback_rollout_term_scores_the_frames_the_rollout_decoded():
    model = _frame_feedback_model()
    objective = PredictObjective(ObjectiveConfig(weights={"rollout_weight": 1.0}, rollout_context=3))
    x = torch.rand(2, 6, 1, 64, 64)
    out = objective(model, x, with_frames=True)
    pred, target = out.pairs["rollout"]
    torch.testing.assert_close(target, x[:, 3:6])
    with torch.no_grad():
        torch.testing.assert_close(pred, model.rollout(x[:, :3], 3), atol=1e-5, rtol=1e-4)
    model.train()
    loss = objective(model, x, progress=1.0).loss
    loss.backward()
    assert torch.isfinite(loss) and model.encoder.features[0][0].weight.grad.abs().sum() > 0


def test_time_budget_stops_before_an_epoch_that_would_not_fit(tmp_path):
    from matap.cli import main

    run = tmp_path / "budget"
    # 0.001 minutes: the first epoch already takes longer, so no second epoch starts.
    assert main(["train", "--config", "smoke", "--out", str(run), "train.epochs=4", "train.max_time=0.001",
                 "train.schedule=cosine", "data.stream=true"]) == 0
    rows = (run / "history.csv").read_text().strip().splitlines()
    assert len(rows) == 2
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["matap_train_seconds"] > 0.06


def test_ssim_weight_adds_one_minus_ssim_to_each_frame_term():
    torch.manual_seed(0)
    model = build_model("matap").eval()
    x = torch.rand(2, 6, 1, 64, 64).pow(4)
    plain = PredictObjective(ObjectiveConfig(weights={"rollout_weight": 1.0}, rollout_context=3))
    weighted = PredictObjective(ObjectiveConfig(weights={"rollout_weight": 1.0}, rollout_context=3, ssim_weight=2.0))
    with torch.no_grad():
        a, b = plain(model, x, with_frames=True), weighted(model, x, with_frames=True)
    from matap import metrics

    for term, pair in (("next", "next"), ("ae", "recon"), ("rollout", "rollout")):
        pred, target = a.pairs[pair]
        expected = a.terms[term] + 2.0 * (1 - metrics.ssim(pred, target).mean())
        torch.testing.assert_close(b.terms[term], expected, atol=1e-5, rtol=1e-5)
    assert b.loss > a.loss


def test_warm_restarts_start_each_cycle_at_the_full_rate_and_end_at_zero():
    from matap.training.module import warm_restarts

    assert warm_restarts(0.0) == 1.0 and warm_restarts(1.0) == 0.0
    for start, length in ((0, 1), (1, 2), (3, 4)):           # cycles of 1/7, 2/7 and 4/7 of training
        torch.testing.assert_close(warm_restarts((start + 1e-9) / 7), 1.0)
        torch.testing.assert_close(warm_restarts((start + length / 2) / 7), 0.5)
        torch.testing.assert_close(warm_restarts((start + length - 1e-9) / 7), 0.0, atol=1e-6, rtol=0)
    inside = [warm_restarts(p / 1000) for p in range(1, 142)]  # the first cycle: falling all the way
    assert all(a > b for a, b in zip(inside, inside[1:]))


def test_restarts_schedule_sets_the_rate_from_training_progress():
    from matap.config import load_config
    from matap.training.module import MatapModule, warm_restarts

    module = MatapModule(load_config("smoke", ["train.schedule=restarts", "train.lr=0.01", "train.max_time=5"]).to_dict())
    done = {"share": 0.0}
    module.progress = lambda: done["share"]
    scheduler = module.configure_optimizers()["lr_scheduler"]["scheduler"]
    for share in (0.05, 0.2, 0.5, 0.99):
        done["share"] = share
        scheduler.optimizer.step()                               # no gradients: the weights stay
        scheduler.step()
        torch.testing.assert_close(scheduler.get_last_lr()[0], 0.01 * warm_restarts(share))
