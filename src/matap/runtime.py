"""Process-wide settings that make CPU training and inference faster.

PyTorch's CPU allocator asks ``malloc`` for every tensor. A training step on a
batch of 32 x 20 frames creates activations of hundreds of MiB; glibc serves
blocks that large with fresh ``mmap`` calls and unmaps them when they are
freed, so every step faults in (and zeroes) gigabytes of new pages: measured
with ``matap bench``, 25-38% of the training step's CPU time went to the
kernel. :func:`keep_freed_memory` tells glibc to serve large blocks from its
heap and keep what is freed for the next step. The cost is memory: the
process keeps its peak and grows a little above it (fragmentation).

Set ``MATAP_ALLOCATOR=system`` in the environment to leave ``malloc`` as it is.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

from matap.errors import MatapError

ENV = "MATAP_ALLOCATOR"
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4  # mallopt parameters, from glibc's malloc.h
_KEEP_UP_TO = 2**31 - 1  # the largest value mallopt takes: free memory up to 2 GiB stays mapped
_TOP_PAD = 256 << 20     # grow the heap 256 MiB beyond a request: fewer brk calls

_state = {"applied": False}


def allocator() -> str:
    """``"glibc-keep"`` once :func:`keep_freed_memory` has taken effect, else ``"system"``."""
    return "glibc-keep" if _state["applied"] else "system"


def keep_freed_memory() -> bool:
    """Configure glibc's ``malloc`` (Linux only) to keep freed memory for reuse instead of returning
    large blocks to the kernel. Returns whether it took effect: not on other platforms or C
    libraries, nor when ``MATAP_ALLOCATOR=system``. Safe to call more than once."""
    choice = os.environ.get(ENV, "keep").strip().lower()
    if choice not in ("keep", "system"):
        raise MatapError(f"{ENV}={choice!r}: use 'keep' (the default) or 'system'")
    if choice == "system" or not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return _state["applied"]
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return _state["applied"]
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # With mmap off, glibc still falls back to mmap when the heap cannot grow, so nothing fails.
    done = mallopt(_M_MMAP_MAX, 0) == 1
    done = mallopt(_M_TRIM_THRESHOLD, _KEEP_UP_TO) == 1 and done
    done = mallopt(_M_TOP_PAD, _TOP_PAD) == 1 and done
    _state["applied"] = _state["applied"] or done
    return _state["applied"]


__all__ = ["ENV", "allocator", "keep_freed_memory"]
