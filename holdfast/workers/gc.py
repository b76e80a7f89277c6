"""Garbage collection: delete blobs the index no longer refers to.

Two sources of garbage, neither found by scanning the drive at start-up:

* replaced and deleted objects, aborted uploads: their blobs enter ``gc_queue`` in the same
  transaction that retires them, and are deleted here once their grace period has passed;
* orphans of a crash between a blob's rename and its index commit: blobs are filed by the hour
  they were finished, so the sweeper visits each closed hour once, keeps a durable cursor, and
  deletes what ``live_blobs`` does not know. Old temporary files are removed the same way.

Both loops are rate-limited and back off on errors (DESIGN.md invariant 5).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from holdfast.index.records import RepairTask
from holdfast.service.node import Node
from holdfast.stores.base import hour_start
from holdfast.workers.limits import Backoff, TokenBucket
from holdfast.workers.verify import remove_orphans

log = logging.getLogger("holdfast.gc")

TMP_MAX_AGE = 24 * 3600.0


@dataclass
class GcStats:
    deleted: int = 0
    missed_deletes: int = 0  # deletes left in a down drive's handoff log
    orphans: int = 0
    tmp_removed: int = 0
    errors: int = 0
    last_run: float = 0.0


class GarbageCollector:
    def __init__(self, node: Node, ops_per_second: float = 500.0, batch: int = 200) -> None:
        self.node = node
        self.orphan_age = node.config.orphan_age_seconds
        self.sweep_interval = node.config.sweep_interval_seconds
        self.batch = batch
        self.bucket = TokenBucket(ops_per_second, burst=batch)
        self.backoff = Backoff(base=1.0, cap=300.0)
        self.stats = GcStats()

    # -- one step of each job, synchronous (run in the node's pool) --------------------------

    def collect_due(self, now: float | None = None) -> int:
        """Delete due garbage from every drive holding a copy. A drive that is down or
        read-only (or fails the delete) gets the delete in its hinted-handoff log instead,
        so the blob cannot come back with the drive."""
        due = self.node.blocking.due_garbage(self.batch, now)
        missed: list[RepairTask] = []
        for blob_id, store_ids in due:
            for recorded in store_ids:
                store_id = self.node.stores.resolve(recorded)
                if not self._delete(store_id, blob_id):
                    missed.append(RepairTask(blob_id, store_id, "delete", "missed-delete"))
        if due:
            self.node.blocking.forget_garbage([b for b, _ in due], missed)
        self.stats.deleted += len(due)
        self.stats.missed_deletes += len(missed)
        return len(due)

    def _delete(self, store_id: str, blob_id: str) -> bool:
        # Any node's GC deletes copies on every node; a peer that is down gets the delete
        # queued for its drive (its own repair worker replays it when it is back).
        store = self.node.all_stores.get(store_id)
        if store is None:
            log.error(
                "blob %s names unknown drive %s; its copy there is not deleted", blob_id, store_id
            )
            return True
        if not self.node.writable(store_id):
            return False
        try:
            store.delete(blob_id)
            return True
        except OSError as e:
            self.node.drives.copy_failed(store_id, blob_id, e)
            return False

    def sweep_orphans(self, now: float | None = None) -> int:
        """Sweep every hour on every store that began at least ``orphan_age`` ago and has not
        been swept whole yet; returns orphans removed. Only blobs finished more than
        ``orphan_age`` ago are candidates, so an upload between rename and commit is safe."""
        now = time.time() if now is None else now
        cutoff = now - self.orphan_age
        removed = 0
        for store in self.node.stores.values():
            if not self.node.drives.writable(store.store_id):
                continue  # swept once it is back; its cursor waits
            cursor_name = f"sweep_cursor:{store.store_id}"
            # Before store ids were qualified the cursor was kept under the bare drive name.
            cursor = (
                self.node.blocking.get_meta(cursor_name)
                or self.node.blocking.get_meta(f"sweep_cursor:{store.name}")
                or ""
            )
            for hour in store.hours():
                start = hour_start(hour)
                if hour <= cursor or start > cutoff:
                    continue
                removed += remove_orphans(self.node, store, hour, cutoff=cutoff)[0]
                if start + 3600 <= cutoff:  # fully aged: never needs another visit
                    self.node.blocking.set_meta(cursor_name, hour)
            self.stats.tmp_removed += store.remove_stale_temporary(TMP_MAX_AGE)
        self.stats.orphans += removed
        return removed

    # -- the loop ----------------------------------------------------------------------------

    async def run(self, interval: float = 5.0) -> None:
        last_sweep = float("-inf")
        while True:
            try:
                await self.bucket.take(self.batch)
                n = await self.node.run(self.collect_due)
                if time.monotonic() - last_sweep >= self.sweep_interval:
                    await self.node.run(self.sweep_orphans)
                    last_sweep = time.monotonic()
                self.backoff.reset()
                self.stats.last_run = time.time()
                await asyncio.sleep(0 if n == self.batch else interval)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.stats.errors += 1
                delay = self.backoff.next_delay()
                log.exception("garbage collection failed; retrying in %.1fs", delay)
                await asyncio.sleep(delay)
