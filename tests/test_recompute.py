"""The encoder's and decoder's conv stacks trained with one saved activation per block: the same
outputs, gradients and BatchNorm statistics as the layers run one by one, and fewer saved bytes."""

import copy

import pytest
import torch

import matap.modules.recompute as recompute
from matap.modules.decoder import SpatialDecoder
from matap.modules.encoder import SpatialEncoder


def _run(module, inp, fused, monkeypatch):
    module = copy.deepcopy(module)
    if not fused:
        monkeypatch.setattr(recompute, "_fusable", lambda *args: False)
    calls = []
    original = recompute._NormReLUConv.backward
    monkeypatch.setattr(recompute._NormReLUConv, "backward",
                        staticmethod(lambda ctx, grad: calls.append(1) or original(ctx, grad)))
    saved = []
    x = inp.clone().requires_grad_()
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel() * t.element_size()) or t,
                                                  lambda t: t):
        y = module(x)
    y.float().pow(2).sum().backward()
    monkeypatch.undo()
    grads = torch.cat([x.grad.flatten()] + [p.grad.flatten() for p in module.parameters()])
    buffers = {name: b.clone() for name, b in module.named_buffers()}
    return y.float(), grads, buffers, sum(saved), len(calls)


@pytest.mark.parametrize("part", ["encoder", "decoder"])
def test_same_outputs_gradients_and_statistics_with_less_saved(part, monkeypatch):
    torch.manual_seed(0)
    if part == "encoder":
        module, inp, fused_blocks = SpatialEncoder(16, encoder_dropout=0.0), torch.rand(4, 1, 64, 64), 2
        relu_outputs = 4 * (32 * 32 * 32 + 64 * 16 * 16)  # the ReLU outputs of blocks 1 and 2, no longer kept
    else:
        module, inp, fused_blocks = SpatialDecoder(16), torch.randn(4, 16), 3
        relu_outputs = 4 * (128 * 16 * 16 + 64 * 32 * 32 + 32 * 64 * 64)
    module = module.to(memory_format=torch.channels_last).train()
    y0, g0, b0, saved0, calls0 = _run(module, inp, False, monkeypatch)
    y1, g1, b1, saved1, calls1 = _run(module, inp, True, monkeypatch)
    assert (calls0, calls1) == (0, fused_blocks)
    torch.testing.assert_close(y1, y0, rtol=0, atol=0)  # the forward pass runs the same kernels
    assert ((g1 - g0).norm() / g0.norm()).item() < 1e-6
    for name in b0:  # running statistics and the batch counter, updated once per forward
        torch.testing.assert_close(b1[name], b0[name], rtol=0, atol=0, msg=name)
    # Each of those was saved twice before (by the ReLU and by the next convolution).
    assert saved0 - saved1 >= 2 * relu_outputs * 4


def test_bf16_eval_mode_and_no_grad_run_the_layers(monkeypatch):
    calls = []
    original = recompute._norm_relu_conv
    monkeypatch.setattr(recompute, "_norm_relu_conv", lambda *args: calls.append(1) or original(*args))
    decoder = SpatialDecoder(8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        decoder(torch.randn(2, 8)).float().sum().backward()
    with torch.no_grad():
        decoder(torch.randn(2, 8))
    decoder.eval()
    decoder(torch.randn(2, 8))
    assert calls == []
    decoder.train()(torch.randn(2, 8)).sum().backward()
    assert len(calls) == 3
