"""How the Lightning trainer is set up: the log interval and what reaches the user's log."""

import logging
import os
import subprocess
import sys

from matap.config import load_config
from matap.training.run import RunCheckpoint, _trainer


def test_log_interval_is_capped_at_the_batches_of_an_epoch(tmp_path):
    cfg = load_config("smoke")                                  # TensorBoard points every 10 steps
    assert _trainer(cfg, tmp_path, RunCheckpoint(tmp_path), batches=3).log_every_n_steps == 3
    assert _trainer(cfg, tmp_path, RunCheckpoint(tmp_path), batches=50).log_every_n_steps == 10


def test_lightning_adverts_and_hardware_lines_are_dropped_and_its_other_messages_kept(tmp_path, caplog):
    _trainer(load_config("smoke"), tmp_path, RunCheckpoint(tmp_path), batches=2)
    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    with caplog.at_level(logging.INFO, logger=log.name):
        log.info("💡 Tip: install something")
        log.info("GPU available: False, used: False")
        log.info("`Trainer.fit` stopped: `max_epochs=1` reached.")
    messages = [record.getMessage() for record in caplog.records]
    assert messages == ["`Trainer.fit` stopped: `max_epochs=1` reached."]


# Lines Lightning prints about the machine and itself, which a matap training run must not show.
CHATTER = ("GPU available", "TPU available", "HPU available", "LOCAL_RANK", "to estimate number of stepping batches",
           "💡", "Tip:", "Initializing distributed", "All distributed processes registered")


def test_a_training_run_prints_no_lightning_hardware_lines(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "PYTHONWARNINGS"}  # warnings as a user sees them
    result = subprocess.run([sys.executable, "-m", "matap.cli", "train", "--config", "smoke", "--out", str(tmp_path / "r")],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert [text for text in CHATTER if text in output] == [], output
    assert "model matap" in result.stdout and "parameters 4,906,977" in result.stdout  # matap's own lines stay


def test_ctrl_c_inside_an_epochs_save_is_delivered_after_it():
    import os
    import signal

    import pytest

    from matap.training.run import deferred_sigint

    written = []
    # A process started in the background (nohup, `cmd &`) inherits SIGINT ignored; install Python's handler.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with deferred_sigint():
                os.kill(os.getpid(), signal.SIGINT)
                written.append("history.csv")  # reached: the interrupt waited for the block
        assert written == ["history.csv"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, inherited)
