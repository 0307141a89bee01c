"""The memories beyond FIFO, matap-write and matap-multiscale: their parameter counts and options,
what the slots hold after n steps, and where the learned write writes."""

import math

import pytest
import torch

import matap
from matap.errors import MatapError
from matap.inspection import recording
from matap.models import count_parameters
from matap.modules.memories import LearnedWriteCell, MultiScaleCell, WriteState, level_sizes

MEMORY_PARAMETERS = {"matap-write": 4_911_267, "matap-multiscale": 4_906_977}
CPU = torch.device("cpu")


@pytest.mark.parametrize("name", sorted(MEMORY_PARAMETERS))
def test_parameter_counts_of_the_new_memories(name):
    assert count_parameters(matap.build_model(name)) == MEMORY_PARAMETERS[name]


def test_the_learned_write_adds_its_score_gate_and_staleness_weight():
    d = 64
    added = (d * d + d) + (2 * d + 1) + 1  # W_s, the write gate w_w and b_w, beta
    assert MEMORY_PARAMETERS["matap-write"] - count_parameters(matap.build_model("matap")) == added


def test_cell_options_reach_the_new_cells():
    cell = matap.build_model("matap-multiscale", memory_size=12, scales=2, stride_base=3).cell
    assert (cell.sizes, cell.strides) == ([6, 6], [1, 3])
    assert matap.build_model("matap-write", staleness=2.5).cell.staleness.item() == 2.5
    assert level_sizes(10, 3) == [4, 3, 3] and level_sizes(9, 3) == [3, 3, 3]
    with pytest.raises(MatapError, match="scales"):
        MultiScaleCell(memory_size=2, scales=3)


def cascade(steps: int, sizes: list[int], strides: list[int]) -> list[int]:
    """The step each slot holds after ``steps`` steps, 0 for none, by simulating the levels as lists:
    each step enters level 0; a level that overflows passes its oldest step on to the next level,
    which keeps it if it is a multiple of its stride."""
    levels: list[list[int]] = [[] for _ in sizes]
    for t in range(1, steps + 1):
        moving = t
        for level, size, stride in zip(levels, sizes, strides):
            if moving is None or moving % stride:
                break
            level.append(moving)
            moving = level.pop(0) if len(level) > size else None
    return [s for level, size in reversed(list(zip(levels, sizes))) for s in [0] * (size - len(level)) + level]


@torch.no_grad()
@pytest.mark.parametrize("memory_size, scales, stride_base", [(10, 3, 2), (7, 2, 3), (5, 1, 2)])
def test_the_multiscale_memory_holds_the_writes_of_the_right_steps(memory_size, scales, stride_base):
    torch.manual_seed(0)
    cell = MultiScaleCell(latent_dim=8, memory_size=memory_size, num_heads=2, scales=scales,
                          stride_base=stride_base).eval()
    inputs = torch.randn(45, 2, 8)
    state = cell.initial_state(2, CPU, torch.float32)
    for n, z in enumerate(inputs, 1):
        _, state = cell(z, state)
        held = cascade(n, cell.sizes, cell.strides)
        assert cell.held_steps(n) == held
        expected = torch.stack([cell.memory_write(cell.input_proj(inputs[s - 1])) if s else torch.zeros(2, 8)
                                for s in held], dim=1)  # (B, K, d)
        assert torch.equal(state.memory, expected), n
        assert state.filled == sum(s > 0 for s in held) and state.steps == n
    if scales == 1:  # one level of stride 1 is MA-TAP's FIFO
        assert cell.held_steps(45) == list(range(45 - memory_size + 1, 46))


def test_the_multiscale_memory_reaches_further_back_than_a_fifo():
    cell = matap.build_model("matap-multiscale").cell
    held = cell.held_steps(40)
    assert len(set(held)) == 10 and 0 not in held            # ten different writes, none held twice
    assert 40 + 1 - min(held) == 21                          # the oldest is 21 steps old; a FIFO's is 10
    ages = cell.slot_ages(cell.initial_state(1, CPU, torch.float32)._replace(steps=40))
    assert ages.tolist() == [41 - s for s in held]


def _hand_built(cell: LearnedWriteCell) -> WriteState:
    """A full memory of random slots whose ages are 1..K in a scrambled order."""
    g = torch.Generator().manual_seed(3)
    K, d = cell.memory_size, cell.latent_dim
    age = torch.stack([torch.randperm(K, generator=g).float() + 1 for _ in range(2)])  # (2, K)
    return WriteState(torch.randn(2, d, generator=g), torch.randn(2, K, d, generator=g), K, age)


@torch.no_grad()
def test_the_learned_write_writes_where_its_score_says():
    torch.manual_seed(0)
    cell = LearnedWriteCell(latent_dim=8, memory_size=5, num_heads=2).eval()
    state = _hand_built(cell)
    z = torch.randn(2, 8)
    x = cell.input_proj(z)
    with recording(cell) as recorder:
        h, new = cell(z, state)
    scores = cell.write_scores(h, state)                                           # (B, K)
    slot = scores.argmax(-1)
    m = cell.memory_write(x)
    w = torch.sigmoid(cell.write_gate(torch.cat([h, m], dim=-1)))                  # (B, 1)
    for b in range(2):
        k = int(slot[b])
        torch.testing.assert_close(new.memory[b, k], state.memory[b, k] + w[b] * (m[b] - state.memory[b, k]))
        others = [j for j in range(5) if j != k]
        assert torch.equal(new.memory[b, others], state.memory[b, others])
        assert new.age[b, k] == 1 and torch.equal(new.age[b, others], state.age[b, others] + 1)
    step = recorder.steps[0]
    torch.testing.assert_close(step["write"], w[:, 0])
    assert step["replaced"].tolist() == state.age.gather(1, slot[:, None])[:, 0].tolist()


@torch.no_grad()
def test_with_a_large_staleness_weight_the_learned_write_is_a_circular_fifo():
    torch.manual_seed(0)
    K = 4
    cell = LearnedWriteCell(latent_dim=8, memory_size=K, num_heads=2, staleness=1e4).eval()
    state = cell.initial_state(3, CPU, torch.float32)
    for n in range(1, 11):
        _, state = cell(torch.randn(3, 8), state)
        # slot k is written at steps k + 1, k + 1 + K, ...; never before step k + 1
        expected = [float((n - 1 - k) % K + 1) if k < n else math.inf for k in range(K)]
        assert state.age.tolist() == [expected] * 3


@torch.no_grad()
def test_the_learned_write_masks_the_slots_each_sequence_left_empty():
    torch.manual_seed(0)
    cell = LearnedWriteCell(latent_dim=8, memory_size=4, num_heads=2, mask_empty=True).eval()
    age = torch.tensor([[1.0, math.inf, 2.0, math.inf], [math.inf, 1.0, 2.0, 3.0]])
    state = WriteState(torch.randn(2, 8), torch.randn(2, 4, 8), 3, age)
    with recording(cell) as recorder:
        cell(torch.randn(2, 8), state)
    attention = recorder.steps[0]["attention"]                       # (B, H, K)
    written = torch.isfinite(age)[:, None, :].expand_as(attention)
    assert torch.equal(attention[~written], torch.zeros(int((~written).sum())))
    torch.testing.assert_close(attention.sum(-1), torch.ones(2, 2))
