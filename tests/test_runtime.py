"""matap.runtime: glibc keeps freed memory for reuse (checked in fresh interpreters)."""

import os
import platform
import subprocess
import sys

import pytest

from matap.errors import MatapError
from matap.runtime import keep_freed_memory

PROBE = """
import ctypes, sys
from matap.runtime import allocator, keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
applied = keep_freed_memory()
before = libc.mallinfo2().hblkhd  # bytes in mmapped blocks (Python's own, from start-up)
block = libc.malloc(200 << 20)  # far above glibc's largest mmap threshold (32 MiB)
mmapped = libc.mallinfo2().hblkhd - before
libc.free(block)
kept = libc.mallinfo2().fordblks  # free bytes still held by the heap
print(applied, allocator(), mmapped, kept)
"""

linux_glibc = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                                 reason="the allocator setting applies to glibc on Linux only")


def _probe(**env: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
                         env={**os.environ, **env})
    return out.stdout.split()


@linux_glibc
def test_large_blocks_come_from_the_heap_and_stay_there_once_freed():
    applied, name, mmapped, kept = _probe(MATAP_ALLOCATOR="keep")
    assert (applied, name) == ("True", "glibc-keep")
    assert int(mmapped) == 0
    assert int(kept) >= 200 << 20


@linux_glibc
def test_system_leaves_malloc_alone():
    applied, name, mmapped, kept = _probe(MATAP_ALLOCATOR="system")
    assert (applied, name) == ("False", "system")
    assert int(mmapped) >= 200 << 20  # glibc's default: a block this large is mapped, and unmapped when freed
    assert int(kept) < 200 << 20


def test_an_unknown_choice_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("MATAP_ALLOCATOR", "tcmalloc")
    with pytest.raises(MatapError, match="MATAP_ALLOCATOR='tcmalloc'"):
        keep_freed_memory()


CAP_PROBE = """
import ctypes, os, time
from matap.runtime import allocator, keep_freed_memory, trims

def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20

libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
applied = keep_freed_memory()
block = libc.malloc(300 << 20)
ctypes.memset(block, 1, 300 << 20)  # resident now: past a cap of 200 MiB
libc.free(block)
time.sleep(0.3)
print(applied, allocator(), trims(), rss_mb())
"""


def _cap_probe(**env: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", CAP_PROBE], capture_output=True, text=True, check=True,
                         env={**os.environ, "MATAP_ALLOCATOR": "keep", **env})
    return out.stdout.split()


@linux_glibc
def test_past_the_cap_kept_memory_goes_back_and_malloc_is_left_alone():
    applied, name, trimmed, rss = _cap_probe(MATAP_KEEP_MB="200")
    assert applied == "True" and name == "system" and int(trimmed) >= 1
    assert int(rss) < 200  # the 300 MiB freed block was handed back


@linux_glibc
def test_without_a_cap_freed_memory_stays():
    applied, name, trimmed, rss = _cap_probe(MATAP_KEEP_MB="0")
    assert (applied, name, trimmed) == ("True", "glibc-keep", "0")
    assert int(rss) >= 300


@pytest.mark.parametrize("value", ["lots", "-5"])
def test_a_bad_cap_is_a_clear_error(monkeypatch, value):
    monkeypatch.setenv("MATAP_KEEP_MB", value)
    with pytest.raises(MatapError, match="MATAP_KEEP_MB"):
        keep_freed_memory()


UNASKED = """
import sys, threading
import matap
from matap.cli import main
from matap.config import load_config
from matap.runtime import allocator
from matap.training import train

train(load_config("smoke"), sys.argv[1] + "/python", overwrite=True)
python = allocator(), any(t.name == "matap-keep-cap" for t in threading.enumerate())
assert main(["train", "--config", "smoke", "--out", sys.argv[1] + "/cli"]) == 0
print(*python, allocator(), any(t.name == "matap-keep-cap" for t in threading.enumerate()))
"""


def test_nothing_changes_the_allocator_unless_asked_for(tmp_path):
    """Importing matap, training from Python and the CLI without MATAP_ALLOCATOR leave malloc alone and
    start no thread; the CLI opts in with MATAP_ALLOCATOR=keep."""
    env = {k: v for k, v in os.environ.items() if k != "MATAP_ALLOCATOR"}
    out = subprocess.run([sys.executable, "-c", UNASKED, str(tmp_path / "a")], capture_output=True, text=True,
                         check=True, env=env).stdout.split()
    assert out[-4:] == ["system", "False", "system", "False"]


@linux_glibc
def test_the_cli_keeps_freed_memory_where_the_environment_asks(tmp_path):
    code = ("import sys; from matap.cli import main; from matap.runtime import allocator; "
            "assert main(['train', '--config', 'smoke', '--out', sys.argv[1]]) == 0; print(allocator())")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], capture_output=True, text=True,
                         check=True, env={**os.environ, "MATAP_ALLOCATOR": "keep"}).stdout.split()
    assert out[-1] == "glibc-keep"
