"""The ops leader: the one process of a node that samples the time series, evaluates the
alert rules and delivers the outbox.

Every worker serves status and metrics, but these jobs must run once per node: the first
process to take an exclusive ``flock`` on ``<ops>/leader.lock`` runs them, the others retry
the lock slowly, so a replacement takes over within seconds if that process dies. The lock
lives in the ops directory, not beside the index, so alerting does not depend on the index
or on the background workers being healthy.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

from holdfast.config import Config
from holdfast.leader_lock import acquire
from holdfast.ops import metrics
from holdfast.ops.alerts import CLEAR_AFTER_EVALUATIONS, Channel, Deliverer, Outbox, evaluate
from holdfast.ops.node import NodeInfo
from holdfast.ops.status import BoundedCall, StatusKeeper
from holdfast.ops.timeseries import FILE_NAME, SAMPLE_SECONDS, Sampler, chart

log = logging.getLogger("holdfast.ops")

LOCK_RETRY_SECONDS = 5.0
FORGET_DEAD_EVERY = 60.0
TICK_SECONDS = 0.5


class OpsLeader:
    def __init__(
        self,
        config: Config,
        node: NodeInfo,
        keeper: StatusKeeper,
        outbox: Outbox,
        channels: list[Channel],
    ) -> None:
        self.config = config
        self.node = node
        self.keeper = keeper
        self.outbox = outbox
        self.channels = channels
        self.is_leader = False
        self.sampler: Sampler | None = None
        self.deliverer: Deliverer | None = None
        self._lock_fd: int | None = None
        self._call = BoundedCall("leader")
        self._totals_call = BoundedCall("totals")
        self._deliver_task: asyncio.Task | None = None

    async def run(self) -> None:
        self._lock_fd = await acquire(self.config.ops_path / "leader.lock", LOCK_RETRY_SECONDS)
        self.is_leader = True
        log.info("process %d is the ops leader", os.getpid())
        path = self.config.ops_path / FILE_NAME
        ok, sampler = await self._call(10.0, Sampler.open, path, self.node.boot_id)
        if not ok:
            log.error("time series store unreadable (%s); starting empty", sampler)
            sampler = Sampler(path, self.node.boot_id)
        self.sampler = sampler
        await self._raise_restart()
        if self.channels:
            node = {
                "hostname": self.node.hostname,
                "endpoint": self.config.endpoint,
                "boot_id": self.node.boot_id,
            }
            self.deliverer = Deliverer(self.outbox, self.channels, self.config, node)
            self._deliver_task = asyncio.get_running_loop().create_task(self.deliverer.run())
        await self._loop()

    async def _raise_restart(self) -> None:
        unclean = self.node.previous_shutdown == "unclean"
        summary = (
            f"node {self.node.hostname} started (previous shutdown: {self.node.previous_shutdown})"
        )
        details = {
            "boot_id": self.node.boot_id,
            "version": self.node.version,
            "previous_shutdown": self.node.previous_shutdown,
        }
        ok, raised = await self._call(
            10.0,
            self.outbox.raise_event,
            f"restart:{self.node.boot_id}",
            "node_restart",
            "warning" if unclean else "info",
            summary,
            details,
        )
        if not ok:
            log.error("could not write the restart alert to the outbox: %s", raised)
        elif raised:
            metrics.ALERTS_RAISED.labels("node_restart").inc()

    async def _loop(self) -> None:
        last_eval = last_forget = float("-inf")
        next_sample = time.time()
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                if time.time() >= next_sample:
                    # Just after each 10 s boundary, so every slot of the fine tier gets one.
                    next_sample = (time.time() // SAMPLE_SECONDS + 1) * SAMPLE_SECONDS + 0.5
                    await self._sample()
                if time.monotonic() - last_eval >= self.config.alert_eval_seconds:
                    last_eval = time.monotonic()
                    await self.evaluate()
                if time.monotonic() - last_forget >= FORGET_DEAD_EVERY:
                    last_forget = time.monotonic()
                    await self._call(
                        10.0, metrics.forget_dead_processes, metrics.multiprocess_dir()
                    )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("ops leader step failed")

    async def _sample(self) -> None:
        ok, totals = await self._totals_call(5.0, metrics.node_totals)
        if not ok:
            log.warning("could not read metric totals: %s", totals)
            return
        snap = self.keeper.snapshot
        gauges = {
            "capacity_total": snap["capacity"]["total_bytes"],
            # Holdfast's data, not the whole filesystem's use (other files share the disk).
            "capacity_used": snap["capacity"].get("data_bytes"),
            "repair_backlog": snap.get("repair", {}).get("queued"),
            "objects": snap["index"].get("objects"),
        }
        self.sampler.sample(totals, gauges)
        await self._call(5.0, self.sampler.save)

    async def evaluate(self) -> list[str]:
        """Run the rules once against this process's snapshot; returns rules raised."""
        series = self.sampler.series
        conditions, known = evaluate(
            self.keeper.snapshot,
            chart(series, "10s")["points"],
            chart(series, "1m")["points"],
            self.config,
        )
        clear_after = CLEAR_AFTER_EVALUATIONS * self.config.alert_eval_seconds
        ok, raised = await self._call(10.0, self.outbox.apply, conditions, known, clear_after)
        if not ok:
            log.error("could not update the alert outbox: %s", raised)
            return []
        for rule in raised:
            metrics.ALERTS_RAISED.labels(rule).inc()
        if raised and self.deliverer is not None:
            self.deliverer.wake.set()
        return raised

    async def stop(self) -> None:
        if self._deliver_task is not None:
            self._deliver_task.cancel()
            await asyncio.gather(self._deliver_task, return_exceptions=True)
        if self.deliverer is not None:
            self.deliverer.close()
        self._call.close()
        self._totals_call.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
