"""The repair queue's worker: make every drive agree with the index, without a storm.

Rows come from the write path (copies a degraded write could not make), the read path and
the scrubber (missing, corrupt or unreadable copies) and the garbage collector (deletes a
down drive missed). A row for a drive that is down waits untouched: that is the drive's
hinted-handoff log, worked off the moment a probe finds the drive back, so it re-syncs
exactly what it missed (EBS, 2011: a returning node re-copied whole volumes).

Flow control (EBS, 2011: the re-mirroring storm), every number configurable:

* the node's one transfer queue (holdfast/workers/transfers.py), shared with drain and
  rebalance: operations/s and bytes/s for all of them together (bytes are taken block by
  block as they are copied, so one large blob is paced too), per target node, and one of
  the cluster's transfer slots (its cap held in the index engine) per copy;
* at most ``repair_concurrency`` repairs at once, on a thread pool of their own, so request
  threads are never taken; and each block waits for a short lull in foreground requests
  (bounded, so repair still progresses under constant load);
* a failing row backs off exponentially with jitter, capped, and durably (its attempt count
  and next time live in the index, so a restart does not reset it);
* a target drive without room (repair stops at the repair reserve, never filling a drive),
  or one that fails as a whole (a node that is up but accepts nothing, or flaps), is backed
  off as a whole: while it is, exactly one of its rows is tried per backoff interval, so
  its retry rate is bounded however many rows wait for it.

A copy is rebuilt block by block from every copy that still has that block right: other
drives first, then the target's own (bad) copy and quarantined copies, so a blob whose
copies are each damaged in different places is still recovered. The bad copy is then moved
to quarantine, never deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from holdfast.index.records import RepairTask, Segment
from holdfast.service.node import Node
from holdfast.stores.base import Store, StoreFull
from holdfast.stores.verify import (
    Copy,
    CopyReader,
    NoGoodCopy,
    copies_of,
    copy_state,
    with_quarantined,
)
from holdfast.workers.counters import count, gauge
from holdfast.workers.limits import Backoff, Pacer, jittered_delay
from holdfast.workers.transfers import Lane, NoSlot, Pace, TransferQueue
from holdfast.workers.verify import Checker

log = logging.getLogger("holdfast.repair")

IDLE_SECONDS = 1.0  # how often an idle worker looks at the queue again


class RepairFailed(Exception):
    """A repair that cannot complete now; the row is retried later."""

    kind = "error"


class TargetFull(RepairFailed):
    kind = "target-full"


class TargetDown(RepairFailed):
    kind = "target-down"


class NoGoodSource(RepairFailed):
    kind = "no-good-source"


class NoTransferSlot(RepairFailed):
    """The cluster's cap on transfers was reached (or the index did not answer) for longer
    than a transfer waits: the row backs off."""

    kind = "no-slot"


@dataclass
class RepairStats:
    attempts: int = 0
    repaired: int = 0  # copies written
    verified_ok: int = 0  # rows whose copy turned out fine (a transient error)
    deletes: int = 0  # missed deletes replayed
    dropped: int = 0  # rows for blobs that died meanwhile
    bytes_copied: int = 0
    quarantined: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    retries: int = 0  # attempts of rows that had failed before, or on a backed-off drive
    last_error: str | None = None
    _retry_times: deque = field(default_factory=deque)

    def note_retry(self) -> None:
        now = time.monotonic()
        self.retries += 1
        self._retry_times.append(now)
        while self._retry_times and self._retry_times[0] < now - 60:
            self._retry_times.popleft()

    def retry_rate(self) -> float:
        """Retries per second over the last minute."""
        now = time.monotonic()
        return sum(1 for t in self._retry_times if t >= now - 60) / 60.0


class Repairer:
    """Carries out one row, synchronously. Shared by the worker (``pace``: its lane of the
    transfer queue) and ``holdfast fsck`` (a Pacer of its own)."""

    def __init__(self, node: Node, pace: Lane | Pacer) -> None:
        self.node = node
        self.pace = pace
        self.stats = RepairStats()
        self._claims: dict[str, int] = {}  # bytes being written per drive
        self._claims_lock = threading.Lock()

    def execute(self, task: RepairTask) -> int:
        """Do ``task``; returns the bytes copied. Raises RepairFailed when it must wait."""
        # In a cluster one node leads the background work (a lease in the shared index), so
        # its repairs write to the other nodes' drives too, through NodeStore.
        store = self.node.all_stores.get(task.store_id)
        if store is None or not self.node.writable(task.store_id):
            raise TargetDown(f"drive {task.store_id} is not writable")
        if task.op == "delete":
            return self._delete(store, task)
        return self._copy(store, task)

    def _delete(self, store: Store, task: RepairTask) -> int:
        """Replay a delete the drive missed."""
        self._guard(store, task, lambda: store.delete(task.blob_id))
        self.node.blocking.finish_repair(task)
        self.stats.deletes += 1
        count("REPAIRS", 1, "delete")
        return 0

    def _copy(self, store: Store, task: RepairTask) -> int:
        """Make the drive hold a verified copy: nothing to do if it already does, else
        rebuild one within the drive's room above its repair reserve."""
        if task.segment is None or not self.node.blocking.is_live(task.blob_id):
            self.node.blocking.finish_repair(task)  # the blob died meanwhile: nothing owed
            self.stats.dropped += 1
            count("REPAIRS", 1, "dropped")
            return 0
        seg = task.segment
        try:
            with self.pace.transfer(store.store_id) as pace:
                state = self._guard(store, task, lambda: copy_state(store, seg, pace))
                if state == "ok":
                    moved = None
                else:
                    with self._room(store, task, seg.size):
                        moved = self._guard(
                            store, task, lambda: self._rebuild(store, seg, state == "bad", pace)
                        )
        except NoSlot as e:
            raise NoTransferSlot(str(e)) from e
        if state == "ok":
            self.node.blocking.finish_repair(task)
            self.node.drives.copy_repaired(task.store_id, task.blob_id)
            self.stats.verified_ok += 1
            count("REPAIRS", 1, "verified-ok")
            return 0
        if moved is not None:
            self.stats.quarantined += 1
            count("CORRUPTIONS_FIXED")
            log.warning(
                "quarantined a bad copy of blob %s on %s: %s", seg.blob_id, store.store_id, moved
            )
        if not self.node.blocking.finish_repair(task):
            store.delete(seg.blob_id)  # deleted while we copied: the copy is garbage
            self.stats.dropped += 1
            return 0
        self.node.drives.copy_repaired(task.store_id, task.blob_id)
        self.stats.repaired += 1
        self.stats.bytes_copied += seg.size
        count("REPAIRS", 1, "copied")
        count("REPAIR_BYTES", seg.size)
        log.info(
            "repaired blob %s on %s (%s, %d bytes)",
            seg.blob_id,
            store.store_id,
            task.reason,
            seg.size,
        )
        return seg.size

    @contextlib.contextmanager
    def _room(self, store: Store, task: RepairTask, size: int) -> Iterator[None]:
        """Claim ``size`` bytes of the drive's room above its repair reserve for the
        duration of one copy. Claims of concurrent repairs count against the room, so
        together they cannot write past the reserve either."""
        with self._claims_lock:
            room = self._guard(store, task, store.repair_room) - self._claims.get(store.store_id, 0)
            if room < size:
                raise TargetFull(
                    f"drive {store.store_id} has no room for {size} bytes above its "
                    f"{store.repair_reserve_percent}% repair reserve"
                )
            self._claims[store.store_id] = self._claims.get(store.store_id, 0) + size
        try:
            yield
        finally:
            with self._claims_lock:
                self._claims[store.store_id] -= size

    def _guard(self, store: Store, task: RepairTask, fn):
        """Run a step on the target drive; a drive-level failure opens its breaker and
        turns into TargetDown (the row waits for the drive), a full one into TargetFull."""
        try:
            return fn()
        except StoreFull as e:
            raise TargetFull(str(e)) from e
        except RepairFailed:
            raise
        except OSError as e:
            if e.errno in (28, 122):
                raise TargetFull(str(e)) from e
            verdict = self.node.drives.copy_failed(store.store_id, task.blob_id, e)
            if verdict is not None:
                raise TargetDown(f"drive {store.store_id}: {e}") from e
            raise RepairFailed(f"drive {store.store_id}: {e}") from e

    def _rebuild(
        self, target: Store, seg: Segment, replace: bool, pace: Pace | Pacer | None = None
    ) -> str | None:
        """Write a verified copy of ``seg`` onto ``target``, block by block from whichever
        copy has each block right (holdfast/stores/verify.py), each block paced by ``pace``
        (the transfer's); quarantine the bad copy it replaces. Returns the quarantine name
        of the copy moved aside, if any."""
        if pace is None:
            pace = self.pace.pace(target.store_id) if isinstance(self.pace, Lane) else self.pace
        writer = target.writer(seg.block_size)
        try:
            with CopyReader(seg, self._sources(target, seg)) as sources:
                for block in range(-(-seg.size // seg.block_size)):
                    nbytes = min(seg.block_size, seg.size - block * seg.block_size)
                    try:
                        with pace.moving(nbytes):
                            writer.write(sources.block(block))
                    except NoGoodCopy as e:
                        raise NoGoodSource(
                            f"blob {seg.blob_id}: no copy has a good block {block}"
                        ) from e
            if replace:
                return writer.finish_replacing(seg.blob_id, seg.crcs)
            writer.finish(seg.blob_id, seg.crcs)
            return None
        except BaseException:
            writer.abort_quietly()
            raise

    def _sources(self, target: Store, seg: Segment) -> list[Copy]:
        """Every copy that may hold good blocks of ``seg``, best first: the other stores'
        copies, then the target's own (a bad copy's other blocks are good), then every
        quarantined copy."""
        order = self.node.read_order(seg.stores, seg.blob_id)
        # Copies on other nodes too (a node back from the dead pulls what it missed).
        stores = self.node.all_stores
        others = [sid for sid in order if sid != target.store_id and sid in stores]
        copies = copies_of(others, stores) + [Copy(target.store_id, target)]
        return with_quarantined(seg.blob_id, copies, self.node.stores)


class RepairWorker:
    """The queue's loop: runs in the one process that runs the background workers."""

    def __init__(self, node: Node, transfers: TransferQueue | None = None) -> None:
        cfg = node.config
        self.node = node
        self.base = cfg.repair_backoff_base_seconds
        self.cap = cfg.repair_backoff_cap_seconds
        self.concurrency = cfg.repair_concurrency
        # The node's one transfer queue (shared with drain and rebalance): its sliding
        # one-second window holds every kind's bytes together to the rate, also in the
        # first second of a storm (a token bucket's burst would double it). Its record,
        # bytes and attempts per second as done, is what the storm test (issue 13) holds to
        # the limit: repair.rate in the published integrity status (integrity-status.json),
        # the busiest second on the status page and as a gauge.
        self.transfers = transfers if transfers is not None else TransferQueue.for_node(node)
        self.lane = self.transfers.lane("repair")
        self.record = self.transfers.record
        self.repairer = Repairer(node, self.lane)
        self.checker = Checker(node, self.lane)
        self.stats = self.repairer.stats
        self.pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="repair")
        self._slots = asyncio.Semaphore(self.concurrency)
        self._inflight: set[tuple[str, str]] = set()
        self._drive_backoff: dict[str, Backoff] = {}
        self._drive_until: dict[str, float] = {}
        self._loop_backoff = Backoff(base=1.0, cap=60.0)
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()

    def wake(self, store_id: str | None = None) -> None:
        """Look at the queue now (a drive came back: replay its handoff log at once). A
        local drive the drive monitor found back (its probes have their own backoff) also
        loses its repair backoff; a peer's drive keeps it, so a flapping node is not
        retried at each flap."""
        if store_id is not None:
            self._drive_backoff.pop(store_id, None)
            self._drive_until.pop(store_id, None)
        self._wake.set()

    def limits(self) -> dict:
        cfg = self.node.config
        return {
            # The transfer queue's totals: every kind (repair, drain, rebalance) together.
            "bytes_per_second": self.transfers.rate,
            "ops_per_second": self.transfers.ops_rate,
            "concurrency": self.concurrency,
            "backoff_base_seconds": self.base,
            "backoff_cap_seconds": self.cap,
            "repair_reserve_percent": cfg.repair_reserve_percent,
            # At most one attempt per backoff interval per failing drive: once at the cap,
            # at most 2/cap per second per drive, and never more than ops_per_second.
            "retry_rate_bound_per_drive": 2.0 / self.cap,
        }

    def snapshot(self) -> dict:
        s = self.stats
        now = time.monotonic()
        return {
            "attempts": s.attempts,
            "repaired": s.repaired,
            "verified_ok": s.verified_ok,
            "deletes_replayed": s.deletes,
            "dropped": s.dropped,
            "bytes_copied": s.bytes_copied,
            "quarantined": s.quarantined,
            "failures": dict(s.failures),
            "retries": s.retries,
            "retry_rate_per_second": round(s.retry_rate(), 4),
            "in_flight": len(self._inflight),
            "drives_backing_off": {
                sid: round(until - now, 2)
                for sid, until in self._drive_until.items()
                if until > now
            },
            "last_error": s.last_error,
            "limits": self.limits(),
            "rate": self.record.snapshot(),
        }

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            try:
                started = await self.step()
                self._loop_backoff.reset()
                if not started:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), IDLE_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception:
                delay = self._loop_backoff.next_delay()
                log.exception("repair loop failed; retrying in %.1fs", delay)
                await asyncio.sleep(delay)

    async def step(self) -> int:
        """Start the repairs that may run now; returns how many were started."""
        now = time.monotonic()
        targets = [
            sid
            for sid in self.node.all_stores
            if self.node.writable(sid) and self._drive_until.get(sid, 0.0) <= now
        ]
        # Rows queued before store ids were qualified carry bare ids: ask for those too.
        rows = await self.node.index.due_repairs(
            self.node.stores.aliases(targets), 4 * self.concurrency
        )
        started = 0
        probing: set[str] = set()
        for task in rows:
            drive = self.node.stores.resolve(task.store_id)
            key = (task.blob_id, drive)
            if key in self._inflight:
                continue
            if drive in self._drive_backoff:
                # A drive that failed (no room, or down as a whole): one probe at a time.
                if drive in probing or any(k[1] == drive for k in self._inflight):
                    continue
                probing.add(drive)
            await self._slots.acquire()
            await self.lane.op_async(drive)
            self._inflight.add(key)
            t = asyncio.get_running_loop().create_task(self._run(task))
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)
            started += 1
        return started

    async def _run(self, task: RepairTask) -> None:
        drive = self.node.stores.resolve(task.store_id)
        key = (task.blob_id, drive)
        self.stats.attempts += 1
        retry = bool(task.attempts) or drive in self._drive_backoff
        if retry:
            self.stats.note_retry()
        self.record.note_attempt(retry)
        try:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self.pool, self.repairer.execute, task)
            if task.ref and "/" in task.ref and task.op == "copy":
                await loop.run_in_executor(self.pool, self._settle_damage, task.ref)
            self._drive_backoff.pop(drive, None)
            self._drive_until.pop(drive, None)
            gauge("BACKOFF_SECONDS", 0.0, "repair")
        except (TargetFull, TargetDown) as e:
            # The drive, not the row, is the problem (full, or its node accepts nothing):
            # back off the drive as a whole, so however many rows wait for it, one probe
            # per interval is all the traffic it gets (EBS, 2011: a storm of retries).
            self._failed(task, e)
            backoff = self._drive_backoff.setdefault(drive, Backoff(self.base, self.cap))
            delay = backoff.next_delay()
            until = time.monotonic() + delay
            self._drive_until[drive] = until
            gauge("BACKOFF_SECONDS", delay, "repair")
            await self._defer(task, time.time() + (until - time.monotonic()), str(e))
        except Exception as e:
            self._failed(task, e)
            delay = jittered_delay(self.base, self.cap, task.attempts)
            await self._defer(task, time.time() + delay, str(e))
        finally:
            self._inflight.discard(key)
            self._slots.release()

    def _settle_damage(self, ref: str) -> None:
        """An object marked damaged may be whole again after this repair: verify it and
        take the mark off if so (a cheap lookup when it was never marked)."""
        bucket, _, key = ref.partition("/")
        obj = self.node.blocking.get_object(bucket, key)
        if obj is not None and obj.state != "ok":
            self.checker.settle_damage(obj, self.checker.check_object(obj))

    def _failed(self, task: RepairTask, e: Exception) -> None:
        kind = e.kind if isinstance(e, RepairFailed) else "error"
        self.stats.failures[kind] = self.stats.failures.get(kind, 0) + 1
        count("REPAIRS", 1, f"failed-{kind}")
        count("RETRIES", 1, "repair")
        self.stats.last_error = f"{task.op} {task.blob_id} on {task.store_id}: {e}"
        log.warning("repair failed (%s): %s", kind, self.stats.last_error)

    async def _defer(self, task: RepairTask, not_before: float, error: str) -> None:
        try:
            await self.node.index.defer_repair(task, not_before, error)
        except Exception:
            log.exception("could not record a repair's backoff")

    async def drain(self) -> None:
        """Wait for the repairs under way (tests, shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
