"""train.compile: the compiled model computes what the eager one does, and the trainer compiles only when asked."""

import copy
import shutil

import pytest
import torch

import matap
from matap.config import Config, TrainConfig
from matap.training.module import MatapModule, compile_wanted

PARTS = ("encoder", "cell", "predictor", "decoder")


def _loss_and_gradients(model, x):
    out = model(x)
    logits = model.decode(out.z_next)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, x) + (out.z_next - out.z).pow(2).mean()
    loss.backward()
    return logits.detach(), loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("name", ["matap", "gru"])
def test_compiled_parts_give_the_eager_loss_and_gradients(name):
    torch.manual_seed(0)
    eager = matap.build_model(name, encoder_dropout=0.0, predictor_dropout=0.0, attn_dropout=0.0)
    eager = eager.to(memory_format=torch.channels_last)
    compiled = copy.deepcopy(eager)
    compiled.compile_parts()
    x = torch.rand(2, 5, 1, 64, 64)
    logits_eager, loss_eager, grads_eager = _loss_and_gradients(eager, x)
    logits_compiled, loss_compiled, grads_compiled = _loss_and_gradients(compiled, x)
    torch.testing.assert_close(logits_compiled, logits_eager, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(loss_compiled, loss_eager, rtol=1e-5, atol=1e-6)
    assert grads_compiled.keys() == grads_eager.keys()  # compiling in place keeps the parameter names
    # Against the largest gradient of all: the fused kernels sum in another order, and BatchNorm's backward over
    # a batch of 10 frames cancels most of what it sums (a convolution's bias before it gets rounding noise
    # only), so a small gradient's own relative error says little.
    scale = max(grad.abs().max().item() for grad in grads_eager.values())
    for key, grad in grads_eager.items():
        torch.testing.assert_close(grads_compiled[key], grad, rtol=1e-3, atol=1e-3 * scale, msg=key)
    assert compiled.state_dict().keys() == eager.state_dict().keys()


@pytest.mark.parametrize("setting", ["on", "off"])
def test_the_trainer_compiles_the_parts_only_when_asked(setting):
    cfg = Config()
    cfg.train.compile = setting
    module = MatapModule(cfg.to_dict())
    assert module.compile_if_wanted("32-true") is (setting == "on")
    compiled = [getattr(module.model, part)._compiled_call_impl is not None for part in PARTS]
    assert compiled == [setting == "on"] * len(PARTS)


@pytest.mark.parametrize("precision, batch, accelerator, compiler, wanted", [
    ("bf16-mixed", 32, "cpu", True, True),
    ("bf16-mixed", 16, "cpu", True, True),
    ("bf16-mixed", 15, "cpu", True, False),   # small batches: compiling buys little
    ("32-true", 32, "cpu", True, False),      # fp32: little speed for more memory
    ("bf16-mixed", 32, "gpu", True, False),   # not measured on a GPU: off unless asked
    ("bf16-mixed", 32, "cpu", False, False),  # no C++ compiler to build the generated code
])
def test_auto_compiles_bf16_cpu_training_at_large_batches_where_a_compiler_is_found(
        precision, batch, accelerator, compiler, wanted, monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}" if compiler else None)
    train = TrainConfig(batch_size=batch, accelerator=accelerator)
    assert train.compile == "auto"
    assert compile_wanted(train, precision) is wanted


def test_the_setting_takes_true_and_false_as_on_and_off_and_refuses_the_rest():
    from matap.config import load_config
    from matap.errors import MatapError

    assert [load_config("smoke", [f"train.compile={v}"]).train.compile for v in ("true", "false", "auto")] == [
        "on", "off", "auto"]
    with pytest.raises(MatapError, match="train.compile must be one of auto, on, off"):
        load_config("smoke", ["train.compile=sometimes"])
