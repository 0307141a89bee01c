"""scripts/score-run.py: a run trained on its own and scored while its checkpoint was there joins a study's
report after its checkpoints are gone, with the scores of the checkpoint."""

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from matap.cli import main
from matap.errors import MatapError

SCRIPT = Path(__file__).parents[1] / "scripts" / "score-run.py"


def _script():
    spec = importlib.util.spec_from_file_location("score_run", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_runs_trained_alone_and_scored_join_compare_without_their_checkpoints(tmp_path, capsys):
    runs = tmp_path / "runs"
    for variant in ("matap", "gru"):
        run = runs / f"{variant}-seed0"
        assert main(["train", "--config", "smoke", f"model.name={variant}", "train.epochs=2", "train.seed=0",
                     "--out", str(run)]) == 0
        _script().main(run, "compare")
        scores = json.loads((run / "scores.json").read_text())
        assert set(scores["evaluations"]) == {"autoencode 4->4 T=8", "predict 4->4 T=8"}
        assert scores["seconds"] > 0
        shutil.rmtree(run / "checkpoints")
    stored = json.loads((runs / "matap-seed0" / "scores.json").read_text())["evaluations"]
    capsys.readouterr()
    out = tmp_path / "report"
    assert main(["compare", "--config", "smoke", "--seeds", "0", "train.epochs=2", "--runs", str(runs),
                 "--out", str(out)]) == 0
    log = capsys.readouterr().out
    assert log.count("finished run found") == 2 and "training into" not in log
    results = json.loads((out / "results.json").read_text())
    assert results["num_trained"] == 0
    ssim = results["evaluation"]["models"]["matap"]["predict"]["ssim"]["mean"]
    assert abs(ssim - stored["predict 4->4 T=8"]["result"]["metrics"]["ssim"]["mean"]) < 1e-9


def test_an_unfinished_run_is_not_scored(tmp_path):
    run = tmp_path / "matap-seed0"
    assert main(["train", "--config", "smoke", "train.epochs=1", "--out", str(run)]) == 0
    (run / "config.yaml").write_text((run / "config.yaml").read_text().replace("epochs: 1", "epochs: 3"))
    with pytest.raises(MatapError, match="1 of its 3 epochs"):
        _script().main(run, "compare")
    assert not (run / "scores.json").exists()
