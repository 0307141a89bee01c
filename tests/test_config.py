import json

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from matap.config import Config, load_config, parse_override
from matap.errors import MatapError


@pytest.mark.parametrize("preset", ["smoke", "quick", "forecast", "paper", "configs/paper.yaml"])
def test_presets_load(preset):
    assert isinstance(load_config(preset), Config)


def test_paper_preset_is_the_papers_setup():
    cfg = load_config("paper")
    assert (cfg.data.train_size, cfg.data.val_size, cfg.data.seq_len) == (3000, 500, 20)
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.lr) == (50, 32, 1e-3)
    assert (cfg.model.latent_dim, cfg.model.memory_size, cfg.model.num_heads) == (64, 10, 4)
    assert cfg.objective.name == "paper" and cfg.objective.latent_weight == 0.1


def test_overrides_apply_after_the_preset():
    cfg = load_config("quick", ["train.epochs=7", "model.memory_size=5", "train.lr=5e-4", "train.deterministic=true",
                                "model.name=gru", "train.devices=[0, 1]"])
    assert cfg.train.epochs == 7 and cfg.model.memory_size == 5 and cfg.train.lr == 5e-4
    assert cfg.train.deterministic is True and cfg.model.name == "gru" and cfg.train.devices == [0, 1]


def test_resolved_config_round_trips_through_yaml():
    cfg = load_config("paper", ["train.epochs=2"])
    again = Config()
    from matap.config import apply_mapping

    apply_mapping(again, yaml.safe_load(cfg.to_yaml()), "yaml")
    assert again == cfg


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epoch=3", "unknown key train.epoch"),
        ("trainer.epochs=3", "unknown config section"),
        ("model.memory_size=0", "memory_size must be >= 1"),
        ("model.num_heads=5", "must divide"),
        ("train.lr=-1", "train.lr must be > 0"),
        ("train.epochs=two", "must be an integer"),
        ("train.deterministic=maybe", "true or false"),
        ("objective.name=magic", "objective.name must be one of"),
        ("model.name=lstm", "model.name must be one of"),
        ("data.image_size=32", "unknown key data.image_size"),
        ("train.lr=nan", "finite"),
        ("train.precision=fp8", "train.precision must be one of"),
        ("epochs", "section.key=value"),
        ("objective.rollout_weight=1", None),
    ],
)
def test_invalid_overrides_name_the_problem(override, message):
    if message is None:  # valid on its own
        load_config("quick", [override])
        with pytest.raises(MatapError, match="rollout_context"):
            load_config("quick", [override, "objective.rollout_context=20"])
        return
    with pytest.raises(MatapError, match=message):
        load_config("quick", [override])


def test_unknown_key_in_yaml_is_an_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 2\n  warmup: 3\n")
    with pytest.raises(MatapError, match="unknown key train.warmup"):
        load_config(str(path))
    path.write_text("train: [1, 2\n")
    with pytest.raises(MatapError, match="not valid YAML"):
        load_config(str(path))
    with pytest.raises(MatapError, match="not found"):
        load_config(str(tmp_path / "missing.yaml"))


@settings(max_examples=150, deadline=None)
@given(
    section=st.sampled_from(["data", "model", "objective", "train", "eval", "other"]),
    key=st.sampled_from(["epochs", "lr", "memory_size", "num_heads", "name", "seq_len", "x", "batch_size",
                         "latent_weight", "deterministic", "context"]),
    value=st.one_of(st.integers(-5, 100), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                    st.text(max_size=8), st.none()),
)
def test_any_override_either_validates_or_raises_matap_error(section, key, value):
    try:
        cfg = load_config("smoke", [f"{section}.{key}={value}"])
    except MatapError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert isinstance(cfg, Config)


def test_parse_override_reads_yaml_values():
    assert parse_override("train.lr=1e-3") == ("train", "lr", 1e-3)
    assert parse_override("train.devices=2") == ("train", "devices", 2)
    assert parse_override("data.idx_dir=null") == ("data", "idx_dir", None)


def test_none_is_a_choice_for_choice_keys_and_empty_for_optional_keys():
    cfg = load_config("quick", ["train.schedule=none", "data.cache_dir=none"])
    assert cfg.train.schedule == "none"
    assert cfg.data.cache_dir is None


