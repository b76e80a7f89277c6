"""One process per node for a job: whoever holds an exclusive flock on a file runs it.

Background work and ops sampling each need exactly one runner among the worker processes.
The kernel drops the lock when its holder dies, so another worker takes over without any
cleanup or timeout logic.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path


def try_lock(path: Path) -> int | None:
    """The locked file descriptor, or None if another process holds the lock (or the file
    cannot be opened, e.g. while its directory is gone)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


async def acquire(path: Path, retry_seconds: float) -> int:
    """Wait until this process holds the lock; returns its file descriptor."""
    while (fd := try_lock(path)) is None:
        await asyncio.sleep(retry_seconds)
    return fd
