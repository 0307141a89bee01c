"""A process-wide malloc setting that can make CPU training faster: off unless asked for.

Neither ``import matap`` nor a training or evaluation call from Python changes the
process's allocator or starts a thread. A Python user asks for it by calling
:func:`keep_freed_memory`; the command line applies it where the environment says
``MATAP_ALLOCATOR=keep`` (:func:`requested_by_environment`). ``matap bench
--allocator keep`` against ``--allocator system`` measures what it buys on a machine.

PyTorch's CPU allocator asks ``malloc`` for every tensor. A training step on a
batch of 32 x 20 frames creates activations of hundreds of MiB; glibc serves
blocks that large with fresh ``mmap`` calls and unmaps them when they are
freed, so every step faults in (and zeroes) gigabytes of new pages: measured
with ``matap bench``, 25-38% of the training step's CPU time went to the
kernel. :func:`keep_freed_memory` tells glibc to serve large blocks from its
heap and keep what is freed for the next step. The cost is memory: the
heap fragments, and what it keeps grew to 1.6x the live peak of a training
step (3.5 GiB for the paper's batch of 32 in fp32, against 2.1 GiB with
``malloc`` as it is).

So what is kept is capped: a watchdog thread reads the process's resident
size every few milliseconds. Past ``MATAP_KEEP_MB`` (default 2,300 MiB) it
sets ``malloc`` back to glibc's defaults for the rest of the process and hands
the heap's free pages back to the kernel (``malloc_trim``); if the process
grows past the cap again, it trims again (at most twice a second). Below the
cap the speed of kept memory stays; a run that would pass it gets the memory
and speed of ``malloc`` as it is. ``MATAP_KEEP_MB=0`` removes the cap.

With ``MATAP_ALLOCATOR=system`` in the environment, :func:`keep_freed_memory` leaves
``malloc`` as it is.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
import threading
import time

from matap.errors import MatapError

ENV = "MATAP_ALLOCATOR"
CAP_ENV = "MATAP_KEEP_MB"
DEFAULT_CAP_MB = 2300     # under the 2.5 GB that paper-preset training is held to, with room for the poll
_POLL_S = 0.003          # a training step's largest activations take tens of milliseconds to fill
_RETRIM_S = 0.5          # after the switch back to malloc as it is, at most two trims a second
_MMAP_MAX_DEFAULT, _TRIM_DEFAULT = 65536, 128 * 1024  # glibc's defaults
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4  # mallopt parameters, from glibc's malloc.h
_KEEP_UP_TO = 2**31 - 1  # the largest value mallopt takes: free memory up to 2 GiB stays mapped
_TOP_PAD = 256 << 20     # grow the heap 256 MiB beyond a request: fewer brk calls

_state: dict = {"applied": False, "watchdog": None, "trims": 0}


def allocator() -> str:
    """``"glibc-keep"`` once :func:`keep_freed_memory` has taken effect, else ``"system"``."""
    return "glibc-keep" if _state["applied"] else "system"


def keep_cap_mb() -> int:
    """The resident size (MiB) above which kept memory is handed back: ``MATAP_KEEP_MB``, 0 = no cap."""
    raw = os.environ.get(CAP_ENV, str(DEFAULT_CAP_MB)).strip()
    try:
        cap = int(raw)
    except ValueError:
        raise MatapError(f"{CAP_ENV}={raw!r}: give a whole number of MiB (0 = no cap)") from None
    if cap < 0:
        raise MatapError(f"{CAP_ENV}={cap}: give a whole number of MiB >= 0 (0 = no cap)")
    return cap


def trims() -> int:
    """How often the watchdog has handed kept memory back to the kernel in this process (the first
    time it also leaves ``malloc`` as it is for the rest of the process)."""
    return _state["trims"]


def _watch(cap_pages: int, libc: ctypes.CDLL) -> None:
    fd = os.open("/proc/self/statm", os.O_RDONLY)
    last_trim = 0.0
    try:
        while True:
            if int(os.pread(fd, 64, 0).split()[1]) > cap_pages and time.monotonic() - last_trim > _RETRIM_S:
                if _state["applied"]:  # the first time: large blocks back to mmap, then the kept pages returned
                    libc.mallopt(_M_MMAP_MAX, _MMAP_MAX_DEFAULT)
                    libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_DEFAULT)
                    libc.mallopt(_M_TOP_PAD, 0)
                    _state["applied"] = False
                libc.malloc_trim(0)
                _state["trims"] += 1
                last_trim = time.monotonic()
            time.sleep(_POLL_S)
    finally:
        os.close(fd)


def _start_watchdog(libc: ctypes.CDLL) -> None:
    cap = keep_cap_mb()
    if not cap or _state["watchdog"] is not None or not os.path.exists("/proc/self/statm"):
        return
    libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    thread = threading.Thread(target=_watch, args=(cap * 2**20 // os.sysconf("SC_PAGE_SIZE"), libc),
                              name="matap-keep-cap", daemon=True)
    thread.start()
    _state["watchdog"] = thread


def _choice(default: str) -> str:
    choice = os.environ.get(ENV, default).strip().lower()
    if choice not in ("keep", "system"):
        raise MatapError(f"{ENV}={choice!r}: use 'keep' or 'system'")
    return choice


def requested_by_environment() -> bool:
    """The command line's opt-in: :func:`keep_freed_memory` where ``MATAP_ALLOCATOR=keep``, nothing
    otherwise (an unknown value is an error). Returns whether kept memory is in effect."""
    return keep_freed_memory() if _choice("system") == "keep" else _state["applied"]


def keep_freed_memory() -> bool:
    """Configure glibc's ``malloc`` (Linux only) to keep freed memory for reuse instead of returning
    large blocks to the kernel, and start the thread that holds it under the cap. Returns whether it
    took effect: not on other platforms or C libraries, nor when ``MATAP_ALLOCATOR=system``. Safe
    to call more than once."""
    choice = _choice("keep")
    if choice == "system" or not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return _state["applied"]
    keep_cap_mb()  # a bad cap is an error before anything changes
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return _state["applied"]
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if _state["watchdog"] is not None and not _state["applied"]:
        return False  # the cap was reached in this process: malloc stays as it is
    # With mmap off, glibc still falls back to mmap when the heap cannot grow, so nothing fails.
    done = mallopt(_M_MMAP_MAX, 0) == 1
    done = mallopt(_M_TRIM_THRESHOLD, _KEEP_UP_TO) == 1 and done
    done = mallopt(_M_TOP_PAD, _TOP_PAD) == 1 and done
    _state["applied"] = _state["applied"] or done
    if _state["applied"]:
        _start_watchdog(libc)
    return _state["applied"]


__all__ = ["CAP_ENV", "DEFAULT_CAP_MB", "ENV", "allocator", "keep_cap_mb", "keep_freed_memory", "requested_by_environment",
           "trims"]
