"""Training the conv stacks of the encoder and decoder with one saved activation per block.

A block is (transposed) convolution -> BatchNorm -> ReLU, and the next block's
convolution reads the ReLU's output. Run as separate layers, autograd keeps
two full-size tensors per block until the backward pass: the convolution's
output (for the BatchNorm's gradient) and the ReLU's output (for the ReLU's
and the next convolution's gradients). The second is a cheap function of the
first and of the batch statistics, so :func:`run_blocks` keeps only the
first and recomputes the ReLU's output in the backward pass. At the paper's
batch of 32 x 20 frames in fp32 the peak of a training step fell from 2,718 to
2,143 MiB (resident, ``malloc`` as it is).

The forward pass computes exactly what the layers compute (same kernels,
same running-statistics update); the gradients agree to float rounding. It is
used where memory binds: fp32 training on CPU (with gradients on, for plain
``nn.BatchNorm2d`` layers that track running statistics). Under bf16 autocast
the activations take half the memory and the recomputation cost more time
than it saved (a training step about 20% slower, measured with ``matap
bench``), so there, as anywhere else, the layers run as they are.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from matap.modules.transposed import adjoint_weight_grad


def _conv(y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, transposed: bool,
          stride: tuple[int, int], padding: tuple[int, int]) -> torch.Tensor:
    if transposed:
        return F.conv_transpose2d(y, weight, bias, stride, padding)
    return F.conv2d(y, weight, bias, stride, padding)


class _NormReLUConv(torch.autograd.Function):
    """conv(relu(batch_norm(x))), saving x and the batch statistics, not the ReLU's output."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                running_mean: torch.Tensor, running_var: torch.Tensor, momentum: float, eps: float,
                weight: torch.Tensor, bias: torch.Tensor | None, transposed: bool,
                stride: tuple[int, int], padding: tuple[int, int]) -> torch.Tensor:
        y, mean, invstd = torch.ops.aten.native_batch_norm(x, gamma, beta, running_mean, running_var, True,
                                                           momentum, eps)
        out = _conv(y.relu_(), weight, bias, transposed, stride, padding)
        ctx.save_for_backward(x, gamma, beta, mean, invstd, weight)
        ctx.eps, ctx.transposed, ctx.stride, ctx.padding = eps, transposed, stride, padding
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, gamma, beta, mean, invstd, weight = ctx.saved_tensors
        # The ReLU's output of the forward pass, again: the same kernel, with the batch statistics
        # as the running ones (to float rounding).
        var = invstd.pow(-2) - ctx.eps
        y = torch.ops.aten.native_batch_norm(x, gamma, beta, mean, var, False, 0.0, ctx.eps)[0].relu_()
        need_w = ctx.needs_input_grad[7]
        stride, padding = list(ctx.stride), list(ctx.padding)
        if ctx.transposed:
            grad_y = F.conv2d(grad, weight, None, ctx.stride, ctx.padding)
            grad_w = adjoint_weight_grad(y, grad, weight, ctx.stride, ctx.padding) if need_w else None
        else:
            grad_y, grad_w, _ = torch.ops.aten.convolution_backward(
                grad, y, weight, None, stride, padding, [1, 1], False, [0, 0], 1, [True, need_w, False])
        grad_b = grad.sum(dim=(0, 2, 3)) if ctx.has_bias and ctx.needs_input_grad[8] else None
        grad_y = grad_y.masked_fill_(y == 0, 0)  # through the ReLU: y is 0 exactly where it was cut
        del y
        grad_x, grad_gamma, grad_beta = torch.ops.aten.native_batch_norm_backward(
            grad_y, x, gamma, None, None, mean, invstd, True, ctx.eps,
            [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]])
        return grad_x, grad_gamma, grad_beta, None, None, None, None, grad_w, grad_b, None, None, None


_FUSE = [True]


@contextlib.contextmanager
def unfused() -> Iterator[None]:
    """Within it, :func:`run_blocks` runs every layer as it is (``matap bench --layers`` records
    the convolutions' calls so)."""
    _FUSE.append(False)
    try:
        yield
    finally:
        _FUSE.pop()


def _fusable(bn: nn.Module, relu: nn.Module, conv: nn.Module, x: torch.Tensor) -> bool:
    return (_FUSE[-1] and type(bn) is nn.BatchNorm2d and bn.training and bn.track_running_stats and bn.affine
            and isinstance(relu, nn.ReLU) and isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d))
            and conv.groups == 1 and conv.dilation == (1, 1) and conv.padding_mode == "zeros"
            and isinstance(conv.padding, tuple) and getattr(conv, "output_padding", (0, 0)) == (0, 0)
            and x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
            and x.dim() == 4 and torch.is_grad_enabled())


def _norm_relu_conv(x: torch.Tensor, bn: nn.BatchNorm2d, conv: nn.Conv2d | nn.ConvTranspose2d) -> torch.Tensor:
    """conv(relu(bn(x))) with bn's running statistics updated as ``bn(x)`` updates them."""
    bn.num_batches_tracked.add_(1)
    momentum = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
    return _NormReLUConv.apply(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, momentum, bn.eps,
                               conv.weight, conv.bias, isinstance(conv, nn.ConvTranspose2d), conv.stride,
                               conv.padding)


def run_blocks(x: torch.Tensor, blocks: Sequence[nn.Sequential], tail: nn.Module | None = None) -> torch.Tensor:
    """``tail(blocks[-1](...blocks[0](x)))`` for blocks (conv, BatchNorm2d, ReLU): each BatchNorm ->
    ReLU -> next convolution (``tail`` counts as the last block's next convolution when it is one)
    through :class:`_NormReLUConv` where that applies, the layers as they are elsewhere."""
    layers = [layer for block in blocks for layer in block] + ([tail] if tail is not None else [])
    i = 0
    while i < len(layers):
        if i + 2 < len(layers) and _fusable(layers[i], layers[i + 1], layers[i + 2], x):
            x = _norm_relu_conv(x, layers[i], layers[i + 2])  # the next convolution's output
            i += 3
        else:
            x = layers[i](x)
            i += 1
    return x


__all__ = ["run_blocks", "unfused"]
