"""The MA-TAP cell's ablation switches do what their names say, and a rollout starts where
teacher forcing ends."""

import pytest
import torch

import matap
from matap.modules.cells import MATAPCell


def second_step(**switch: bool) -> tuple[MATAPCell, torch.Tensor, torch.Tensor, object]:
    """A cell with an ablation switch, stepped twice from its initial state (the second step reads a
    written memory slot); returns the cell, the second step's GRU output h~_t, its output h_t and the
    state it read."""
    torch.manual_seed(0)
    cell = MATAPCell(latent_dim=8, memory_size=3, num_heads=2, **switch).eval()
    z = torch.randn(2, 8)
    state = cell.initial_state(2, z.device, z.dtype)
    _, state = cell(z, state)
    h, _ = cell(2 * z, state)
    return cell, cell.gru(cell.input_proj(2 * z), state.h), h, state


@torch.no_grad()
def test_without_the_gate_the_mix_is_half_and_half():
    cell, h_local, h, state = second_step(use_gate=False)
    assert cell.gate is None
    context = torch.tanh(cell.context_proj(cell.read_memory(h_local, state)))
    torch.testing.assert_close(h, cell.norm_out(0.5 * h_local + 0.5 * context))


@torch.no_grad()
def test_without_attention_the_context_is_zero():
    cell, h_local, h, state = second_step(use_attention=False)
    assert cell.attention is None
    zero = cell.norm_context(torch.zeros_like(h_local))                    # c_t = LN(0): the LayerNorm's bias alone
    torch.testing.assert_close(cell.read_memory(h_local, state), zero)
    context = torch.tanh(cell.context_proj(zero))
    alpha = torch.sigmoid(cell.gate(torch.cat([h_local, context], dim=-1)))
    torch.testing.assert_close(h, cell.norm_out((1 - alpha) * h_local + alpha * context))


@pytest.mark.parametrize("name", ["matap", "gru"])
def test_the_first_rollout_latent_is_the_teacher_forced_prediction_at_the_last_context_step(name):
    torch.manual_seed(0)
    model = matap.build_model(name).eval()
    x = torch.rand(2, 7, 1, 64, 64)
    context = 4
    with torch.no_grad():
        forced = model(x).z_next[:, context - 1]                           # P(h_C): the cell saw frames 1..C
        rolled = model.rollout_latents(model.encode(x[:, :context]), horizon=3)
    assert rolled.shape == (2, 3, 64)
    torch.testing.assert_close(rolled[:, 0], forced)
