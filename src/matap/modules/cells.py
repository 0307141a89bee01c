"""Recurrent cells. Every cell maps ``(z_t, state) -> (h_t, state)``.

A new cell subclasses :class:`Cell`, implements ``initial_state`` and
``forward``, and is registered as a model name with ``@register_cell(name)``;
its constructor receives the keys of the model config that it names, and its
own options (keywords with defaults) are set as ``model.<option>=value``.
Nothing else changes. ``Cell.unroll`` (the teacher-forced pass over known
inputs) loops over ``forward``; a cell may override it with a faster
computation of the same numbers, as the paper's two cells do.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from matap.errors import MatapError
from matap.registry import register_cell


class Cell(nn.Module):
    """The interface shared by all cells.

    ``recorder`` is None in normal use. ``matap.inspection.recording`` sets it for a while to an
    object whose ``record(**tensors)`` and ``step(**tensors)`` a cell may call to report its
    internals (attention weights, gate values); a cell reports nothing when it is None, so the
    forward pass is the same with or without a recording.
    """

    latent_dim: int
    recorder: Any = None

    def initial_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> Any:
        raise NotImplementedError

    def forward(self, z_t: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        raise NotImplementedError

    def unroll(self, z: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """Run the cell over inputs known in advance, (B, T, d): outputs (B, T, d) and the last state.
        A cell may override it with a faster computation of the same numbers (the paper's cells
        project every input at once, outside the recurrence)."""
        outputs = []
        for t in range(z.shape[1]):
            h, state = self(z[:, t], state)
            outputs.append(h)
        return torch.stack(outputs, dim=1), state


def gru_step(gru: nn.GRUCell, gates_x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``gru(x, h)`` given ``gates_x = F.linear(x, gru.weight_ih, gru.bias_ih)``, (B, 3d), computed
    beforehand: the same gates (reset, update, new, in PyTorch's order) and the same new state."""
    gates_h = F.linear(h, gru.weight_hh, gru.bias_hh)
    x_r, x_z, x_n = gates_x.chunk(3, dim=-1)
    h_r, h_z, h_n = gates_h.chunk(3, dim=-1)
    reset = torch.sigmoid(x_r + h_r)
    update = torch.sigmoid(x_z + h_z)
    new = torch.tanh(x_n + reset * h_n)
    return new + update * (h - new)                                     # (1 - u) n + u h


