"""The parts of one node wired together: index, placement, stores and the thread pool that
keeps their blocking calls off the event loop. Every service module works through a Node."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ParamSpec, TypeVar

from holdfast.config import Config
from holdfast.index.committer import (
    COMMITTER_ENV,
    REMOTE_METHODS,
    CommitterClient,
    CommitterUnavailable,
    socket_name,
)
from holdfast.index.sqlite import SqliteIndex
from holdfast.placement.policy import Policies, default_policy
from holdfast.service.integrity import Integrity, open_drives
from holdfast.stores.activity import ForegroundMeter
from holdfast.stores.registry import StoreMap
from holdfast.workers.counters import count

log = logging.getLogger("holdfast.node")
P = ParamSpec("P")
T = TypeVar("T")


def index_path(config: Config) -> Path:
    return config.primary_dir / "index" / "holdfast.db"


class Node:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.index = SqliteIndex(index_path(config), gc_grace_seconds=config.gc_grace_seconds)
        self.index.start_checkpointer()
        # Drives, placement and integrity: docs/integrity.md.
        self.drives = open_drives(config, self.index)
        # This node's stores by cluster-unique id (a bare id of an older data directory
        # finds its drive too: holdfast/stores/registry.py).
        self.stores: StoreMap = self.drives.stores
        self.policies = Policies(
            default_policy(len(self.stores), config.copies, config.min_copies, config.spread),
            len(self.stores),
        )
        self.policies.refresh(self.index.bucket_policies)
        self.integrity = Integrity(self.index, self.drives)
        self.foreground = ForegroundMeter(index_path(config).parent / "foreground.mmap")
        self.pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="holdfast-io")
        # The node's shared index committer, when the supervisor runs one (server.py).
        self.committer = (
            CommitterClient(socket_name(self.index.path))
            if os.environ.get(COMMITTER_ENV) == "1"
            else None
        )

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking index or store call in the node's thread pool."""
        loop = asyncio.get_running_loop()
        call = functools.partial(fn, *args, **kwargs) if kwargs else functools.partial(fn, *args)
        return await loop.run_in_executor(self.pool, call)

    async def write(self, method: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """An index write method: PUTs and DELETEs go to the node's committer when there is
        one (a bigger group commit for all workers), anything else, or everything while the
        committer is unreachable, to this process's own group commit, awaited on its future
        directly (no pool thread). May raise committer.OutcomeUnknown."""
        name = method.__name__
        if self.committer is not None and name in REMOTE_METHODS and not kwargs:
            try:
                return await self.committer.call(name, *args)
            except CommitterUnavailable:
                count("INDEX_WRITES", 1, "local")
        return await asyncio.wrap_future(self.index.defer(method, *args, **kwargs))

    async def lookup(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """An index point read, done right on the event loop: a WAL read of a few cached
        pages costs less than the two context switches of a thread hop. If the index is
        busy or locked it fails fast and the read is retried in the pool instead."""
        try:
            return fn(*args, **kwargs)
        except sqlite3.OperationalError:
            return await self.run(fn, *args, **kwargs)

    async def iterate(self, make: Callable[[], Iterator[T]], batch: int = 1) -> AsyncIterator[T]:
        """Drive a blocking iterator from the event loop, ``batch`` items per thread hop."""
        it = await self.run(make)
        sentinel = object()
        failed: list[Exception] = []

        def take() -> list:
            out = []
            for _ in range(batch):
                try:
                    item = next(it, sentinel)
                except Exception as e:
                    if not out:
                        raise
                    failed.append(e)  # deliver the items already read, then raise
                    break
                if item is sentinel:
                    break
                out.append(item)
            return out

        while True:
            items = await self.run(take)
            for item in items:
                yield item
            if failed:
                raise failed[0]
            if len(items) < batch:
                return

    def close(self) -> None:
        if self.committer is not None:
            self.committer.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
