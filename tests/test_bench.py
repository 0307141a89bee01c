"""``matap bench``: the report's shape and the equivalence of the fast path. No timing thresholds."""

import argparse
import copy
import json
import math

import pytest
import torch

import matap
from matap import bench
from matap.bench import report
from matap.bench.report import RESULT_KEYS
from matap.bench.settings import resolve
from matap.errors import MatapError
from matap.evaluation import reconstruct
from matap.machine import bf16_pays

MODELS = ("matap", "gru")


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_quick_run_reports_every_key_for_both_models(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.run(_args("--models", *MODELS, "--quick", "--profile", "3", "--json", str(out))) == 0
    table = capsys.readouterr().out
    report = json.loads(out.read_text())

    assert set(report) >= {"machine", "settings", "results", "matmul_gflops", "matmul_bf16_gflops"}
    for key in ("cpu", "cores", "torch_threads", "torch", "python", "device"):
        assert report["machine"][key] not in (None, ""), key
    assert report["settings"]["batch_size"] == 4 and report["settings"]["repeats"] == 2
    assert report["settings"]["warmup"] == 1
    assert math.isfinite(report["matmul_gflops"]) and report["matmul_gflops"] > 0
    assert math.isfinite(report["matmul_bf16_gflops"]) and report["matmul_bf16_gflops"] > 0
    precision = report["settings"]["precision"]  # --precision auto, resolved as train.precision=auto is
    assert report["settings"]["precision_requested"] == "auto"
    assert precision == ("bf16" if bf16_pays("cpu") else "fp32")
    ceiling = report["matmul_bf16_gflops" if precision == "bf16" else "matmul_gflops"]
    assert f"fractions against the {precision} ceiling" in table
    assert set(report["results"]) == set(MODELS)
    for name in MODELS:
        result = report["results"][name]
        missing = set(RESULT_KEYS) - set(result)
        assert not missing, (name, missing)
        for key in RESULT_KEYS:
            value = result[key]
            assert isinstance(value, float) and math.isfinite(value) and value > 0, (name, key, value)
        assert result["train_flops_per_frame"] == pytest.approx(3 * result["infer_flops_per_frame"])
        assert result["matmul_gflops"] == report["matmul_gflops"]
        assert result["ceiling_gflops"] == ceiling
        for kind in ("train", "infer"):
            flops = result[f"{kind}_flops_per_frame"] * result[f"{kind}_frames_per_s"]
            assert result[f"{kind}_fraction_of_ceiling"] == pytest.approx(flops / (ceiling * 1e9))
        assert 0 <= result["train_kernel_cpu_share"] <= 1
        profile = result["train_profile"]
        assert len(profile) == 3 and all(row["op"].startswith("aten::") for row in profile)
        assert [row["ms_per_step"] for row in profile] == sorted((row["ms_per_step"] for row in profile), reverse=True)
        assert 0 < sum(row["share"] for row in profile) <= 1
        assert f"profile  {name}: training step, top 3 operators" in table
        assert profile[0]["op"][:43] in table
        assert name in table
    for column in ("train fr/s", "infer fr/s", "rollout fr/s", "data fr/s", "peak RSS MB"):
        assert column in table


def test_quick_fills_only_what_is_not_given():
    settings = resolve(_args("--quick", "--batch-size", "8"))
    assert (settings["batch_size"], settings["repeats"], settings["warmup"]) == (8, 2, 1)
    settings = resolve(_args())
    assert (settings["batch_size"], settings["repeats"], settings["warmup"]) == (32, 5, 2)
    assert settings["models"] == ["matap", "gru"] and settings["objective"] == "paper"
    assert settings["precision_requested"] == "auto" and settings["channels_last"]
    assert settings["precision"] == ("bf16" if bf16_pays("cpu") else "fp32")
    assert resolve(_args("--precision", "fp32"))["precision"] == "fp32"
    assert settings["compile_requested"] == "auto" and not settings["compile_inference"]
    assert not resolve(_args("--no-channels-last"))["channels_last"]
    assert resolve(_args("--models", "gru,matap"))["models"] == ["gru", "matap"]


def test_compile_follows_the_trainers_auto_rule_and_on_compiles_inference_too(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
    auto = resolve(_args("--precision", "bf16"))
    assert auto["compile"] and not auto["compile_inference"]       # bf16 on a CPU at batch 32: training only
    assert not resolve(_args("--precision", "fp32"))["compile"]    # fp32: not compiled under auto
    assert not resolve(_args("--precision", "bf16", "--batch-size", "4"))["compile"]
    bare = resolve(_args("--precision", "fp32", "--compile"))      # --compile alone means on
    assert bare["compile"] and bare["compile_inference"]
    off = resolve(_args("--precision", "bf16", "--compile", "off"))
    assert not off["compile"] and not off["compile_inference"]
    labels = [report._compiled(settings) for settings in (auto, bare, off)]
    assert labels == ["compile training (auto)", "compile on", "compile off"]


def test_unknown_model_is_a_clear_error():
    with pytest.raises(MatapError, match="unknown model"):
        bench.run(_args("--models", "nope", "--quick"))


def test_negative_profile_is_a_clear_error():
    with pytest.raises(MatapError, match="--profile -1"):
        resolve(_args("--profile", "-1"))


@pytest.mark.parametrize("name", MODELS)
def test_channels_last_gives_the_same_reconstruction(name):
    torch.manual_seed(0)
    plain = matap.build_model(name).eval()
    fast = copy.deepcopy(plain).to(memory_format=torch.channels_last).eval()
    assert any(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
               for p in fast.parameters() if p.dim() == 4)
    x = torch.rand(2, 5, 1, 64, 64)
    with torch.inference_mode():
        expected = reconstruct(plain, x)
        got = reconstruct(fast, x)
    assert got.shape == expected.shape == x.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", MODELS)
def test_folded_batchnorm_gives_the_same_outputs(name):
    from matap.models.fuse import fold_batchnorm

    torch.manual_seed(0)
    model = matap.build_model(name).to(memory_format=torch.channels_last)
    model.train()
    with torch.no_grad():  # a few training-mode passes give the BatchNorms non-trivial running statistics
        for _ in range(3):
            model(torch.rand(4, 6, 1, 64, 64))
    model.eval()
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    x = torch.rand(2, 12, 1, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(reconstruct(folded, x), reconstruct(model, x), rtol=0, atol=1e-5)
        torch.testing.assert_close(folded.rollout(x[:, :4], 8), model.rollout(x[:, :4], 8), rtol=0, atol=1e-5)


def test_the_timed_training_step_is_the_trainers(monkeypatch):
    from matap.bench.measure import bench_model, training_module
    from matap.training.module import MatapModule

    module = training_module("gru", {"objective": "predict"})
    assert isinstance(module, MatapModule) and type(module.objective).__name__ == "PredictObjective"
    assert module.optimizer().defaults["lr"] == module.cfg.train.lr
    calls = []
    original = MatapModule.training_loss
    monkeypatch.setattr(MatapModule, "training_loss", lambda self, x, progress: calls.append(x.shape) or
                        original(self, x, progress))
    settings = resolve(_args("--quick", "--models", "gru", "--repeats", "1", "--warmup", "0"))
    bench_model("gru", torch.zeros(1, 20, 64, 64, dtype=torch.uint8), settings, torch.device("cpu"),
                {"fp32": 1.0, "bf16": 1.0})
    assert calls == [(1, 20, 1, 64, 64)]


class _Tiny(torch.nn.Module):
    """A convolution on the input, then one linear layer called three times on the same shape."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3, padding=1)
        self.head = torch.nn.Linear(8, 4)

    def forward(self, x):
        y = self.conv(x).flatten(1)[:, :8]
        return sum(self.head(y) for _ in range(3))


def test_layer_calls_are_recorded_with_shape_dtype_gradient_format_and_count():
    from matap.bench.layers import record_calls

    model = _Tiny()
    x = torch.zeros(5, 3, 4, 4)[:, :1].contiguous(memory_format=torch.channels_last)
    rows = record_calls(model, lambda: model(torch.zeros(5, 1, 4, 4)))
    assert [(r["layer"], r["type"], r["shapes"], r["calls"]) for r in rows] == [
        ("conv", "Conv2d", [[5, 1, 4, 4]], 1), ("head", "Linear", [[5, 8]], 3)]
    assert [r["grads"] for r in rows] == [[False], [True]]  # the frames take no gradient, a layer's output does
    assert [r["dtypes"] for r in rows] == [["float32"], ["float32"]]
    assert all(not m._forward_pre_hooks for m in model.modules())
    wide = torch.zeros(5, 2, 4, 4).contiguous(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(2, 2, 1)
    assert record_calls(conv, lambda: conv(wide))[0]["channels_last"] == [True]
    assert record_calls(conv, lambda: conv(wide.contiguous()))[0]["channels_last"] == [False]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert record_calls(model, lambda: model(x))[1]["dtypes"] == ["bfloat16"]


def test_a_layer_alone_counts_the_input_gradient_only_where_the_step_takes_one():
    from matap.bench.layers import time_layer

    layer = torch.nn.Linear(8, 4)
    row = {"shapes": [[5, 8]], "dtypes": ["float32"], "channels_last": [False], "calls": 1}
    product = 2 * 5 * 8 * 4
    cpu = torch.device("cpu")
    with_grad = time_layer(layer, {**row, "grads": [True]}, cpu, "fp32", True, 0, 1)
    without = time_layer(layer, {**row, "grads": [False]}, cpu, "fp32", True, 0, 1)
    forward = time_layer(layer, {**row, "grads": [True]}, cpu, "fp32", False, 0, 1)
    assert forward["flops"] == product
    assert with_grad["flops"] == 3 * product   # forward, weight gradient, input gradient
    assert without["flops"] == 2 * product     # no gradient for the input
    assert with_grad["s"] > 0 and forward["s"] > 0


def test_layer_bounds_add_every_call_and_divide_the_steps_flops_by_the_summed_time(monkeypatch):
    from matap.bench import layers

    seconds = {("conv", True): 0.002, ("conv", False): 0.001, ("head", True): 0.001, ("head", False): 0.0005}
    monkeypatch.setattr(layers, "time_layer", lambda module, row, device, precision, train, *a: {
        "s": seconds[row["layer"], train], "flops": 6e6 if train else 2e6})
    base = {"type": "Linear", "shapes": [[1]]}
    train = [{**base, "layer": "conv", "calls": 1}, {**base, "layer": "head", "calls": 3}]
    infer = [{**base, "layer": "conv", "calls": 1}, {**base, "layer": "head", "calls": 2}]
    out = layers.layer_bounds(_Tiny(), train, infer, torch.device("cpu"), "fp32", 0, 1, ceiling_gflops=10.0,
                              train_flops_per_step=5e7, infer_flops_per_step=1e7)
    conv, head = out["layers"]
    assert (head["train_calls"], head["infer_calls"]) == (3, 2)
    assert [conv["train_ms_per_step"], head["train_ms_per_step"]] == pytest.approx([2.0, 3.0])
    assert [conv["infer_ms_per_step"], head["infer_ms_per_step"]] == pytest.approx([1.0, 1.0])
    assert head["train_mflop_per_step"] == pytest.approx(18.0) and head["infer_mflop_per_step"] == pytest.approx(4.0)
    assert head["train_fraction_of_ceiling"] == pytest.approx(6e6 / 0.001 / 1e10)
    assert head["infer_fraction_of_ceiling"] == pytest.approx(2e6 / 0.0005 / 1e10)
    assert out["layers_train_ms_per_step"] == pytest.approx(5.0)
    assert out["layers_train_bound"] == pytest.approx(5e7 / 0.005 / 1e10)
    assert out["layers_infer_bound"] == pytest.approx(1e7 / 0.002 / 1e10)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_quick_run_with_layers_times_every_layer_of_the_step(tmp_path, capsys, precision):
    out = tmp_path / "bench.json"
    assert bench.run(_args("--models", "matap", "--quick", "--layers", "--precision", precision,
                           "--no-isolate", "--json", str(out))) == 0
    table = capsys.readouterr().out
    result = json.loads(out.read_text())["results"]["matap"]
    names = {row["layer"]: row for row in result["layers"]}
    model = matap.build_model("matap")
    expected = {name for name, m in model.named_modules()
                if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear))}
    assert expected == set(names), expected ^ set(names)
    assert names["encoder.features.0.0"]["shapes"] == [[4 * 20, 1, 64, 64]]
    assert names["cell.gate"]["train_calls"] == names["cell.gate"]["infer_calls"] == 20  # once per step
    frames = 4 * 20
    # the layers hold (nearly) all of the FLOPs the benchmark counts: none is left out, none counted twice
    layer_mflop = sum(row["infer_mflop_per_step"] for row in result["layers"])
    assert layer_mflop == pytest.approx(result["infer_flops_per_frame"] * frames / 1e6, rel=0.01)
    for row in result["layers"]:
        assert row["train_ms_per_step"] > 0 and row["infer_ms_per_step"] > 0
        assert 0 < row["train_fraction_of_ceiling"] and 0 < row["infer_fraction_of_ceiling"]
    assert result["layers_train_ms_per_step"] == pytest.approx(sum(r["train_ms_per_step"] for r in result["layers"]))
    ceiling = result["ceiling_gflops"] * 1e9
    flops = result["train_flops_per_frame"] * frames
    assert result["layers_train_bound"] == pytest.approx(flops / (result["layers_train_ms_per_step"] / 1e3) / ceiling)
    assert "layers   matap: each convolution and linear layer alone" in table
    assert "bound    if nothing but these layers took time" in table


def test_the_layers_of_a_fused_fp32_step_are_recorded_one_by_one():
    from matap.bench.measure import _layer_calls

    settings = {"seed": 0, "objective": "paper", "channels_last": True, "precision": "fp32"}
    batch = torch.randint(0, 256, (2, 20, 64, 64), dtype=torch.uint8)
    _, train_calls, infer_calls = _layer_calls("matap", batch, settings, torch.device("cpu"))
    for calls in (train_calls, infer_calls):
        assert {"decoder.features.1.0", "decoder.features.2.0", "decoder.features.3",
                "encoder.features.1.0"} <= {row["layer"] for row in calls}
    decoder_out = next(row for row in train_calls if row["layer"] == "decoder.features.3")
    assert decoder_out["grads"] == [True] and decoder_out["channels_last"] == [True]
    assert not any(any(row["grads"]) for row in infer_calls)  # inference takes no gradient


def test_without_layers_nothing_is_timed_alone(tmp_path):
    out = tmp_path / "bench.json"
    assert bench.run(_args("--models", "gru", "--quick", "--no-isolate", "--json", str(out))) == 0
    assert "layers" not in json.loads(out.read_text())["results"]["gru"]


def test_layers_slower_than_the_step_are_called_no_bound():
    row = {"layer": "decoder.features.3", "shapes": [[640, 32, 64, 64]], "train_calls": 1, "infer_calls": 1,
           "train_ms_per_step": 10.0, "infer_ms_per_step": 2.0, "train_fraction_of_ceiling": 0.02,
           "infer_fraction_of_ceiling": 0.05}
    r = {"layers": [row], "layers_train_ms_per_step": 10.0, "layers_infer_ms_per_step": 2.0,
         "layers_train_bound": 0.3, "layers_infer_bound": 0.4,
         "train_fraction_of_ceiling": 0.2, "infer_fraction_of_ceiling": 0.3}
    lines = report._layer_lines("matap", r, "bf16")
    assert any("training step would reach about 30.0% and inference 40.0%" in line for line in lines)
    assert not any("no bound" in line for line in lines)
    lines = report._layer_lines("matap", {**r, "layers_infer_bound": 0.25}, "bf16")
    assert any("layers alone (infer) took longer than the whole step" in line for line in lines)


def test_a_layer_alone_gets_its_inputs_in_the_recorded_dtype_and_memory_format():
    from matap.bench.layers import _inputs

    row = {"shapes": [[2, 3, 4, 4]], "dtypes": ["bfloat16"], "grads": [True], "channels_last": [True]}
    (t,) = _inputs(row, torch.device("cpu"), train=True)
    assert t.dtype == torch.bfloat16 and t.requires_grad
    assert t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
    (t,) = _inputs({**row, "channels_last": [False]}, torch.device("cpu"), train=False)
    assert t.is_contiguous() and not t.requires_grad
