"""One trainer per run folder: ``RUN/train.lock``, held for the run's lifetime.

The lock is an advisory ``flock`` on the open file, which the kernel releases when the
holder dies, however it dies; the file's text, ``PID HOST``, names the holder for the
message a second trainer prints. The text stays after a crash: a later trainer that gets
the lock says whose lock it took over. Where ``flock`` is not available, the text alone
decides: a live process on this host, or any process on another host, keeps the folder.

The file is written in place, not through :func:`matap.atomic.atomic_write`: the lock
belongs to the file's inode, which a rename would replace.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from pathlib import Path

from matap.errors import MatapError

try:
    import fcntl
except ImportError:  # not on Windows: the text alone decides
    fcntl = None

LOCK_NAME = "train.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _holder(text: str) -> tuple[int, str] | None:
    """(pid, host) from the lock file's text, None when it names no one."""
    parts = text.split()
    if len(parts) != 2 or not parts[0].isdigit():
        return None
    return int(parts[0]), parts[1]


class RunLock:
    """``with RunLock(run_dir):`` holds ``run_dir/train.lock``; raises MatapError naming the holder when
    another trainer holds it, and prints one line to stderr when it takes over a lock left by a trainer
    that no longer runs."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _refuse(self, holder: tuple[int, str] | None, why: str = "") -> MatapError:
        who = f"pid {holder[0]} on host {holder[1]}" if holder else "another process"
        return MatapError(f"{self.path.parent}: another trainer is using this run folder ({who}{why}; {self.path}); "
                          f"wait for it to end or stop it")

    def acquire(self) -> None:
        host, pid = socket.gethostname(), os.getpid()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            locked = self._flock(fd)
            holder = _holder(os.pread(fd, 4096, 0).decode(errors="replace"))
            if locked is False:
                raise self._refuse(holder)
            if holder is not None and holder != (pid, host):
                other_pid, other_host = holder
                running = other_host == host and _alive(other_pid)
                if locked is None and (running or other_host != host):
                    raise self._refuse(holder, "" if running else ", which this host cannot check; delete the file "
                                                                  "if no trainer runs there")
                state = "no longer holds it" if running or other_host != host else "is no longer running"
                print(f"matap: {self.path}: taking over the lock of pid {other_pid} on host {other_host}, which "
                      f"{state}", file=sys.stderr)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{pid} {host}\n".encode(), 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    @staticmethod
    def _flock(fd: int) -> bool | None:
        """True when this process now holds the lock, False when another one does, None without flock."""
        if fcntl is None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return False
            return None  # a file system without flock (ENOLCK, EOPNOTSUPP, ...)
        return True

    def release(self) -> None:
        """Empty the file (the run ended cleanly: no one to name) and release the lock."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        finally:
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None


__all__ = ["LOCK_NAME", "RunLock"]
