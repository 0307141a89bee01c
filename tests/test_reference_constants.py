"""The paper preset builds the model with the Keras reference's framework constants."""

import math

import pytest
import torch
from torch import nn

from matap.config import load_config
from matap.errors import MatapError
from matap.models import count_parameters, model_from_config
from matap.modules.cells import RetrospectiveAttention

PAPER_PARAMETERS = {"gru": 4_873_633, "matap": 4_906_977}


def _paper_model(name: str = "matap") -> nn.Module:
    torch.manual_seed(0)
    return model_from_config(load_config("paper", [f"model.name={name}"]).model)


def _modules(model: nn.Module, kind: type) -> list[nn.Module]:
    found = [m for m in model.modules() if isinstance(m, kind)]
    assert found, kind
    return found


def test_paper_preset_has_the_keras_normalisation_constants():
    model = _paper_model()
    for bn in _modules(model, nn.BatchNorm2d):            # 3 in the encoder, 3 in the decoder
        assert bn.momentum == 0.01 and bn.eps == 1e-3     # Keras: momentum 0.99, epsilon 1e-3
    for ln in _modules(model, nn.LayerNorm):               # the context's and the output's
        assert ln.eps == 1e-3
    assert len(_modules(model, nn.BatchNorm2d)) == 6 and len(_modules(model, nn.LayerNorm)) == 2


def test_other_presets_keep_pytorchs_constants():
    torch.manual_seed(0)
    model = model_from_config(load_config("study").model)
    assert all(bn.momentum == 0.1 and bn.eps == 1e-5 for bn in _modules(model, nn.BatchNorm2d))
    assert all(ln.eps == 1e-5 for ln in _modules(model, nn.LayerNorm))
    assert any(lin.bias.abs().sum() > 0 for lin in _modules(model, nn.Linear))  # PyTorch's uniform biases


@pytest.mark.parametrize("name", sorted(PAPER_PARAMETERS))
def test_paper_preset_keeps_the_parameter_counts(name):
    assert count_parameters(_paper_model(name)) == PAPER_PARAMETERS[name]


def _glorot_bound(fan_in: int, fan_out: int) -> float:
    return math.sqrt(6 / (fan_in + fan_out))


def _looks_uniform(weight: torch.Tensor, bound: float) -> None:
    """Inside [-bound, bound] and spread over it (the standard deviation of U(-b, b) is b / sqrt(3))."""
    assert weight.abs().max() <= bound + 1e-7
    assert weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.15)


def test_paper_preset_initialises_as_keras():
    model = _paper_model()
    attention = _modules(model, RetrospectiveAttention)[0]
    d, heads = 64, 4
    # Keras' einsum kernels: q/k/v (d, heads, d / heads), output (heads, d / heads, d).
    for proj in (attention.q_proj, attention.k_proj, attention.v_proj):
        _looks_uniform(proj.weight, _glorot_bound(heads * d, d * d // heads))
    _looks_uniform(attention.out_proj.weight, _glorot_bound(d, heads * d))
    inside = {id(p) for p in (attention.q_proj, attention.k_proj, attention.v_proj, attention.out_proj)}
    for lin in _modules(model, nn.Linear):
        if id(lin) not in inside:
            _looks_uniform(lin.weight, _glorot_bound(lin.in_features, lin.out_features))
        assert torch.count_nonzero(lin.bias) == 0
    for conv in _modules(model, nn.Conv2d) + _modules(model, nn.ConvTranspose2d):
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(conv.weight)
        _looks_uniform(conv.weight, _glorot_bound(fan_in, fan_out))
        assert torch.count_nonzero(conv.bias) == 0
    gru = _modules(model, nn.GRUCell)[0]
    _looks_uniform(gru.weight_ih, _glorot_bound(d, 3 * d))
    # Orthogonal recurrent kernel: Keras' (d, 3d) has orthonormal rows, ours is its transpose.
    torch.testing.assert_close(gru.weight_hh.T @ gru.weight_hh, torch.eye(d), atol=1e-5, rtol=0)
    assert torch.count_nonzero(gru.bias_ih) == 0 and torch.count_nonzero(gru.bias_hh) == 0
    for norm in _modules(model, nn.LayerNorm) + _modules(model, nn.BatchNorm2d):
        assert torch.all(norm.weight == 1) and torch.all(norm.bias == 0)


def test_batchnorm_momentum_is_keras_running_average():
    """One training-mode batch moves Keras' running mean 1% of the way (PyTorch's default: 10%)."""
    conv, bn = _paper_model().train().encoder.features[0][:2]
    with torch.no_grad():
        y = conv(torch.rand(6, 1, 64, 64))                  # (N, 32, 32, 32)
        bn(y)
    torch.testing.assert_close(bn.running_mean, 0.01 * y.mean(dim=(0, 2, 3)))


@pytest.mark.parametrize("override, message", [
    ("model.init=xavier", "model.init"), ("model.bn_momentum=1.5", "model.bn_momentum"),
    ("model.bn_momentum=0", "model.bn_momentum"), ("model.ln_eps=0", "model.ln_eps"),
])
def test_bad_constants_are_config_errors(override, message):
    with pytest.raises(MatapError, match=message):
        load_config("paper", [override])


def test_a_run_written_before_the_constants_existed_is_the_same_run(tmp_path):
    """A run folder whose config.yaml predates these keys holds PyTorch's constants: it is reused."""
    import yaml

    from matap.experiments.runs import _state

    cfg = load_config("smoke")
    saved = cfg.to_dict()
    for key in ("bn_momentum", "bn_eps", "ln_eps", "init"):
        del saved["model"][key]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    assert _state(tmp_path, cfg) == "new"  # the same config, nothing trained yet
    with pytest.raises(MatapError, match="another config"):
        _state(tmp_path, load_config("smoke", ["model.init=keras"]))
