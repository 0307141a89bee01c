"""One trainer per run folder: RUN/train.lock names its holder; a second trainer is refused, a stale lock taken over."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from matap import lock as lock_module
from matap.cli import main
from matap.errors import MatapError
from matap.lock import RunLock

HOST = socket.gethostname()


def _dead_pid() -> int:
    """The pid of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_trainer_exits_2_naming_the_holder_and_a_killed_ones_lock_is_taken_over(tmp_path, capsys):
    run = tmp_path / "r"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.Popen([sys.executable, "-m", "matap.cli", "train", "--config", "smoke", "--out", str(run),
                             "train.epochs=50"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 300
    while not (run / "checkpoints" / "last.ckpt").exists():
        assert proc.poll() is None and time.time() < deadline, "training ended before the test could use its folder"
        time.sleep(0.05)
    assert (run / "train.lock").read_text() == f"{proc.pid} {HOST}\n"
    config = (run / "config.yaml").read_bytes()
    for args in (["train", "--resume", str(run)], ["train", "--config", "smoke", "--out", str(run), "--overwrite"]):
        assert main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("matap: error:"), err
        assert f"pid {proc.pid} on host {HOST}" in err[0] and "another trainer" in err[0]
    assert (run / "config.yaml").read_bytes() == config and (run / "checkpoints" / "last.ckpt").exists()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (run / "train.lock").read_text() == f"{proc.pid} {HOST}\n"  # left behind, naming a dead process
    done = len((run / "history.csv").read_text().strip().splitlines()) - 1
    assert main(["train", "--resume", str(run), f"train.epochs={done + 1}"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert [line for line in err if "train.lock" in line] == [
        f"matap: {run / 'train.lock'}: taking over the lock of pid {proc.pid} on host {HOST}, which is no longer running"]
    assert (run / "train.lock").read_text() == ""  # released when the run ended


def test_a_stale_lock_is_taken_over_with_one_line(tmp_path, capsys):
    pid = _dead_pid()
    (tmp_path / "train.lock").write_text(f"{pid} {HOST}\n")
    with RunLock(tmp_path):
        assert (tmp_path / "train.lock").read_text() == f"{os.getpid()} {HOST}\n"
    assert capsys.readouterr().err.strip().splitlines() == [
        f"matap: {tmp_path / 'train.lock'}: taking over the lock of pid {pid} on host {HOST}, which is no longer running"]
    with RunLock(tmp_path):  # a clean end leaves no one to name
        pass
    assert capsys.readouterr().err == ""


def test_a_held_lock_refuses_another_holder_in_the_same_process(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(MatapError, match=f"another trainer is using this run folder \\(pid {os.getpid()} on host"):
            RunLock(tmp_path).acquire()
    with RunLock(tmp_path):
        pass


def test_without_flock_the_text_decides(tmp_path, monkeypatch):
    monkeypatch.setattr(lock_module, "fcntl", None)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "train.lock").write_text(f"{holder.pid} {HOST}\n")
        with pytest.raises(MatapError, match=f"pid {holder.pid} on host {HOST}"):
            RunLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    (tmp_path / "train.lock").write_text("123 elsewhere\n")
    with pytest.raises(MatapError, match="which this host cannot check"):
        RunLock(tmp_path).acquire()
    (tmp_path / "train.lock").write_text(f"{_dead_pid()} {HOST}\n")
    with RunLock(tmp_path):
        pass
