"""Keeps each process's view of its drives and placement policies current.

Runs in every worker process (each has its own circuit breakers, see stores/health.py):

* drives that are down or read-only are probed when their backoff says so;
* drives that are up get their identity marker checked every second (a stat, so a pulled
  drive is noticed even while no request touches it) and a full probe, including a small
  fsync'd write, every ``FULL_PROBE_SECONDS`` (a drive remounted read-only);
* back-end stores added or removed with ``holdfast store`` are taken in or let go;
* the per-bucket placement policies are reloaded from the index.

Probes run in the node's thread pool and are bounded by the breaker's backoff: a dead drive
costs one probe per ``drive_probe_cap_seconds`` at most.
"""

from __future__ import annotations

import asyncio
import logging
import time

from holdfast.service.node import Node
from holdfast.stores.base import StoreMissing
from holdfast.stores.health import DriveState

log = logging.getLogger("holdfast.drives")

TICK_SECONDS = 1.0
FULL_PROBE_SECONDS = 10.0
POLICY_SECONDS = 2.0


class DriveMonitor:
    def __init__(self, node: Node) -> None:
        self.node = node
        self._last_full = time.monotonic()
        self._last_policy = time.monotonic()

    def tick(self) -> None:
        """One round (blocking)."""
        drives = self.node.drives
        drives.note_slow()
        for store_id in drives.due():
            drives.probe(store_id)
        full = time.monotonic() - self._last_full >= FULL_PROBE_SECONDS
        for store_id, h in drives.health.items():
            if h.state is not DriveState.UP:
                continue
            if full:
                drives.probe(store_id)
            elif h.uuid is not None:
                self._check_marker(store_id)
        if full:
            self._last_full = time.monotonic()
        if time.monotonic() - self._last_policy >= POLICY_SECONDS:
            self._last_policy = time.monotonic()
            try:
                self.node.sync_backends()
                self.node.policies.refresh(self.node.blocking.bucket_policies)
            except Exception as e:  # the index may be busy or down: keep the last view
                log.debug("placement policies not refreshed: %s", e)

    def _check_marker(self, store_id: str) -> None:
        h = self.node.drives.health[store_id]
        try:
            found = h.store.identity()
        except OSError as e:
            found, error = None, e
        else:
            error = None
        if found != h.uuid:
            reason = error or StoreMissing(0, f"{h.store.location()}: drive marker gone or changed")
            self.node.drives.report(store_id, DriveState.DOWN, str(reason), decisive=True)

    async def run(self) -> None:
        while True:
            try:
                await self.node.run(self.tick)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("drive monitor round failed")
            await asyncio.sleep(TICK_SECONDS)
