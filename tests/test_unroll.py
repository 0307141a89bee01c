"""The paper's cells unroll over known inputs with their input-side work done for all steps at once;
the result must be the step-by-step loop's: outputs, last state and gradients."""

import pytest
import torch

from matap.modules.cells import Cell, MemoryState, gru_step
from matap.registry import CELLS

SWITCHES = [("gru", {}), ("matap", {}), ("matap", {"mask_empty": True}), ("matap", {"use_attention": False}),
            ("matap", {"use_gate": False}), ("matap", {"memory_size": 3})]


def _both(cell: Cell, z: torch.Tensor, state, seed: int = 0):
    """(fast outputs, fast state), (loop outputs, loop state), from the same random state."""
    torch.manual_seed(seed)
    fast = cell.unroll(z, state)
    torch.manual_seed(seed)
    loop = Cell.unroll(cell, z, state)
    return fast, loop


def _close_states(a, b) -> None:
    if isinstance(a, MemoryState):
        torch.testing.assert_close(a.h, b.h)
        torch.testing.assert_close(a.memory, b.memory)
        assert a.filled == b.filled
    else:
        torch.testing.assert_close(a, b)


def test_gru_step_is_the_gru_cell():
    gru = torch.nn.GRUCell(8, 8)
    x, h = torch.randn(5, 8), torch.randn(5, 8)
    torch.testing.assert_close(gru_step(gru, torch.nn.functional.linear(x, gru.weight_ih, gru.bias_ih), h), gru(x, h))


@pytest.mark.parametrize("name, options", SWITCHES)
def test_unroll_matches_the_step_loop(name, options):
    torch.manual_seed(0)
    # In float64: in float32 the two orders of summation differ by about 1e-5 in the gradients on some CPUs
    # (AVX2 without AVX-512), more than a tolerance that would still catch a wrong gradient.
    cell = CELLS.get(name)(**options).double()
    z = torch.randn(3, 14, 64, dtype=torch.float64, requires_grad=True)  # longer than the memory: slots are dropped
    for mode in (cell.eval, cell.train):                  # train: attention dropout draws the same masks
        mode()
        state = cell.initial_state(3, z.device, z.dtype)
        (fast, fast_state), (loop, loop_state) = _both(cell, z, state)
        torch.testing.assert_close(fast, loop)
        _close_states(fast_state, loop_state)
        weights = [z, *cell.parameters()]
        torch.manual_seed(1)
        fast_grads = torch.autograd.grad(cell.unroll(z, state)[0].square().sum(), weights, allow_unused=True)
        torch.manual_seed(1)
        loop_grads = torch.autograd.grad(Cell.unroll(cell, z, state)[0].square().sum(), weights, allow_unused=True)
        for a, b in zip(fast_grads, loop_grads):                # unused (None) alike: the memory write unread
            assert (a is None) == (b is None)
            if a is not None:
                torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-9)


@pytest.mark.parametrize("name, options", SWITCHES)
def test_unroll_continues_from_a_state_as_the_loop_does(name, options):
    torch.manual_seed(0)
    cell = CELLS.get(name)(**options).eval()
    z = torch.randn(2, 9, 64)
    first, state = cell.unroll(z[:, :4], cell.initial_state(2, z.device, z.dtype))  # 4 slots written of K
    (fast, fast_state), (loop, loop_state) = _both(cell, z[:, 4:], state)
    torch.testing.assert_close(fast, loop)
    _close_states(fast_state, loop_state)
    whole, _ = Cell.unroll(cell, z, cell.initial_state(2, z.device, z.dtype))
    torch.testing.assert_close(torch.cat([first, fast], dim=1), whole)


def test_cells_that_change_the_memory_keep_the_step_loop(monkeypatch):
    calls = []
    for name in ("matap-write", "matap-multiscale"):
        cell = CELLS.get(name)().eval()
        monkeypatch.setattr(type(cell), "forward", lambda self, z_t, s, f=type(cell).forward: (calls.append(1), f(self, z_t, s))[1])
        cell.unroll(torch.randn(2, 5, 64), cell.initial_state(2, torch.device("cpu"), torch.float32))
    assert len(calls) == 10                              # every step went through forward
