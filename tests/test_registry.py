"""Registries own their names: a cell registered with its own option trains through `matap train`
with no edit anywhere else; objectives and protocols say what they score."""

import pytest
import torch
import yaml
from torch import nn

from matap.cli import main
from matap.config import load_config
from matap.errors import MatapError
from matap.models import register_cell
from matap.modules import Cell
from matap.registry import CELLS, OBJECTIVES, PROTOCOLS


class ToyCell(Cell):
    """h_t = tanh(W z_t + gain * h_{t-1}): a cell with an option no other cell has."""

    def __init__(self, latent_dim: int, gain: float = 0.5) -> None:
        super().__init__()
        self.latent_dim, self.gain = latent_dim, gain
        self.input_proj = nn.Linear(latent_dim, latent_dim)

    def initial_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        return torch.zeros(batch, self.latent_dim, device=device, dtype=dtype)

    def forward(self, z_t: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.tanh(self.input_proj(z_t) + self.gain * state)  # (B, d)
        return h, h


@pytest.fixture
def toy_cell(monkeypatch):
    """The toy cell registered as model "toy" for one test."""
    monkeypatch.setattr(CELLS, "_entries", {name: CELLS.get(name) for name in CELLS})  # a copy, restored after
    register_cell("toy")(ToyCell)


def test_a_registered_cell_with_its_own_option_trains_through_the_cli(toy_cell, tmp_path):
    run = tmp_path / "toy"
    assert main(["train", "--config", "smoke", "--out", str(run), "model.name=toy", "model.gain=0.25",
                 "train.epochs=1"]) == 0
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["name"] == "toy" and saved["model"]["gain"] == 0.25
    from matap import load

    model = load(run)
    assert isinstance(model.cell, ToyCell) and model.cell.gain == 0.25 and model.config.model.options == {"gain": 0.25}


def test_a_cell_option_takes_its_default_its_type_and_belongs_to_its_cell(toy_cell):
    assert load_config("smoke", ["model.name=toy"]).model.options == {"gain": 0.5}
    assert load_config("smoke", ["model.gain=2", "model.name=toy"]).model.options == {"gain": 2.0}
    with pytest.raises(MatapError, match="must be a number"):
        load_config("smoke", ["model.name=toy", "model.gain=much"])
    with pytest.raises(MatapError, match="model.gain is an option of model.name=toy, not of the parts named"):
        load_config("smoke", ["model.gain=2"])
    assert "gain" not in load_config("smoke").to_dict()["model"]


def test_the_built_in_cells_receive_the_keywords_they_name():
    import matap

    cell = matap.build_model("matap", memory_size=5, use_gate=False, mask_empty=True).cell
    assert (cell.memory_size, cell.gate, cell.mask_empty) == (5, None, True)
    assert type(matap.build_model("gru").cell).__name__ == "GRUBaselineCell"


def test_objectives_and_protocols_say_what_they_score():
    assert list(OBJECTIVES) == ["paper", "predict"] and list(PROTOCOLS) == ["reconstruct", "autoencode", "predict",
                                                                            "rollout", "latent"]
    assert (OBJECTIVES.get("paper").target_offset, OBJECTIVES.get("predict").target_offset) == (0, 1)
    assert all(OBJECTIVES.describe(name) for name in OBJECTIVES) and all(PROTOCOLS.describe(name) for name in PROTOCOLS)
    assert [name for name in PROTOCOLS if PROTOCOLS.get(name).future] == ["predict", "rollout", "latent"]
    assert [name for name in PROTOCOLS if not PROTOCOLS.get(name).frame_baselines] == ["latent"]
    with pytest.raises(MatapError, match="unknown protocol 'dream'"):
        PROTOCOLS.get("dream")


class ToyDecoder(nn.Module):
    """Frames from a latent by one linear map and a brightness option no other part has."""

    def __init__(self, latent_dim: int = 64, brightness: float = 0.0) -> None:
        super().__init__()
        self.brightness = brightness
        self.out = nn.Linear(latent_dim, 64 * 64)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (self.out(z) + self.brightness).view(-1, 1, 64, 64)


class ToyPredictor(nn.Module):
    """Predicts no change: z^_{t+1} = z_t (no parameters)."""

    def __init__(self, latent_dim: int = 64) -> None:
        super().__init__()

    def forward(self, h: torch.Tensor, z: torch.Tensor, z_before: torch.Tensor | None = None) -> torch.Tensor:
        return z


def toy_term(p) -> torch.Tensor:
    """The mean squared latent: a term with no config key of its own."""
    return p.out.z.float().pow(2).mean()


@pytest.fixture
def toy_parts(monkeypatch):
    """A toy decoder, predictor and objective term registered for one test."""
    from matap.registry import DECODERS, PREDICTORS, TERMS, register_part, register_term

    for registry in (DECODERS, PREDICTORS, TERMS):
        monkeypatch.setattr(registry, "_entries", {name: registry.get(name) for name in registry})
    register_part(DECODERS, "toy")(ToyDecoder)
    register_part(PREDICTORS, "toy")(ToyPredictor)
    register_term("toy")(toy_term)


def test_registered_parts_and_a_term_train_through_the_cli_by_name(toy_parts, tmp_path, capsys):
    run = tmp_path / "parts"
    assert main(["train", "--config", "smoke", "--out", str(run), "model.decoder=toy", "model.brightness=0.5",
                 "model.predictor=toy", "objective.toy_weight=2"]) == 0
    assert "model matap (d=64, K=10, heads=4), predictor toy, decoder toy" in capsys.readouterr().out
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["brightness"] == 0.5 and saved["objective"]["toy_weight"] == 2.0
    history = (run / "history.csv").read_text().splitlines()[0].split(",")
    assert "train_toy" in history and "val_toy" in history
    from matap import load

    model = load(run)
    assert isinstance(model.decoder, ToyDecoder) and model.decoder.brightness == 0.5
    assert isinstance(model.predictor, ToyPredictor)


def test_a_term_weighs_into_the_loss_and_a_part_option_belongs_to_its_part(toy_parts):
    from matap.models import model_from_config
    from matap.objectives import build_objective

    cfg = load_config("smoke", ["objective.toy_weight=2"])
    torch.manual_seed(0)
    model = model_from_config(cfg.model).eval()
    x = torch.rand(2, 4, 1, 64, 64)
    with torch.no_grad():
        out = build_objective(cfg.objective)(model, x)
        plain = build_objective(load_config("smoke").objective)(model, x)
    torch.testing.assert_close(out.loss, plain.loss + 2 * out.terms["toy"])
    assert "toy" not in plain.terms
    with pytest.raises(MatapError, match=r"objective.toy_weight must be >= 0"):
        load_config("smoke", ["objective.toy_weight=-1"])
    with pytest.raises(MatapError, match="unknown key objective.other_weight"):
        load_config("smoke", ["objective.other_weight=1"])
    with pytest.raises(MatapError, match="model.brightness is an option of model.decoder=toy"):
        load_config("smoke", ["model.brightness=1"])
    with pytest.raises(MatapError, match="unknown decoder 'tiny'|model.decoder must be one of"):
        load_config("smoke", ["model.decoder=tiny"])