@register_cell("gru")
class GRUBaselineCell(Cell):
    """The paper's BASELINE: Dense(d) input projection -> GRU -> LayerNorm."""

    def __init__(self, latent_dim: int = 64) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.input_proj = nn.Linear(latent_dim, latent_dim)
        self.gru = nn.GRUCell(latent_dim, latent_dim)  # separate input and hidden biases, as Keras' reset_after
        self.norm_out = nn.LayerNorm(latent_dim)

    def initial_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        return torch.zeros(batch, self.latent_dim, device=device, dtype=dtype)

    def forward(self, z_t: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.norm_out(self.gru(self.input_proj(z_t), state))  # (B, d)
        return h, h

    def unroll(self, z: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if type(self).forward is not GRUBaselineCell.forward:
            return super().unroll(z, state)
        gates_x = F.linear(self.input_proj(z), self.gru.weight_ih, self.gru.bias_ih)  # (B, T, 3d), all at once
        outputs = []
        for t in range(z.shape[1]):
            state = self.norm_out(gru_step(self.gru, gates_x[:, t], state))
            outputs.append(state)
        return torch.stack(outputs, dim=1), state


class MemoryState(NamedTuple):
    h: torch.Tensor       # (B, d) previous output h_{t-1}
    memory: torch.Tensor  # (B, K, d) episodic memory M_{t-1}, oldest slot first
    filled: int           # slots written so far (capped at K); used by mask_empty


class RetrospectiveAttention(nn.Module):
    """Multi-head attention of one query over the K memory slots (Eq. 2).

    q/k/v/out projections of d x d with biases, as Keras' MultiHeadAttention
    with key_dim = value_dim = d / heads; dropout on the attention weights.
    """

    recorder: Any = None  # see Cell: receives the attention weights while a recording runs

    def __init__(self, latent_dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        if latent_dim % num_heads:
            raise MatapError(f"num_heads ({num_heads}) must divide latent_dim ({latent_dim})")
        self.num_heads = num_heads
        self.head_dim = latent_dim // num_heads
        self.q_proj = nn.Linear(latent_dim, latent_dim)
        self.k_proj = nn.Linear(latent_dim, latent_dim)
        self.v_proj = nn.Linear(latent_dim, latent_dim)
        self.out_proj = nn.Linear(latent_dim, latent_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, memory: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """query (B, d), memory (B, K, d), valid: bool broadcastable to (B, H, 1, K) or None -> context (B, d)."""
        return self.attend(query, *self.project_memory(memory), valid)

    def project_memory(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of memory slots (B, S, d): each (B, H, S, dh)."""
        B, S, _ = memory.shape
        H, dh = self.num_heads, self.head_dim
        k = self.k_proj(memory).view(B, S, H, dh).transpose(1, 2)
        v = self.v_proj(memory).view(B, S, H, dh).transpose(1, 2)
        return k, v

    def attend(self, query: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor | None = None
               ) -> torch.Tensor:
        """The context read by query (B, d) from keys and values (B, H, K, dh) -> (B, d)."""
        B, H, K, dh = k.shape
        d = H * dh
        q = self.q_proj(query).view(B, H, 1, dh)                      # (B, H, 1, dh)
        scores = q @ k.transpose(-1, -2) / math.sqrt(dh)               # (B, H, 1, K)
        if valid is not None:
            scores = scores.masked_fill(~valid, float("-inf"))
        weights = torch.softmax(scores, dim=-1)                        # (B, H, 1, K)
        if self.recorder is not None:
            self.recorder.record(attention=weights[:, :, 0])
        weights = self.dropout(weights)
        context = (weights @ v).reshape(B, d)                          # (B, d)
        return self.out_proj(context)


@register_cell("matap")
class MATAPCell(Cell):
    """The MA-TAP cell (paper, Eq. 1-5 and appendix A.3).

    1. h~_t = GRU(W_in z_t, h_{t-1})                      (Eq. 1)
    2. c_t  = LN(MultiHead(q=h~_t, k=v=M_{t-1}))          (Eq. 2)
    3. a_t  = sigmoid(W_g [h~_t; tanh(W_c c_t)] + b_g)    (Eq. 3)
    4. h_t  = LN((1 - a_t) * h~_t + a_t * tanh(W_c c_t))  (Eq. 4)
    5. M_t  = [M_{t-1}[1:K]; W_m W_in z_t]                 (Eq. 5, FIFO)

    As in the public reference, the memory read at step t holds the K
    previous writes (it starts as K zero slots), the gate sees the projected
    context, and the memory stores the projected input.

    Ablation switches: ``use_attention=False`` does not read the memory (the
    context is LN(0), the LayerNorm's learned bias: a learned constant),
    ``use_gate=False`` fixes a_t = 0.5, ``mask_empty=True`` hides slots not
    yet written from the attention (at t = 0 the context is LN(0) too).
    """

    def __init__(
        self,
        latent_dim: int = 64,
        memory_size: int = 10,
        num_heads: int = 4,
        attn_dropout: float = 0.1,
        use_attention: bool = True,
        use_gate: bool = True,
        mask_empty: bool = False,
    ) -> None:
        super().__init__()
        if memory_size < 1:
            raise MatapError(f"memory_size must be >= 1, got {memory_size}")
        self.latent_dim = latent_dim
        self.memory_size = memory_size
        self.mask_empty = mask_empty
        self.input_proj = nn.Linear(latent_dim, latent_dim)
        self.gru = nn.GRUCell(latent_dim, latent_dim)
        # Switched-off parts are not built, so that every parameter is used and counted honestly.
        self.attention = RetrospectiveAttention(latent_dim, num_heads, attn_dropout) if use_attention else None
        self.norm_context = nn.LayerNorm(latent_dim)
        self.context_proj = nn.Linear(latent_dim, latent_dim)
        self.gate = nn.Linear(2 * latent_dim, latent_dim) if use_gate else None
        self.memory_write = nn.Linear(latent_dim, latent_dim)
        self.norm_out = nn.LayerNorm(latent_dim)

    def initial_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> MemoryState:
        h = torch.zeros(batch, self.latent_dim, device=device, dtype=dtype)
        memory = torch.zeros(batch, self.memory_size, self.latent_dim, device=device, dtype=dtype)
        return MemoryState(h, memory, 0)

    def written(self, state: MemoryState) -> torch.Tensor | None:
        """Which slots of M_{t-1} hold a write, as a bool mask broadcastable to the attention
        scores (B, H, 1, K); None when all do. FIFO: the last ``filled`` slots."""
        K = self.memory_size
        if state.filled >= K:
            return None
        return torch.arange(K, device=state.memory.device) >= K - state.filled  # (K,)

    def slot_ages(self, state: MemoryState) -> torch.Tensor:
        """How many steps ago each slot of M_{t-1} was written, as read at step t (1: at step t-1),
        (K,) or (B, K) floats; NaN for a slot never written. Only a recording asks for it."""
        K = self.memory_size
        ages = torch.arange(K, 0, -1, dtype=torch.float32)  # (K,) FIFO: the newest write is last
        return ages.masked_fill(ages > state.filled, float("nan"))

    def read_memory(self, query: torch.Tensor, state: MemoryState) -> torch.Tensor:
        """The normalised attention context c_t, (B, d)."""
        if self.attention is None or (self.mask_empty and state.filled == 0):
            context = query.new_zeros(query.shape)
        else:
            valid = self.written(state) if self.mask_empty else None
            context = self.attention(query, state.memory, valid)
        return self.norm_context(context)

    def forward(self, z_t: torch.Tensor, state: MemoryState) -> tuple[torch.Tensor, MemoryState]:
        x = self.input_proj(z_t)                                        # (B, d)
        h_local = self.gru(x, state.h)                                  # Eq. 1
        context = torch.tanh(self.context_proj(self.read_memory(h_local, state)))  # Eq. 2, tanh(W_c c_t)
        if self.gate is not None:
            alpha = torch.sigmoid(self.gate(torch.cat([h_local, context], dim=-1)))  # Eq. 3
        else:
            alpha = torch.full_like(h_local, 0.5)
        h = self.norm_out((1 - alpha) * h_local + alpha * context)      # Eq. 4
        new_state = self.write(x, h, state)                             # Eq. 5
        if self.recorder is not None:
            self.recorder.step(gru=h_local, context=context, gate=alpha, ages=self.slot_ages(state))
        return h, new_state

    def unroll(self, z: torch.Tensor, state: MemoryState) -> tuple[torch.Tensor, MemoryState]:
        """The steps of :meth:`forward` over known inputs, with everything that depends on the inputs
        alone computed for all T at once: W_in z_t, the GRU's input gates, the writes W_m W_in z_t
        and the attention's keys and values of every slot (each slot is projected once, not at
        every step that reads it). The memory read at step t is slots t .. t+K-1 of [M_0; writes]."""
        fifo = all(getattr(type(self), name) is getattr(MATAPCell, name)
                   for name in ("forward", "write", "read_memory", "written", "slot_ages"))
        if not fifo:
            return super().unroll(z, state)
        B, T, _ = z.shape
        K = self.memory_size
        x = self.input_proj(z)                                          # (B, T, d)
        gates_x = F.linear(x, self.gru.weight_ih, self.gru.bias_ih)     # (B, T, 3d)
        slots = torch.cat([state.memory, self.memory_write(x)], dim=1)  # (B, K + T, d)
        if self.attention is not None:
            keys, values = self.attention.project_memory(slots)         # (B, H, K + T, dh) each
        h, outputs = state.h, []
        for t in range(T):
            filled = min(state.filled + t, K)
            h_local = gru_step(self.gru, gates_x[:, t], h)              # Eq. 1
            if self.attention is None or (self.mask_empty and filled == 0):
                read = h_local.new_zeros(h_local.shape)
            else:
                valid = (torch.arange(K, device=z.device) >= K - filled) if self.mask_empty and filled < K else None
                read = self.attention.attend(h_local, keys[:, :, t:t + K], values[:, :, t:t + K], valid)
            context = torch.tanh(self.context_proj(self.norm_context(read)))  # Eq. 2
            if self.gate is not None:
                alpha = torch.sigmoid(self.gate(torch.cat([h_local, context], dim=-1)))  # Eq. 3
            else:
                alpha = torch.full_like(h_local, 0.5)
            h = self.norm_out((1 - alpha) * h_local + alpha * context)  # Eq. 4
            if self.recorder is not None:   # what forward reports, from the state it reads (filled slots)
                self.recorder.step(gru=h_local, context=context, gate=alpha,
                                   ages=self.slot_ages(MemoryState(h, slots[:, t:t + K], filled)))
            outputs.append(h)
        return torch.stack(outputs, dim=1), MemoryState(h, slots[:, T:], min(state.filled + T, K))

    def write(self, x: torch.Tensor, h: torch.Tensor, state: MemoryState) -> MemoryState:
        """Eq. 5, FIFO: drop the oldest slot, append W_m x_t; ``h`` is the new recurrent state."""
        write = self.memory_write(x).unsqueeze(1)                       # (B, 1, d)
        memory = torch.cat([state.memory[:, 1:], write], dim=1)
        return MemoryState(h, memory, min(state.filled + 1, self.memory_size))
