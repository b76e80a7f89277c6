"""One worker's ops machinery, wired together and started with the worker.

Per worker process: the request hook and its log flusher, the status refresher, and a bid
for ops leadership (time series, alert rules, alert delivery). Nothing here is on the
request path except :meth:`OpsRuntime.observe`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from holdfast.cluster.status import cluster_section
from holdfast.ops import metrics
from holdfast.ops.alerts import Outbox, channels_from_config
from holdfast.ops.leader import OpsLeader
from holdfast.ops.node import load_node_info
from holdfast.ops.observe import BatchProcessor, Observation
from holdfast.ops.providers import call, load_providers
from holdfast.ops.requestlog import REQUEST_LOG_DIR, RequestLogWriter
from holdfast.ops.status import BoundedCall, StatusKeeper
from holdfast.ops.timeseries import FILE_NAME, read_summary
from holdfast.service.users import load_root_credentials

if TYPE_CHECKING:
    from holdfast.s3.app import S3App
    from holdfast.s3.http import Request, Response

log = logging.getLogger("holdfast.ops")

FLUSH_SECONDS = 0.5
MAX_BACKLOG = 100_000  # records held while the log writer is stuck; older ones are dropped


class OpsRuntime:
    def __init__(self, app: S3App) -> None:
        config = app.config
        self.app = app
        self.config = config
        self.node = load_node_info(config)
        self.root = load_root_credentials(config.primary_dir)
        self.pending: list[tuple] = []  # observe.Finished fields
        self._backlog: list[tuple] = []
        self._log_executor = ThreadPoolExecutor(1, thread_name_prefix="holdfast-ops-log")
        self._log_future: Future | None = None
        self.log_dir = config.ops_path / REQUEST_LOG_DIR
        self.processor = BatchProcessor(
            RequestLogWriter(self.log_dir, config.request_log_max_bytes)
        )
        self.outbox = Outbox.in_dir(config.ops_path)
        self.channels = channels_from_config(config, dict(os.environ))
        self.providers = load_providers(app)
        names = [c.name for c in self.channels]
        self.keeper = StatusKeeper(
            config,
            self.node,
            lambda: app.service.node.index,
            self.providers,
            sections={
                "alerts": lambda: self.outbox.summary(names),
                "traffic": lambda: read_summary(config.ops_path / FILE_NAME),
                "cluster": lambda: cluster_section(config),
            },
            workers=lambda: app.workers,
            background_state=self._background_state,
            worker_state=self._worker_state,
        )
        self.leader = OpsLeader(config, self.node, self.keeper, self.outbox, self.channels)
        self._gc_seen: dict[str, int] = {}
        self._tasks: list[asyncio.Task] = []

    # -- the request hook ------------------------------------------------------------------

    def observe(self, request: Request, response: Response) -> Observation:
        return Observation(self, request, response)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        ok, why = await BoundedCall("outbox-create")(5.0, self.outbox.create)
        if not ok:
            log.error("alert outbox unavailable: %s", why)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self.keeper.run()),
            loop.create_task(self._flush_loop()),
            loop.create_task(self.leader.run()),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.leader.stop()
        self._flush()
        if self._log_future is not None:
            await asyncio.wait([asyncio.wrap_future(self._log_future)], timeout=2.0)
        self._flush()
        if self._log_future is not None:
            await asyncio.wait([asyncio.wrap_future(self._log_future)], timeout=2.0)
        self._log_executor.shutdown(wait=False)
        self.keeper.close()

    # -- request log flushing --------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            self._flush()

    def _flush(self) -> None:
        """Hand what the hook collected to the log thread, unless it is still busy (a slow
        or hung drive): then keep it, up to MAX_BACKLOG records, and drop the oldest."""
        if self.pending:
            batch, self.pending = self.pending, []
            if self._backlog:
                self._backlog.extend(batch)
            else:
                self._backlog = batch
        if self._log_future is not None and not self._log_future.done():
            excess = len(self._backlog) - MAX_BACKLOG
            if excess > 0:
                del self._backlog[:excess]
                metrics.REQUEST_LOG_DROPPED.inc(excess)
            return
        if self._backlog:
            batch, self._backlog = self._backlog, []
            self._log_future = self._log_executor.submit(self._process, batch)

    def _process(self, batch: list[tuple]) -> None:
        try:
            self.processor.process(batch)
        except Exception:
            log.exception("request log batch failed")

    # -- what this worker adds to the status snapshot --------------------------------------

    def _worker_state(self) -> dict:
        return {
            "request_log": {
                "dir": str(self.log_dir),
                "waiting": len(self.pending) + len(self._backlog),
                "write_errors": self.processor.log_errors,
                "last_error": self.processor.last_log_error,
            }
        }

    def _background_state(self, workers: Any) -> dict:
        """Called only in the process running the background workers; its result is shared
        with every worker through a file (see StatusKeeper._background)."""
        out: dict[str, Any] = {
            "providers": {p.name: call(p, "background", workers) for p in self.providers}
        }
        gc = getattr(workers, "gc", None)
        if gc is not None:
            out["gc"] = self._gc_state(gc)
        return out

    def _gc_state(self, gc: Any) -> dict:
        stats = gc.stats
        for name, counter in (("deleted", metrics.GC_DELETED), ("orphans", metrics.GC_ORPHANS)):
            value = getattr(stats, name, 0)
            if value > self._gc_seen.get(name, 0):
                counter.inc(value - self._gc_seen.get(name, 0))
            self._gc_seen[name] = value
        errors = getattr(stats, "errors", 0)
        if errors > self._gc_seen.get("errors", 0):
            metrics.RETRIES.labels("gc").inc(errors - self._gc_seen.get("errors", 0))
        self._gc_seen["errors"] = errors
        backoff = getattr(gc, "backoff", None)
        failures = getattr(backoff, "failures", 0)
        delay = min(backoff.cap, backoff.base * 2 ** (failures - 1)) if failures else 0.0
        metrics.BACKOFF_SECONDS.labels("gc").set(delay)
        return {
            "deleted": getattr(stats, "deleted", 0),
            "orphans_removed": getattr(stats, "orphans", 0),
            "tmp_removed": getattr(stats, "tmp_removed", 0),
            "errors": errors,
            "last_run": getattr(stats, "last_run", 0.0),
            "consecutive_failures": failures,
            "backoff_seconds": delay,
        }
