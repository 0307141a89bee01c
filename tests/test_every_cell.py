"""Every registered cell through the command line, on the smoke preset: `matap train`, `evaluate`,
`predict`, `inspect` (the cells with a memory), and a variant of `matap ablate` under its name."""

import json

import pytest

from matap.cli import main
from matap.experiments.ablate import all_variants
from matap.registry import CELLS

NAMES = list(CELLS)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One smoke run per registered cell, in the folder `matap ablate --seeds 0` would train it into."""
    root = tmp_path_factory.mktemp("cells")
    for name in NAMES:
        run = root / f"{name}-seed0"
        assert main(["train", "--config", "smoke", "--out", str(run), f"model.name={name}", "train.seed=0"]) == 0
    return root


@pytest.mark.parametrize("name", NAMES)
def test_every_cell_trains_evaluates_and_predicts(runs, name, tmp_path):
    run = runs / f"{name}-seed0"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert main(["evaluate", str(run), "--num", "2", "--json", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["model"] == name
    assert main(["predict", str(run), "--num", "1", "--png", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").stat().st_size > 0


@pytest.mark.parametrize("name", NAMES)
def test_every_memory_cell_is_inspected(runs, name, tmp_path, capsys):
    code = main(["inspect", str(runs / f"{name}-seed0"), "--num", "2", "--out", str(tmp_path)])
    if name == "gru":
        assert code == 2 and "nothing to inspect" in capsys.readouterr().err
        return
    assert code == 0
    result = json.loads((tmp_path / "inspect.json").read_text())
    assert result["model"] == name and all((tmp_path / file).stat().st_size > 0 for file in result["files"])
    assert "attention.png" in result["files"] and ("write.png" in result["files"]) == (name == "matap-write")


def test_every_cell_is_a_variant_of_ablate(runs, tmp_path):
    assert set(NAMES) <= set(all_variants())
    out = tmp_path / "ablate"
    assert main(["ablate", "--config", "smoke", "--seeds", "0", "--runs", str(runs), "--out", str(out),
                 "--variants", *NAMES]) == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results["variants"]) == [name for name in all_variants() if name in NAMES]
    assert results["num_trained"] == 0                       # the runs of `matap train` above, reused
    report = (out / "report.md").read_text()
    assert all(f"| {name} |" in report or f"| {name} (" in report for name in NAMES)
    memories = [name for name in NAMES if name not in ("matap", "gru")]
    assert [c["id"] for c in results["claims"]] == [f"{name}-{m}" for name in memories for m in ("ssim", "bce")]
    assert "## The memories beyond FIFO against MA-TAP" in report
