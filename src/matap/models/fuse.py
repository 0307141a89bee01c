"""Inference-only rewrites that compute the same function faster."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` for inference in which every (transposed) convolution followed by a
    BatchNorm2d inside an ``nn.Sequential`` absorbs the BatchNorm's running statistics and
    affine parameters: one layer and one pass over the activations fewer per block.

    The copy is in eval mode and computes what ``model.eval()`` computes (to float rounding);
    it cannot be trained. ``model`` itself is left untouched."""
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if not isinstance(module, nn.Sequential):
            continue
        layers = list(module)
        for i in range(len(layers) - 1):
            conv, bn = layers[i], layers[i + 1]
            if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(bn, nn.BatchNorm2d) \
                    and bn.track_running_stats:
                fused = fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, nn.ConvTranspose2d))
                # Keep the memory format of the weights (channels_last for the trained model).
                if conv.weight.is_contiguous(memory_format=torch.channels_last):
                    fused = fused.to(memory_format=torch.channels_last)
                module[i], module[i + 1] = fused, nn.Identity()
    return folded


__all__ = ["fold_batchnorm"]
