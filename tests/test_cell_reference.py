"""The MA-TAP cell against an independent implementation of Eq. 1-5.

The reference below shares no code with ``matap.modules.cells``: the GRU is
written out gate by gate, the attention is ``torch.nn.MultiheadAttention``
(packed q/k/v projections, its own scaling, softmax and head split), the
LayerNorms are written out. Only the weights are copied from the cell, by
name. Both are stepped over the same inputs and must agree at every step.

As the public reference does (and the paper's Eq. 2 does not say), the
attention at step t reads the memory before this step's write, M_{t-1}.
"""

import pytest
import torch
from torch import nn

from matap.modules.cells import MATAPCell

D, HEADS, STEPS, BATCH = 64, 4, 14, 3


def _layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = (x - mean).pow(2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


class ReferenceCell:
    """Eq. 1-5 with the weights of ``cell``, computed another way."""

    def __init__(self, cell: MATAPCell) -> None:
        self.w = {k: v.detach().clone() for k, v in cell.state_dict().items()}
        self.eps_context, self.eps_out = cell.norm_context.eps, cell.norm_out.eps
        self.K = cell.memory_size
        self.mask_empty = cell.mask_empty
        self.attention = None
        if "attention.q_proj.weight" in self.w:
            w = self.w
            self.attention = nn.MultiheadAttention(D, HEADS, dropout=0.0, batch_first=True)
            with torch.no_grad():
                self.attention.in_proj_weight.copy_(torch.cat([w[f"attention.{p}_proj.weight"] for p in "qkv"]))
                self.attention.in_proj_bias.copy_(torch.cat([w[f"attention.{p}_proj.bias"] for p in "qkv"]))
                self.attention.out_proj.weight.copy_(w["attention.out_proj.weight"])
                self.attention.out_proj.bias.copy_(w["attention.out_proj.bias"])
            self.attention.eval()

    def gru(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One GRU step, gates in PyTorch's order (reset, update, new), separate input and hidden biases."""
        w = self.w
        gx = x @ w["gru.weight_ih"].T + w["gru.bias_ih"]      # (B, 3d)
        gh = h @ w["gru.weight_hh"].T + w["gru.bias_hh"]      # (B, 3d)
        r = torch.sigmoid(gx[:, :D] + gh[:, :D])
        u = torch.sigmoid(gx[:, D:2 * D] + gh[:, D:2 * D])
        n = torch.tanh(gx[:, 2 * D:] + r * gh[:, 2 * D:])
        return (1 - u) * n + u * h

    def step(self, z: torch.Tensor, h: torch.Tensor, memory: torch.Tensor, written: int
             ) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.w
        x = z @ w["input_proj.weight"].T + w["input_proj.bias"]                        # W_in z_t
        h_local = self.gru(x, h)                                                        # Eq. 1
        if self.attention is None or (self.mask_empty and written == 0):
            raw = torch.zeros_like(h_local)
        else:
            pad = None
            if self.mask_empty:  # True marks a slot to ignore: the oldest K - written are empty
                pad = (torch.arange(self.K) < self.K - written).expand(z.shape[0], self.K)
            raw, _ = self.attention(h_local[:, None], memory, memory, key_padding_mask=pad, need_weights=False)
            raw = raw[:, 0]                                                              # Eq. 2, reads M_{t-1}
        c = _layer_norm(raw, w["norm_context.weight"], w["norm_context.bias"], self.eps_context)
        c_proj = torch.tanh(c @ w["context_proj.weight"].T + w["context_proj.bias"])
        if "gate.weight" in w:
            alpha = torch.sigmoid(torch.cat([h_local, c_proj], -1) @ w["gate.weight"].T + w["gate.bias"])  # Eq. 3
        else:
            alpha = torch.full_like(h_local, 0.5)
        h_new = _layer_norm((1 - alpha) * h_local + alpha * c_proj, w["norm_out.weight"], w["norm_out.bias"],
                            self.eps_out)                                                # Eq. 4
        write = x @ w["memory_write.weight"].T + w["memory_write.bias"]
        return h_new, torch.cat([memory[:, 1:], write[:, None]], dim=1)                  # Eq. 5, FIFO


@pytest.mark.parametrize("options", [
    {}, {"mask_empty": True}, {"use_attention": False}, {"use_gate": False}, {"memory_size": 3},
], ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "paper")
@torch.no_grad()
def test_cell_matches_an_independent_implementation(options):
    torch.manual_seed(0)
    cell = MATAPCell(D, num_heads=HEADS, attn_dropout=0.1, **options).eval()
    with torch.no_grad():  # non-trivial LayerNorm affine parameters, so that copying them matters
        for norm in (cell.norm_context, cell.norm_out):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    ref = ReferenceCell(cell)
    zs = torch.randn(STEPS, BATCH, D, generator=torch.Generator().manual_seed(1))
    state = cell.initial_state(BATCH, torch.device("cpu"), torch.float32)
    h, memory = torch.zeros(BATCH, D), torch.zeros(BATCH, cell.memory_size, D)
    for t, z in enumerate(zs):
        out, state = cell(z, state)
        h, memory = ref.step(z, h, memory, min(t, cell.memory_size))
        torch.testing.assert_close(out, h, rtol=0, atol=1e-5, msg=lambda m: f"step {t + 1}: {m}")
        torch.testing.assert_close(state.memory, memory, rtol=0, atol=1e-5, msg=lambda m: f"step {t + 1}: {m}")


@torch.no_grad()
def test_no_attention_reads_the_context_layernorms_bias():
    """``use_attention=False``: the context is LN(0), the LayerNorm's learned bias, a learned constant."""
    torch.manual_seed(0)
    cell = MATAPCell(D, num_heads=HEADS, use_attention=False).eval()
    cell.norm_context.bias.normal_()
    state = cell.initial_state(2, torch.device("cpu"), torch.float32)
    query = torch.randn(2, D)
    torch.testing.assert_close(cell.read_memory(query, state), cell.norm_context.bias.expand(2, D))
