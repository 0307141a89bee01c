"""How the Lightning trainer is set up: the log interval and what reaches the user's log."""

import logging

from matap.config import load_config
from matap.training.run import RunCheckpoint, _trainer


def test_log_interval_is_capped_at_the_batches_of_an_epoch(tmp_path):
    cfg = load_config("smoke", ["train.log_every_n_steps=10"])
    assert _trainer(cfg, tmp_path, RunCheckpoint(tmp_path), batches=3).log_every_n_steps == 3
    assert _trainer(cfg, tmp_path, RunCheckpoint(tmp_path), batches=50).log_every_n_steps == 10


def test_lightning_adverts_are_dropped_and_its_other_messages_kept(tmp_path, caplog):
    _trainer(load_config("smoke"), tmp_path, RunCheckpoint(tmp_path), batches=2)
    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    with caplog.at_level(logging.INFO, logger=log.name):
        log.info("💡 Tip: install something")
        log.info("GPU available: False")
    messages = [record.getMessage() for record in caplog.records]
    assert "GPU available: False" in messages
    assert not any("Tip:" in message for message in messages)


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
