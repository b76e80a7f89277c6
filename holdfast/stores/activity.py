"""Foreground activity on a node's drives, shared by its worker processes, so background
I/O (repair, scrub, fsck) can let requests go first.

Requests are served by every worker process, background work runs in one; a single 8-byte
slot in a small memory-mapped file holds the monotonic time of the latest foreground data
operation in any process (CLOCK_MONOTONIC is system-wide on Linux). Writing it costs a
clock read and, at most every 10 ms, one store to shared memory: nothing on the hot path
waits, locks or does I/O. A lost update between two processes only makes background work
start a few milliseconds early.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from pathlib import Path

_SLOT = struct.Struct("d")
_TOUCH_EVERY = 0.01


class ForegroundMeter:
    def __init__(self, path: Path | None = None) -> None:
        self._map: mmap.mmap | bytearray = bytearray(_SLOT.size)
        self._last = 0.0
        if path is not None:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    if os.fstat(fd).st_size < _SLOT.size:
                        os.ftruncate(fd, _SLOT.size)
                    self._map = mmap.mmap(fd, _SLOT.size)
                finally:
                    os.close(fd)
            except OSError:
                pass  # per-process only: background work still yields to this process

    def touch(self) -> None:
        """A foreground data operation is under way (call per request and per chunk)."""
        now = time.monotonic()
        if now - self._last >= _TOUCH_EVERY:
            self._last = now
            _SLOT.pack_into(self._map, 0, now)

    def idle_for(self) -> float:
        """Seconds since the latest foreground data operation on this node."""
        return time.monotonic() - _SLOT.unpack_from(self._map, 0)[0]

    def quiet_delay(self, quiet: float) -> float:
        """How long to wait before ``quiet`` seconds will have passed without requests."""
        return max(0.0, quiet - self.idle_for())

    def wait_quiet_sync(self, quiet: float, max_wait: float) -> float:
        """Block until the drives have been free of requests for ``quiet`` seconds, or for
        at most ``max_wait`` (background work must still progress under constant load).
        Returns the time waited."""
        waited = 0.0
        while waited < max_wait:
            delay = min(self.quiet_delay(quiet), max_wait - waited)
            if delay <= 0:
                break
            time.sleep(delay)
            waited += delay
        return waited
