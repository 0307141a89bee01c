import pytest
import torch

import matap
from matap.errors import MatapError
from matap.models import available_models, count_parameters
from matap.modules.cells import MATAPCell

PAPER_PARAMETERS = {"gru": 4_873_633, "matap": 4_906_977}


@pytest.mark.parametrize("name", sorted(PAPER_PARAMETERS))
def test_trainable_parameters_match_the_paper(name):
    assert count_parameters(matap.build_model(name)) == PAPER_PARAMETERS[name]


def test_matap_adds_exactly_the_papers_difference():
    assert count_parameters(matap.build_model("matap")) - count_parameters(matap.build_model("gru")) == 33_344


@pytest.mark.parametrize("name", available_models())
def test_shapes_gradients_and_finiteness(name):
    torch.manual_seed(0)
    model = matap.build_model(name)
    x = torch.rand(2, 6, 1, 64, 64)
    out = model(x)
    assert out.z.shape == (2, 6, 64) and out.z_next.shape == (2, 6, 64)
    logits = model.decode(out.z_next)
    assert logits.shape == x.shape
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, x) + (out.z_next - out.z).pow(2).mean()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing
    assert all(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("name", available_models())
def test_rollout_any_horizon(name):
    model = matap.build_model(name).eval()
    with torch.no_grad():
        frames = model.rollout(torch.rand(2, 3, 1, 64, 64), horizon=25)
    assert frames.shape == (2, 25, 1, 64, 64)
    assert frames.min() >= 0 and frames.max() <= 1


@pytest.mark.parametrize(
    "overrides",
    [{"use_attention": False}, {"use_gate": False}, {"mask_empty": True}, {"memory_size": 5}, {"memory_size": 20},
     {"use_attention": False, "use_gate": False}],
)
def test_ablation_switches_build_and_run(overrides):
    model = matap.build_model("matap", **overrides)
    out = model(torch.rand(1, 4, 1, 64, 64))
    assert torch.isfinite(out.z_next).all()
    n = count_parameters(model)
    if overrides.get("use_gate") is False:
        assert n < PAPER_PARAMETERS["matap"]
    if list(overrides) == ["memory_size"]:  # K changes the buffer, not the parameters
        assert n == PAPER_PARAMETERS["matap"]


def test_memory_is_a_fifo_of_projected_inputs():
    torch.manual_seed(0)
    cell = MATAPCell(latent_dim=8, memory_size=3, num_heads=2).eval()
    state = cell.initial_state(1, torch.device("cpu"), torch.float32)
    inputs = [torch.randn(1, 8) for _ in range(4)]
    for z in inputs:
        _, state = cell(z, state)
    expected = torch.stack([cell.memory_write(cell.input_proj(z)) for z in inputs[-3:]], dim=1)
    torch.testing.assert_close(state.memory, expected)
    assert state.filled == 3


def test_masking_hides_empty_slots():
    torch.manual_seed(0)
    masked = MATAPCell(latent_dim=8, memory_size=4, num_heads=2, mask_empty=True).eval()
    plain = MATAPCell(latent_dim=8, memory_size=4, num_heads=2).eval()
    plain.load_state_dict(masked.state_dict())
    z = torch.randn(1, 8)
    s_m = masked.initial_state(1, torch.device("cpu"), torch.float32)
    s_p = plain.initial_state(1, torch.device("cpu"), torch.float32)
    # With one slot written, a masked read equals attention over that slot alone.
    _, s_m = masked(z, s_m)
    _, s_p = plain(z, s_p)
    h_local = masked.gru(masked.input_proj(z), s_m.h)
    only = masked.attention(h_local, s_m.memory[:, -1:])
    torch.testing.assert_close(masked.read_memory(h_local, s_m), masked.norm_context(only))
    assert not torch.allclose(plain.read_memory(h_local, s_p), masked.read_memory(h_local, s_m))


def test_build_model_rejects_bad_options():
    with pytest.raises(MatapError):
        matap.build_model("lstm")
    with pytest.raises(MatapError):
        matap.build_model("matap", memory=3)
    with pytest.raises(Exception, match="num_heads"):
        matap.build_model("matap", num_heads=5)
    with pytest.raises(Exception, match="memory_size"):
        matap.build_model("matap", memory_size=0)
