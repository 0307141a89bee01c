import os
import subprocess
import sys

import pytest

from test_trainer import CHATTER


@pytest.mark.skipif(sys.platform != "linux", reason="gloo DDP test runs on Linux")
def test_two_process_ddp_on_cpu(tmp_path):
    """Multi-process training needs configuration only: 2 CPU processes over gloo."""
    run = tmp_path / "ddp"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    result = subprocess.run(
        [sys.executable, "-m", "matap.cli", "train", "--config", "smoke", "--out", str(run),
         "train.devices=2", "train.strategy=ddp", "train.accelerator=cpu"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert [text for text in CHATTER if text in result.stdout + result.stderr] == []  # no process prints them
    assert (run / "checkpoints" / "last.ckpt").is_file()
    rows = (run / "history.csv").read_text().strip().splitlines()
    assert len(rows) == 2
