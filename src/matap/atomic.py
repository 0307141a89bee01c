"""Writing a file so that a crash never leaves it half-written: every file matap writes goes
through :func:`atomic_write`."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path: str | Path, content: str | bytes | Callable[[BinaryIO], object]) -> Path:
    """Write ``content`` to ``path``: text (UTF-8), bytes, or a function that writes into the
    binary file it is given. The data goes to a temporary file in the same folder, is flushed
    to disk (fsync), then renamed over ``path``: a reader sees the old file or the new one,
    never a part, and a failed write leaves the old file and no temporary one. Creates the
    folder. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as to any new file
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(content):
                content(fh)
            else:
                fh.write(content.encode() if isinstance(content, str) else content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


__all__ = ["atomic_write"]
