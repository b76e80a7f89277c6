"""Starts the background workers in exactly one process of a node.

Every worker process serves requests, but background jobs need one runner: the first process
to take an exclusive lock on a file in the index directory runs them; the others keep
retrying the lock slowly, so a replacement takes over if that process dies.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from pathlib import Path

from holdfast.service import Service
from holdfast.workers.gc import GarbageCollector

log = logging.getLogger("holdfast.workers")

LOCK_RETRY_SECONDS = 10.0


class BackgroundWorkers:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.gc = GarbageCollector(service.node)
        self.lock_path = Path(service.node.index.path).parent / "workers.lock"
        self._lock_fd: int | None = None
        self._task: asyncio.Task | None = None
        self.leader = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def _try_lock(self) -> bool:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    async def _run(self) -> None:
        while not self._try_lock():
            await asyncio.sleep(LOCK_RETRY_SECONDS)
        self.leader = True
        log.info("process %d runs the background workers", os.getpid())
        await self.gc.run()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
