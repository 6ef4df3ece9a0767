"""One writer at a time: an advisory lock file (flock), which the kernel releases when its holder ends, killed
or not, so a lock is never left behind.

Used where two runs at once would lose data: two installs (each writing state.json over the other's entry,
one pruning the release the other made live), two exports (one deleting, as a killed run's leftovers, the
files the other had just written).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from .errors import AgegateError


@contextlib.contextmanager
def exclusive(lock: Path, busy: AgegateError):
    """Hold `lock` (created if missing) for the block; raise `busy` at once if another process holds it."""
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy from None
        yield
    finally:
        os.close(fd)  # closing releases the lock, as a kill does
