"""Atomic file replacement: a temporary file in the same folder, fsync, rename, fsync the folder.

Readers see the old file or the new one, never half of either, even across a crash. Used for
the state directory's documents and for zone files. A leaf: imports only the crash points.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from dnsfailover.crashpoint import crashpoint


def atomic_write(
    path: Path,
    data: bytes,
    crash_name: str = "",
    mode: int | None = None,
    check: Callable[[Path], None] | None = None,
) -> None:
    """Replace `path` with `data`. `check(temp)` may inspect the new file before the rename
    and raise to keep the old one byte for byte; `mode` sets its permission bits.

    Never through a symlink: mkstemp creates the temporary file O_EXCL with mode 0600, and
    the rename replaces a symlink at `path` instead of writing where it points."""
    directory = path.parent
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if mode is not None:
            os.chmod(temp, mode)
        if check is not None:
            check(temp)
        crashpoint(crash_name)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