def test_auto_precision_is_bf16_only_where_the_hardware_computes_it(monkeypatch, tmp_path):
    import torch

    from matap import machine
    from matap.training.run import resolve_precision

    monkeypatch.setenv("MATAP_CACHE", str(tmp_path))
    monkeypatch.setattr(machine, "measure_bf16_gain", lambda: {"fp32": 100.0, "bf16": 300.0})
    assert resolve_precision("cpu", "32-true") == "32-true"
    assert resolve_precision("gpu", "16-mixed") == "16-mixed"
    assert resolve_precision("mps", "auto") == "32-true"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert resolve_precision("cpu", "auto") == "32-true"
    assert resolve_precision("auto", "auto") == "32-true"
    assert resolve_precision("gpu", "auto") == "32-true"  # asked for a GPU, none here: no bf16 claimed
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert resolve_precision("cpu", "auto") == "bf16-mixed"
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert resolve_precision("cpu", "auto") == "32-true"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_precision("auto", "auto") == "bf16-mixed"
    assert resolve_precision("cpu", "auto") == "32-true"  # the CPU is asked for, the GPU is not used


@pytest.mark.parametrize("fp32, bf16, expected", [(100.0, 300.0, "bf16-mixed"), (100.0, 80.0, "32-true"),
                                                  (100.0, 125.0, "32-true")])
def test_auto_precision_on_a_cpu_with_native_bf16_follows_the_measured_speed_once_per_machine(
        monkeypatch, tmp_path, fp32, bf16, expected):
    import torch

    from matap import machine
    from matap.training.run import resolve_precision

    monkeypatch.setenv("MATAP_CACHE", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    calls = []
    monkeypatch.setattr(machine, "measure_bf16_gain", lambda: calls.append(1) or {"fp32": fp32, "bf16": bf16})
    assert resolve_precision("cpu", "auto") == expected
    assert resolve_precision("auto", "auto") == expected
    assert len(calls) == 1   # measured once, then read back from the cache
    kept = json.loads((tmp_path / "bf16.json").read_text())
    assert [entry["bf16_pays"] for entry in kept.values()] == [expected == "bf16-mixed"]
    (tmp_path / "bf16.json").write_text("{not json")   # a damaged cache is measured again and rewritten
    assert resolve_precision("cpu", "auto") == expected and len(calls) == 2
    assert json.loads((tmp_path / "bf16.json").read_text())


def test_the_bf16_measurement_times_both_precisions():
    from matap.machine import measure_bf16_gain

    gflops = measure_bf16_gain()
    assert set(gflops) == {"fp32", "bf16"} and all(v > 0 for v in gflops.values())


def test_types_come_from_the_declaration_optional_ones_included():
    from matap.config import _convert

    assert _convert("x.k", "none", int | None) is None and _convert("x.k", "3", int | None) == 3
    assert _convert("x.k", 2, float | None) == 2.0 and _convert("x.k", None, str | None) is None
    with pytest.raises(MatapError, match="x.k must not be empty"):
        _convert("x.k", None, int)


def test_choices_and_bounds_are_declared_beside_their_keys():
    import dataclasses

    from matap.config import ModelConfig, TrainConfig

    fields = {f.name: f.metadata for f in dataclasses.fields(TrainConfig)}
    assert fields["lr"]["above"] == 0 and "cosine" in fields["schedule"]["choices"]
    assert "gru" in {f.name: f.metadata for f in dataclasses.fields(ModelConfig)}["name"]["choices"]


def test_apply_overrides_can_keep_sections_fixed():
    from matap.config import apply_overrides

    cfg = apply_overrides(load_config("smoke"), ["train.epochs=4"], only=("train",), reason="kept")
    assert cfg.train.epochs == 4
    with pytest.raises(MatapError, match=r"'model.memory_size=3': kept; only train.\* keys may change"):
        apply_overrides(cfg, ["model.memory_size=3"], only=("train",), reason="kept")


@pytest.mark.parametrize("value, interval", [("0", (0, 0.0)), (500, (500, 0.0)), ("10m", (0, 600.0)),
                                             ("0.5m", (0, 30.0))])
def test_checkpoint_every_is_steps_or_minutes(value, interval):
    cfg = load_config(None, [f"train.checkpoint_every={value}"])
    assert cfg.train.checkpoint_interval() == interval


@pytest.mark.parametrize("value", ["10s", "-1", "1.5", "m", "ten"])
def test_checkpoint_every_refuses_anything_else(value):
    with pytest.raises(MatapError, match=r"train\.checkpoint_every must be a number of optimizer steps \(500\) or "
                                         r"of minutes \(10m\)"):
        load_config(None, [f"train.checkpoint_every={value}"])


