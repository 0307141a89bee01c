import os
import subprocess
import sys

import pytest
import torch

from matap.checkpoint import atomic_save, load_model, safe_load
from matap.errors import MatapError


class _RunsACommand:
    """An object whose unpickling would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused(smoke_run, tmp_path):
    marker = tmp_path / "pwned"
    ckpt = torch.load(smoke_run / "checkpoints" / "best.ckpt", weights_only=True)
    ckpt["payload"] = _RunsACommand(marker)
    evil = tmp_path / "evil.ckpt"
    torch.save(ckpt, evil)
    with pytest.raises(MatapError, match="refused"):
        safe_load(evil)
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    for args in (["evaluate", str(evil)], ["predict", str(evil), "--out", str(tmp_path / "x.gif")]):
        result = subprocess.run([sys.executable, "-m", "matap.cli", *args], capture_output=True, text=True, env=env)
        assert result.returncode == 2 and "refused" in result.stderr
    assert not marker.exists()


def test_truncated_checkpoint_is_a_clear_error(smoke_run, tmp_path):
    data = (smoke_run / "checkpoints" / "best.ckpt").read_bytes()
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(MatapError, match="not a readable checkpoint"):
        load_model(cut)


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    atomic_save({"state_dict": {"w": torch.ones(3)}, "matap_config": {}}, path)

    def fail(obj, fh, *args, **kwargs):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", fail)
    with pytest.raises(OSError):
        atomic_save({"state_dict": {"w": torch.zeros(3)}, "matap_config": {}}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["state_dict"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left behind


def test_load_model_round_trip(smoke_run):
    model, cfg, path = load_model(smoke_run)
    assert path.name == "best.ckpt" and cfg.model.name == "matap" and not model.training
    state = torch.load(path, weights_only=True)["state_dict"]
    torch.testing.assert_close(model.state_dict()["cell.gate.weight"], state["model.cell.gate.weight"])
