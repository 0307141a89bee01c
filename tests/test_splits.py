"""The test split: held out from training and validation, scored by `matap evaluate --split test`
and by the experiments; model selection reads the validation set only."""

import json

import numpy as np
import pytest

from matap.cli import main
from matap.config import load_config
from matap.data import load_split
from matap.errors import MatapError
from matap.experiments.report import data_description, scored_split, split_videos


def test_the_test_split_is_other_sequences_of_the_held_out_digits():
    cfg = load_config("smoke")
    train, val, test = (load_split(cfg.data, s) for s in ("train", "val", "test"))
    assert test.shape == val.shape  # sized like the validation set
    assert not np.array_equal(test, val)
    assert not any(np.array_equal(t, v) for t in test for v in val)
    assert not any(np.array_equal(t, v) for t in test for v in train)


def test_evaluate_scores_the_split_it_is_asked_for(smoke_run, tmp_path, capsys):
    scores = {}
    for split in ("val", "test"):
        out = tmp_path / f"{split}.json"
        assert main(["evaluate", str(smoke_run), "--protocol", "reconstruct", "--split", split,
                     "--json", str(out)]) == 0
        printed = capsys.readouterr().out
        result = json.loads(out.read_text())
        assert result["split"] == split and result["checkpoint"].endswith("best.ckpt")
        name = {"val": "validation", "test": "test"}[split]
        assert result["data"] == f"{name} split of the run's config" and f"data: {name} split" in printed
        scores[split] = result["metrics"]["bce"]["per_timestep"]
    assert scores["val"] != scores["test"]


def test_evaluate_help_names_the_checkpoint_and_the_split(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "best.ckpt" in text and "lowest validation loss" in text and "--split {val,test}" in text
    assert "used neither in training nor in selection" in text


def test_user_arrays_have_no_test_split(tmp_path, capsys):
    videos = np.zeros((4, 8, 64, 64), dtype=np.uint8)
    for name in ("train.npy", "val.npy"):
        np.save(tmp_path / name, videos)
    overrides = ["data.source=array", f"data.train_path={tmp_path / 'train.npy'}",
                 f"data.val_path={tmp_path / 'val.npy'}", "data.seq_len=8", "data.layout=NT"]
    cfg = load_config("smoke", overrides)
    assert scored_split(cfg) == "val"
    with pytest.raises(MatapError, match="no test split"):
        split_videos(cfg, "test")
    run = tmp_path / "run"
    assert main(["train", "--config", "smoke", "--out", str(run), *overrides]) == 0
    assert main(["evaluate", str(run), "--split", "test"]) == 2
    assert "no test split" in capsys.readouterr().err


def test_experiments_score_generated_data_on_the_test_split():
    cfg = load_config("smoke")
    assert scored_split(cfg) == "test"
    assert data_description(cfg, "test").endswith("scores on the test set")
    assert data_description(cfg).endswith("scores on the validation set")  # what older results.json say
