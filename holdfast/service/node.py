"""The parts of one node wired together: index, placement, stores and the thread pool that
keeps blocking store calls off the event loop. Every service module works through a Node.

The index is asynchronous (holdfast/index/base.py) and decides itself where its calls run;
blocking code that runs in the pool (store I/O with an index call in the middle, the
background workers) reaches it through ``node.blocking``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from holdfast.config import Config
from holdfast.index import open_index
from holdfast.index.base import Index
from holdfast.index.blocking import BlockingIndex
from holdfast.placement.policy import Policies, Policy, default_policy
from holdfast.service.integrity import Integrity, open_drives, sync_backends
from holdfast.stores.activity import ForegroundMeter
from holdfast.stores.health import Drives
from holdfast.stores.registry import StoreMap

log = logging.getLogger("holdfast.node")
P = ParamSpec("P")
T = TypeVar("T")


class Node:
    """Built in two steps: ``Node(config)`` (no I/O), then ``await node.start()`` on the
    event loop that will serve it (opens and migrates the index, adopts the drives). Code
    without a loop (tests, tools) calls :meth:`start_blocking` instead."""

    drives: Drives
    stores: StoreMap
    policies: Policies
    integrity: Integrity
    blocking: BlockingIndex
    foreground: ForegroundMeter

    def __init__(self, config: Config) -> None:
        self.config = config
        self.index: Index = open_index(config)
        self.pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="holdfast-io")
        self._own_loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        await self.index.start()
        # Shared by the node's processes, so it needs the directory whatever the engine.
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        self.foreground = ForegroundMeter(self.config.state_dir / "foreground.mmap")
        self.blocking = BlockingIndex(self.index, asyncio.get_running_loop())
        # Drives, placement and integrity: docs/integrity.md.
        self.drives = await self.run(open_drives, self.config, self.blocking)
        # This node's stores by cluster-unique id (a bare id of an older data directory
        # finds its drive too: holdfast/stores/registry.py).
        self.stores = self.drives.stores
        # Every store a blob may be placed on or read from: on a cluster node, the other
        # nodes' drives too (holdfast/cluster/remote.py); else this node's drives.
        self.all_stores = self.stores
        self.writable = self.drives.writable
        self.zone_of = None
        self.prefer = None  # a cluster node's own drives (placement's first copy)
        self.read_rank = None
        if self.config.cluster_listen and self.config.node_cert:
            self._open_cluster()
        else:
            self.policies = Policies(
                default_policy(
                    len(self.stores),
                    self.config.copies,
                    self.config.min_copies,
                    self.config.spread,
                ),
                len(self.stores),
            )
        policies = await self.index.bucket_policies()
        self.policies.refresh(lambda: policies)
        self.integrity = Integrity(self.blocking, self.drives)

    def sync_backends(self) -> None:
        """Blocking: take in back-end stores added (or let go of ones removed) since start,
        and refit the single-node default policy to the new store count (a cluster node's
        policy does not depend on its own store count)."""
        added, removed = sync_backends(self.config, self.blocking, self.drives)
        if (added or removed) and not hasattr(self, "cluster"):
            count = len(self.stores)
            try:
                self.policies.default = default_policy(
                    count, self.config.copies, self.config.min_copies, self.config.spread
                )
            except ValueError as e:  # --spread the stores can no longer hold
                log.error("the default placement policy is unchanged: %s", e)
            self.policies.drives = count
            # What the admin commands (object where/push, store remove) read as the default.
            self.blocking.set_meta("default_policy", json.dumps(self.policies.default.as_dict()))

    def _open_cluster(self) -> None:
        """A cluster node places copies on distinct zones (nodes, where no zone is set): 2
        by default, whatever this node's own drive count."""
        from holdfast.cluster.remote import ClusterStores
        from holdfast.cluster.state import LivenessView
        from holdfast.net.client import NodeClient
        from holdfast.net.tls import NodeIdentity

        config = self.config
        identity = NodeIdentity.load(config.node_cert, config.node_key, config.cluster_ca)  # type: ignore[arg-type]
        cluster = ClusterStores(
            self.stores,
            self.drives.writable,
            LivenessView(config.state_dir),
            lambda peers: NodeClient(identity, peers, timeout=10.0, connect_timeout=1.0),
        )
        self.cluster = cluster
        self.all_stores = cluster
        self.writable = cluster.writable
        self.zone_of = cluster.zone_of
        self.prefer = cluster.is_local
        self.read_rank = cluster.read_rank
        copies = config.copies or 2
        policy = Policy(copies, min(config.min_copies, copies), domain="zone")
        self.policies = Policies(policy.with_spread(config.spread) if config.spread else policy, 0)

    def read_order(self, store_ids, blob_id: str) -> list[str]:  # type: ignore[no-untyped-def]
        """Copies to try, best first: this node's readable drives, then peers that are up."""
        order = self.drives.read_order(store_ids, blob_id)
        return self.read_rank(order) if self.read_rank is not None else order

    def start_blocking(self) -> None:
        """Start on an event loop of this node's own, in a daemon thread: for callers with
        no loop of their own, which then use ``node.blocking`` and ``node.call``."""
        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, name="holdfast-node-loop", daemon=True).start()
        self._own_loop = loop
        asyncio.run_coroutine_threadsafe(self.start(), loop).result()

    def call(self, coro):  # type: ignore[no-untyped-def]
        """Run a coroutine on the node's own loop (see start_blocking) and wait for it."""
        assert self._own_loop is not None, "call() needs start_blocking()"
        return asyncio.run_coroutine_threadsafe(coro, self._own_loop).result()

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking store (or other) call in the node's thread pool."""
        loop = asyncio.get_running_loop()
        call = functools.partial(fn, *args, **kwargs) if kwargs else functools.partial(fn, *args)
        return await loop.run_in_executor(self.pool, call)

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

    async def aclose(self) -> None:
        await self.index.close()
        cluster = getattr(self, "cluster", None)
        if cluster is not None:
            cluster.close()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Close from outside any running loop (tools and tests), or schedule the close on
        the running one."""
        if self._own_loop is not None:
            self.call(self.aclose())
            self._own_loop.call_soon_threadsafe(self._own_loop.stop)
            self._own_loop = None
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(self.aclose())
            return
        loop.create_task(self.aclose())
