"""MA-TAP cells whose memory is written otherwise than FIFO (the paper's future work, §7).

Both read and mix as the MA-TAP cell does (Eq. 1-4, :class:`~matap.modules.cells.MATAPCell`,
with its ablation switches); only the write, Eq. 5, changes, and so which of the past the
K slots hold:

- ``matap-write`` (:class:`LearnedWriteCell`): the model decides where to write and how much;
- ``matap-multiscale`` (:class:`MultiScaleCell`): the slots hold the past at several strides.

``docs/memory.md`` writes their steps as equations.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from matap.errors import MatapError
from matap.modules.cells import MATAPCell
from matap.registry import register_cell


class WriteState(NamedTuple):
    h: torch.Tensor       # (B, d) previous output h_{t-1}
    memory: torch.Tensor  # (B, K, d) episodic memory M_{t-1}
    filled: int           # steps that wrote so far, capped at K (0: nothing written yet)
    age: torch.Tensor     # (B, K) steps since each slot was last written, as read at the next step; inf: never


@register_cell("matap-write")
class LearnedWriteCell(MATAPCell):
    """MA-TAP with a learned write: each step writes into the slot of highest score, by a learned amount.

    5. m_t = W_m W_in z_t                                        (the content, as Eq. 5)
       s_t = (W_s h_t) M_{t-1}^T / sqrt(d) + beta * min(age, K)  (a score per slot)
       e_t = onehot(argmax s_t), gradients through softmax(s_t)  (straight-through)
       w_t = sigmoid(w_w [h_t; m_t] + b_w)                       (how much to write, in (0, 1))
       M_t = M_{t-1} + w_t e_t (m_t - M_{t-1})

    ``age`` counts the steps since a slot was last written (K for a slot never written), so that
    ``beta`` (initial value: ``staleness``) starts the cell close to FIFO: it fills the empty
    slots first, then overwrites the oldest, unless the content term says otherwise.
    """

    def __init__(self, latent_dim: int = 64, memory_size: int = 10, num_heads: int = 4, attn_dropout: float = 0.1,
                 use_attention: bool = True, use_gate: bool = True, mask_empty: bool = False,
                 staleness: float = 1.0) -> None:
        super().__init__(latent_dim, memory_size, num_heads, attn_dropout, use_attention, use_gate, mask_empty)
        self.write_query = nn.Linear(latent_dim, latent_dim)  # W_s
        self.write_gate = nn.Linear(2 * latent_dim, 1)        # w_w, b_w
        self.staleness = nn.Parameter(torch.tensor(float(staleness)))  # beta

    def initial_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> WriteState:
        h = torch.zeros(batch, self.latent_dim, device=device, dtype=dtype)
        memory = torch.zeros(batch, self.memory_size, self.latent_dim, device=device, dtype=dtype)
        age = torch.full((batch, self.memory_size), math.inf, device=device, dtype=dtype)
        return WriteState(h, memory, 0, age)

    def written(self, state: WriteState) -> torch.Tensor:
        return torch.isfinite(state.age)[:, None, None, :]  # (B, 1, 1, K): each sequence chose its own slots

    def slot_ages(self, state: WriteState) -> torch.Tensor:
        return state.age.float().masked_fill(torch.isinf(state.age), float("nan"))  # (B, K)

    def write_scores(self, h: torch.Tensor, state: WriteState) -> torch.Tensor:
        """s_t, (B, K): where step t writes (the highest score)."""
        content = (state.memory @ self.write_query(h).unsqueeze(-1)).squeeze(-1) / math.sqrt(self.latent_dim)
        return content + self.staleness * state.age.clamp(max=self.memory_size)  # (B, K)

    def write(self, x: torch.Tensor, h: torch.Tensor, state: WriteState) -> WriteState:
        m = self.memory_write(x)                                                  # (B, d)
        scores = self.write_scores(h, state)                                      # (B, K)
        soft = torch.softmax(scores, dim=-1)
        hard = F.one_hot(scores.argmax(dim=-1), self.memory_size).to(soft.dtype)  # (B, K)
        slot = hard + (soft - soft.detach())                                      # e_t: hard, soft gradients
        amount = torch.sigmoid(self.write_gate(torch.cat([h, m], dim=-1)))        # w_t, (B, 1)
        memory = state.memory + (amount * slot).unsqueeze(-1) * (m.unsqueeze(1) - state.memory)
        age = torch.where(hard.bool(), torch.ones_like(state.age), state.age + 1)
        if self.recorder is not None:  # w_t, and the age of the write it replaced (NaN: an empty slot)
            replaced = self.slot_ages(state).gather(1, hard.argmax(dim=-1, keepdim=True))[:, 0]  # (B,)
            self.recorder.record(write=amount[:, 0], replaced=replaced)
        return WriteState(h, memory, min(state.filled + 1, self.memory_size), age)


class ScaleState(NamedTuple):
    h: torch.Tensor       # (B, d) previous output h_{t-1}
    memory: torch.Tensor  # (B, K, d) episodic memory M_{t-1}: the levels one after the other, coarsest first
    filled: int           # slots written so far
    steps: int            # steps taken so far, t - 1


def level_sizes(memory_size: int, scales: int) -> list[int]:
    """Slots per level, finest first: K split as evenly as it goes, the finer levels taking the rest."""
    return [memory_size // scales + (level < memory_size % scales) for level in range(scales)]


@register_cell("matap-multiscale")
class MultiScaleCell(MATAPCell):
    """MA-TAP with a memory at several temporal scales: ``scales`` FIFO levels share the K slots.

    5. level 0 (K_0 slots) appends m_t = W_m W_in z_t and drops its oldest write, as MA-TAP does;
       the write level l drops moves on to level l+1 (stride s_{l+1} = stride_base^{l+1}, K_{l+1}
       slots) when its step is a multiple of s_{l+1}, and is forgotten otherwise.

    So level l holds the last K_l steps that are multiples of s_l among those older than the levels
    below it hold. With K = 10, ``scales=3`` and ``stride_base=2`` (levels of 4, 3 and 3 slots), a full
    memory (from step 22) holds the writes of 1-4 steps ago, three of 5-10 (every 2nd) and three of
    11-22 (every 4th), where a FIFO holds 1-10. No write is held twice.
    The attention reads all K slots as MA-TAP reads its FIFO; no parameter is added.
    """

    def __init__(self, latent_dim: int = 64, memory_size: int = 10, num_heads: int = 4, attn_dropout: float = 0.1,
                 use_attention: bool = True, use_gate: bool = True, mask_empty: bool = False,
                 scales: int = 3, stride_base: int = 2) -> None:
        super().__init__(latent_dim, memory_size, num_heads, attn_dropout, use_attention, use_gate, mask_empty)
        if not 1 <= scales <= memory_size or stride_base < 1:
            raise MatapError(f"scales must be in [1, memory_size = {memory_size}] and stride_base >= 1; "
                             f"got scales={scales}, stride_base={stride_base}")
        self.sizes = level_sizes(memory_size, scales)
        self.strides = [stride_base ** level for level in range(scales)]
        # Slot ranges [start, end) of the levels, finest first; the finest level is last in the memory,
        # so that its last slot holds the newest write, as MA-TAP's does.
        ends = [memory_size - sum(self.sizes[:level]) for level in range(scales)]
        self.ranges = [(end - size, end) for end, size in zip(ends, self.sizes)]

    def initial_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> ScaleState:
        h = torch.zeros(batch, self.latent_dim, device=device, dtype=dtype)
        memory = torch.zeros(batch, self.memory_size, self.latent_dim, device=device, dtype=dtype)
        return ScaleState(h, memory, 0, 0)

    def held_steps(self, steps: int) -> list[int]:
        """The step (1, 2, ...) whose write each slot holds after ``steps`` steps, 0 for none; (K,)."""
        held = [0] * self.memory_size
        bound = steps                                            # the newest step this level may hold
        for (start, end), stride in zip(self.ranges, self.strides):
            newest = bound // stride * stride
            for j in range(start, end):                          # oldest slot of the level first
                held[j] = max(newest - (end - 1 - j) * stride, 0)
            bound = held[start] - 1 if held[start] else 0        # only a full level passes writes on
        return held

    def written(self, state: ScaleState) -> torch.Tensor | None:
        if state.filled >= self.memory_size:
            return None
        return torch.tensor(self.held_steps(state.steps), device=state.memory.device) > 0  # (K,)

    def slot_ages(self, state: ScaleState) -> torch.Tensor:
        held = torch.tensor(self.held_steps(state.steps), dtype=torch.float32)
        return (state.steps + 1 - held).masked_fill(held == 0, float("nan"))  # (K,)

    def write(self, x: torch.Tensor, h: torch.Tensor, state: ScaleState) -> ScaleState:
        held = self.held_steps(state.steps)
        moving, step = self.memory_write(x).unsqueeze(1), state.steps + 1  # (B, 1, d): m_t enters level 0
        levels = []
        for (start, end), stride in zip(self.ranges, self.strides):
            level = state.memory[:, start:end]                   # (B, K_l, d)
            if step and step % stride == 0:
                levels.append(torch.cat([level[:, 1:], moving], dim=1))
                moving, step = level[:, :1], held[start]         # its oldest write moves on (step 0: an empty slot)
            else:
                levels.append(level)
                step = 0
        filled = sum(held_step > 0 for held_step in self.held_steps(state.steps + 1))
        return ScaleState(h, torch.cat(levels[::-1], dim=1), filled, state.steps + 1)


__all__ = ["LearnedWriteCell", "MultiScaleCell", "ScaleState", "WriteState", "level_sizes"]
