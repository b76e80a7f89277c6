"""Starts the background workers in exactly one process of a node.

Every worker process serves requests, but background jobs need one runner: the process that
holds the index's lease of the "workers" job runs them (garbage collection, the repair
queue, the scrubber, event notification delivery, SSE key re-sealing, the lifecycle rules); the others keep trying for it slowly, so a replacement takes over if
that process dies. The index engine decides what a lease is (SQLite: an flock next to the
index; a shared engine: one holder in the whole cluster). The drive monitor runs in every process, because each
keeps its own view of its drives.

The runner also publishes the integrity snapshot (holdfast/workers/health.py) to a small
JSON file next to the index every second, so every process, ``holdfast fsck`` and the tests
can read the background workers' state without asking the index.
"""

from __future__ import annotations

import asyncio
import logging
import os

from holdfast.index.base import Lease
from holdfast.service import Service
from holdfast.workers.antientropy import AntiEntropy
from holdfast.workers.drain import Drainer
from holdfast.workers.gc import GarbageCollector
from holdfast.workers.lifecycle import LifecycleWorker
from holdfast.workers.monitor import DriveMonitor
from holdfast.workers.notify import NotifyWorker
from holdfast.workers.rebalance import Rebalancer
from holdfast.workers.repair import RepairWorker
from holdfast.workers.reseal import ResealWorker
from holdfast.workers.scrub import Scrubber
from holdfast.workers.transfers import TransferQueue

log = logging.getLogger("holdfast.workers")

LOCK_RETRY_SECONDS = 10.0
LEASE_JOB = "workers"
LEASE_CHECK_SECONDS = 1.0  # how soon work stops once its lease is lost
PUBLISH_SECONDS = 1.0


class BackgroundWorkers:
    def __init__(self, service: Service) -> None:
        self.service = service
        node = service.node
        self.gc = GarbageCollector(node)
        # Every byte that moves for repair, re-sync, drain or rebalance goes through this
        # one queue (its limits, and the cluster's transfer slots in the index).
        self.transfers = TransferQueue.for_node(node)
        self.repair = RepairWorker(node, self.transfers)
        self.scrubber = Scrubber(node)
        self.anti_entropy = AntiEntropy(node, on_queued=self.repair.wake)
        self.drainer = Drainer(node, self.transfers)
        self.rebalancer = Rebalancer(node, self.transfers)
        self.lifecycle = LifecycleWorker(service)
        self.monitor = DriveMonitor(node)
        self.notify = NotifyWorker(service)
        self.reseal = ResealWorker(service)
        # The jobs the lease holder runs, all of one shape: ``run()`` until cancelled, and
        # ``close()`` (if they have one) when the runner stops.
        self.jobs = [
            self.gc,
            self.repair,
            self.scrubber,
            self.anti_entropy,
            self.drainer,
            self.rebalancer,
            self.notify,
            self.reseal,
            self.lifecycle,
        ]
        self._lease: Lease | None = None
        self._task: asyncio.Task | None = None
        self._monitor_task: asyncio.Task | None = None
        self._scrub_task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.leader = False
        node.drives.on_up = self._drive_up

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._monitor_task = self._loop.create_task(self.monitor.run())
        self._task = self._loop.create_task(self._run())
        if self.scrubber.job is not None:
            self._scrub_task = self._loop.create_task(self._scrub_own_drives(self.scrubber.job))

    def _drive_up(self, store_id: str) -> None:
        """A probe (in a pool thread) found a drive back: replay its handoff log now."""
        if self._loop is not None and self.leader:
            self._loop.call_soon_threadsafe(self.repair.wake, store_id)

    async def _run(self) -> None:
        while True:
            self._lease = await self.service.node.index.lead(LEASE_JOB, LOCK_RETRY_SECONDS)
            self.leader = True
            log.info("process %d runs the background workers", os.getpid())
            # On a cluster each node scrubs its own drives under a lease of its own
            # (_scrub_own_drives); a single node's drives are all there is.
            jobs = [j for j in self.jobs if j is not self.scrubber or self.scrubber.job is None]
            work = asyncio.gather(*(job.run() for job in jobs), self._publish())
            try:
                # A lease can be lost (a shared engine's connection dropped): the jobs stop
                # at once, since another node may lead them now, and this process queues
                # for the lease again. An flock is never lost while the process lives.
                while self._lease.held:
                    done, _ = await asyncio.wait({work}, timeout=LEASE_CHECK_SECONDS)
                    if done:
                        await work  # the jobs never end by themselves: raise what stopped them
                        return
                log.warning("process %d lost the background lease; stopping its work", os.getpid())
            finally:
                # Also on stop(): cancelling this task does not cancel what it waits on.
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
                self.leader = False
            await self._lease.release()
            self._lease = None

    async def _scrub_own_drives(self, job: str) -> None:
        """A cluster node scrubs its own drives, under a lease of its own (one process of
        the node), whoever leads the cluster's other background work: every node's
        drives are verified, in parallel and without sending the bytes over the network.
        The faults it finds go to the cluster's repair queue, which the leader works off."""
        while True:
            lease = await self.service.node.index.lead(job, LOCK_RETRY_SECONDS)
            log.info("process %d scrubs this node's drives", os.getpid())
            work = asyncio.ensure_future(self.scrubber.run())
            try:
                while lease.held:
                    done, _ = await asyncio.wait({work}, timeout=LEASE_CHECK_SECONDS)
                    if done:
                        await work
                        return
                log.warning("process %d lost the scrub lease; stopping its work", os.getpid())
            finally:
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
                await lease.release()

    async def _publish(self) -> None:
        from holdfast.workers.health import publish

        while True:
            try:
                await self.service.node.run(publish, self.service, self)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not publish the integrity status")
            await asyncio.sleep(PUBLISH_SECONDS)

    async def stop(self) -> None:
        self.transfers.close()  # transfers waiting for a slot give up now
        for task in (self._task, self._monitor_task, self._scrub_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        for job in self.jobs:
            close = getattr(job, "close", None)
            if close is not None:
                close()
        if self._lease is not None:
            await self._lease.release()
            self._lease = None
