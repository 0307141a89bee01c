"""The recording behind `matap inspect`: it reports exactly what a cell computed (attention weights
that sum to one over the slots read, the gate), and the forward pass is the same with it or without."""

import json

import numpy as np
import pytest
import torch
from torch import nn

import matap
from matap.inspection import recording
from matap.modules.cells import MATAPCell, MemoryState
from matap.registry import CELLS

MEMORY_CELLS = [name for name in CELLS if name != "gru"]
CPU = torch.device("cpu")


@pytest.mark.parametrize("name", MEMORY_CELLS)
@pytest.mark.parametrize("train, mask_empty", [(False, False), (False, True), (True, False)])
def test_recording_leaves_the_forward_pass_bit_identical(name, train, mask_empty):
    torch.manual_seed(0)
    model = matap.build_model(name, mask_empty=mask_empty).train(train)
    x = torch.rand(2, 6, 1, 64, 64)

    def run() -> tuple[torch.Tensor, ...]:
        torch.manual_seed(1)  # the same dropout masks: a recording must not draw random numbers either
        out = model(x)
        with torch.no_grad():
            return out.z, out.z_next, model.rollout(x[:, :3], horizon=4)

    plain = run()
    with recording(model) as recorder:
        recorded = run()
    again = run()
    for a, b, c in zip(plain, recorded, again):
        assert torch.equal(a, b) and torch.equal(a, c)
    assert len(recorder.steps) == 6 + 3 + 3                  # teacher-forced 6 steps, rollout 3 + 3
    assert all(module.recorder is None for module in model.modules() if hasattr(module, "recorder"))


@torch.no_grad()
@pytest.mark.parametrize("mask_empty", [True, False])
def test_recorded_attention_sums_to_one_over_the_valid_slots(mask_empty):
    torch.manual_seed(0)
    cell = MATAPCell(latent_dim=8, memory_size=5, num_heads=2, mask_empty=mask_empty).eval()
    state = MemoryState(torch.randn(3, 8), torch.randn(3, 5, 8), 3)  # slots 2, 3, 4 written
    with recording(cell) as recorder:
        cell(torch.randn(3, 8), state)
    (step,) = recorder.steps
    attention = step["attention"]                                    # (B, H, K)
    assert attention.shape == (3, 2, 5)
    valid = slice(2, None) if mask_empty else slice(None)
    torch.testing.assert_close(attention[..., valid].sum(-1), torch.ones(3, 2))
    if mask_empty:
        assert torch.equal(attention[..., :2], torch.zeros(3, 2, 2))
    ages = cell.slot_ages(state)
    torch.testing.assert_close(step["ages"], ages, equal_nan=True)
    assert ages[:2].isnan().all() and ages[2:].tolist() == [3.0, 2.0, 1.0]


class FixedLogits(nn.Module):
    """Stands in for the gate's linear layer: the same logits whatever its input."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(features.shape[0], -1).clone()


@torch.no_grad()
@pytest.mark.parametrize("name", MEMORY_CELLS)
def test_a_forced_gate_is_recorded_exactly(name, monkeypatch):
    torch.manual_seed(0)
    cell = matap.build_model(name, latent_dim=8, num_heads=2).cell.eval()
    logits = torch.linspace(-3, 3, 8)[None]                          # (1, d)
    monkeypatch.setattr(cell, "gate", FixedLogits(logits))
    state = cell.initial_state(2, CPU, torch.float32)
    z = torch.randn(3, 2, 8)
    with recording(cell) as recorder:
        for t in range(3):
            h, new = cell(z[t], state)
            step = recorder.steps[-1]
            assert torch.equal(step["gate"], torch.sigmoid(logits.expand(2, -1).clone()))
            a, h_local, context = step["gate"], step["gru"], step["context"]
            assert torch.equal(h_local, cell.gru(cell.input_proj(z[t]), state.h))
            torch.testing.assert_close(h, cell.norm_out((1 - a) * h_local + a * context), rtol=0, atol=0)
            state = new


def test_inspect_writes_the_arrays_and_figures_of_both_passes(smoke_run, tmp_path):
    from matap.cli import main

    assert main(["inspect", str(smoke_run), "--num", "2", "--horizon", "6", "--out", str(tmp_path), "--gif"]) == 0
    result = json.loads((tmp_path / "inspect.json").read_text())
    assert result["model"] == "matap" and result["steps"] == 4 + 6 - 1          # smoke: eval.context 4
    assert result["files"] == ["gate.png", "attention.png", "ages.png", "attention.gif"]
    assert all((tmp_path / name).stat().st_size > 0 for name in result["files"])
    forced, rolled = result["passes"]["teacher_forced"], result["passes"]["rollout"]
    assert np.array(forced["attention"], dtype=float).shape == (2, 9, 4, 10)     # (N, S, H, K)
    assert np.array(forced["gate"], dtype=float).shape == (2, 9, 64)            # (N, S, d)
    ages = np.array(forced["ages"], dtype=float)                                 # null: never written
    assert np.isnan(ages[:, 0]).all()                                            # step 1: K empty slots
    assert np.isnan(ages[:, -1, :2]).all() and ages[0, -1, 2:].tolist() == list(range(8, 0, -1))  # step 9: 8 writes
    # The context steps read the same frames in both passes; after them the rollout reads its own.
    np.testing.assert_allclose(np.array(rolled["gate"])[:, :4], np.array(forced["gate"])[:, :4], atol=1e-5)
    for phase in ("context", "after"):
        assert set(result["summary"]["rollout"][phase]) == {"gate", "memory_share", "attention_empty",
                                                            "attention_newest", "attended_age"}


@pytest.mark.parametrize("switch", [{"mask_empty": True}, {"use_attention": False}])
def test_the_figures_of_a_step_without_a_read_and_of_a_memory_never_read(switch, tmp_path):
    from matap.inspection import ages_figure, attention_figure, gate_figure, summary, trace

    torch.manual_seed(0)
    model = matap.build_model("matap", **switch).eval()
    passes, predicted = trace(model, torch.rand(2, 1 + 5, 1, 64, 64), context=1, horizon=5)
    assert predicted.shape == (2, 5, 1, 64, 64)
    values = summary(passes, context=1)["rollout"]
    if switch.get("mask_empty"):  # step 1 reads nothing: the context phase has no attention to average
        assert np.isnan(passes["rollout"]["attention"][:, 0]).all()
        assert values["context"]["attention_newest"] is None and values["after"]["attention_newest"] > 0
        attention_figure(passes, 1, tmp_path / "attention.png")
        ages_figure(passes, 1, tmp_path / "ages.png")
    else:
        assert "attention" not in passes["rollout"] and set(values["after"]) == {"gate", "memory_share"}
    gate_figure(passes, 1, tmp_path / "gate.png")
    assert all(path.stat().st_size > 0 for path in tmp_path.iterdir())
