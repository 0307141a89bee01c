"""The decoder's transposed convolution: the same outputs and gradients as ``nn.ConvTranspose2d``."""

import pytest
import torch
from torch import nn

from matap.modules.decoder import SpatialDecoder
from matap.modules.transposed import ConvTranspose2d, _AdjointWeightGrad


def _pair(c_in: int, c_out: int) -> tuple[nn.ConvTranspose2d, ConvTranspose2d]:
    torch.manual_seed(0)
    ref = nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1)
    fast = ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1)
    fast.load_state_dict(ref.state_dict())
    return ref.to(memory_format=torch.channels_last), fast.to(memory_format=torch.channels_last)


def _outputs_and_grads(layer: nn.Module, x: torch.Tensor, grad: torch.Tensor, bf16: bool) -> list[torch.Tensor]:
    layer.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        y = layer(x)
    (y.float() * grad).sum().backward()
    return [y.float(), x.grad, layer.weight.grad, layer.bias.grad]


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
@pytest.mark.parametrize("c_in,c_out,side", [(16, 8, 8), (8, 4, 16)])
def test_same_outputs_and_gradients_as_torch(c_in, c_out, side, bf16):
    ref, fast = _pair(c_in, c_out)
    torch.manual_seed(1)
    x = torch.randn(6, c_in, side, side).to(memory_format=torch.channels_last)
    grad = torch.randn(6, c_out, 2 * side, 2 * side)
    tol = 2e-2 if bf16 else 1e-5
    for name, a, b in zip(("output", "input grad", "weight grad", "bias grad"),
                          _outputs_and_grads(ref, x, grad, bf16), _outputs_and_grads(fast, x, grad, bf16)):
        assert a.dtype == b.dtype, name
        assert ((a - b).norm() / a.norm()).item() < tol, name


def test_the_fast_backward_is_the_one_that_runs(monkeypatch):
    calls = []
    original = _AdjointWeightGrad.backward

    def counted(ctx, grad):
        calls.append(grad.shape)
        return original(ctx, grad)

    monkeypatch.setattr(_AdjointWeightGrad, "backward", staticmethod(counted))
    decoder = SpatialDecoder(latent_dim=8)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # in fp32 two of them run inside matap.modules.recompute
        decoder(torch.randn(3, 8)).float().sum().backward()
    assert len(calls) == 3  # one per transposed convolution of the decoder
    with torch.no_grad():
        decoder(torch.randn(3, 8))  # no graph: the plain layer
    assert len(calls) == 3


def test_the_state_dict_is_that_of_torch():
    ref, fast = _pair(4, 2)
    assert ref.state_dict().keys() == fast.state_dict().keys()
    assert isinstance(fast, nn.ConvTranspose2d)
