"""Framework constants: normalisation constants and initialisation, PyTorch's or Keras'.

The paper's public reference is written in Keras and leaves every layer at
Keras' defaults, which differ from PyTorch's:

| constant | Keras default | in PyTorch's terms | PyTorch default |
|---|---|---|---|
| BatchNorm momentum | 0.99 (weight of the old running value) | ``momentum=0.01`` | 0.1 |
| BatchNorm epsilon | 1e-3 | ``eps=1e-3`` | 1e-5 |
| LayerNorm epsilon | 1e-3 | ``eps=1e-3`` | 1e-5 |
| Dense, Conv kernels | Glorot (Xavier) uniform | ``xavier_uniform_`` | Kaiming uniform, a = sqrt(5) |
| GRU recurrent kernel | orthogonal | ``orthogonal_`` | uniform(+-1/sqrt(d)) |
| biases | zeros | zeros | uniform(+-1/sqrt(fan_in)) |

:func:`apply_constants` sets them on a built model (``model.bn_momentum``,
``model.bn_eps``, ``model.ln_eps``, ``model.init``; the ``paper`` preset sets
Keras'). Nothing here adds or removes a parameter.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from matap.errors import MatapError
from matap.modules.cells import RetrospectiveAttention

INITS = ("torch", "keras")


def set_norm_constants(model: nn.Module, bn_momentum: float, bn_eps: float, ln_eps: float) -> None:
    """Set the momentum and epsilon of every BatchNorm and the epsilon of every LayerNorm in ``model``."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum, module.eps = bn_momentum, bn_eps
        elif isinstance(module, nn.LayerNorm):
            module.eps = ln_eps


def _glorot_uniform_(weight: torch.Tensor, fan_in: int, fan_out: int) -> None:
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    nn.init.uniform_(weight, -bound, bound)


@torch.no_grad()
def keras_init_(model: nn.Module) -> None:
    """Initialise ``model`` as Keras initialises the reference's layers: Glorot-uniform kernels,
    orthogonal recurrent kernels, zero biases (normalisation layers keep weight 1, bias 0).

    Glorot's fans are Keras' own, computed on the shape of the Keras kernel. For Dense,
    Conv2D, Conv2DTranspose and the GRU's input kernel they equal PyTorch's. Keras'
    MultiHeadAttention keeps its projections as einsum kernels of shape (d, heads, d/heads)
    for q, k and v, and (heads, d/heads, d) for the output, and counts fans on those shapes:
    (heads * d, d) and (d, heads * d) in fan-in, fan-out, so their bounds are smaller than a
    d x d Dense's. The GRU's three recurrent gates are one (d, 3d) kernel in Keras, with
    orthonormal rows; PyTorch's (3d, d) ``weight_hh`` with orthonormal columns is its transpose.
    """
    attention_linears: set[int] = set()
    for module in model.modules():
        if isinstance(module, RetrospectiveAttention):
            d, heads = module.q_proj.in_features, module.num_heads
            for proj in (module.q_proj, module.k_proj, module.v_proj):
                _glorot_uniform_(proj.weight, fan_in=heads * d, fan_out=d * d // heads)
            _glorot_uniform_(module.out_proj.weight, fan_in=d, fan_out=d * heads)
            for proj in (module.q_proj, module.k_proj, module.v_proj, module.out_proj):
                nn.init.zeros_(proj.bias)
                attention_linears.add(id(proj))
    for module in model.modules():
        if id(module) in attention_linears:
            continue
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(module.weight)  # PyTorch's fans equal Keras' for these layers
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.GRUCell):
            nn.init.xavier_uniform_(module.weight_ih)  # (3d, d_in): fans (d_in, 3d), as Keras' (d_in, 3d) kernel
            nn.init.orthogonal_(module.weight_hh)
            nn.init.zeros_(module.bias_ih)
            nn.init.zeros_(module.bias_hh)


def apply_constants(model: nn.Module, m: Any) -> nn.Module:
    """Set the normalisation constants and, for ``m.init == "keras"``, Keras' initialisation on
    ``model`` from a :class:`matap.config.ModelConfig`; returns ``model``."""
    if m.init not in INITS:
        raise MatapError(f"model.init must be one of {', '.join(INITS)}; got {m.init!r}")
    set_norm_constants(model, m.bn_momentum, m.bn_eps, m.ln_eps)
    if m.init == "keras":
        keras_init_(model)
    return model


__all__ = ["INITS", "apply_constants", "keras_init_", "set_norm_constants"]
