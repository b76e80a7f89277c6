"""Anti-entropy: make each drive hold what the index says it should, copying only what it
lacks, when the hinted-handoff log is not enough (the log was lost, a drive was swapped or
wiped, a node was restored from an old image).

For each drive it compares two hash trees (holdfast/merkle.py) of ``(blob id, length)``:
one built from the index (every segment of every object, version and upload part that
names the drive), one built where the drive is (its node lists its own files and sends
only digests). The comparison descends only into the ranges that differ, then lists just
the differing leaves; the blobs missing there, or held with the wrong length, get an
``anti-entropy`` row in the repair queue, whose worker copies them under its flow control
(token buckets, concurrency cap, backoff, repair reserve). So a drive that missed N blobs
receives those N blobs' bytes, not the volume (EBS, 2011).

Blobs a drive holds that the index does not know are not touched here: they may be writes
not yet committed. The scrubber and the orphan sweeper remove them once old enough.

When: a drive that becomes writable again (a node that was down or partitioned is back) is
compared at once, and every drive once per ``--anti-entropy-interval``. The pass's
progress (drives still to compare) and each drive's last result are kept in the index, so
a restart resumes the pass instead of starting over; nothing runs at start-up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from holdfast.index.records import RepairTask, Segment
from holdfast.merkle import Tree, descend, diff_leaf, hour_of, leaf_of
from holdfast.service.node import Node
from holdfast.stores.base import Capability
from holdfast.workers.counters import count
from holdfast.workers.limits import Backoff, TokenBucket

log = logging.getLogger("holdfast.antientropy")

STATE_KEY = "anti_entropy_state"
SCAN_BATCH = 500
SCAN_ROWS_PER_SECOND = 5000.0  # the index walk's pace (rows of objects, versions, parts)
WATCH_SECONDS = 1.0  # how often drives coming back are looked for
MIN_GAP_SECONDS = 60.0  # between two comparisons of one drive (a flapping node), or the interval
KINDS = ("local", "node")  # stores whose listed length is the blob's length


@dataclass
class DriveResult:
    """One drive's last comparison."""

    store_id: str
    finished: float = 0.0
    seconds: float = 0.0
    expected_blobs: int = 0
    ranges_compared: int = 0
    leaves_differing: int = 0
    missing: int = 0
    wrong_size: int = 0
    extra: int = 0
    blobs_queued: int = 0
    bytes_queued: int = 0


@dataclass
class State:
    """Saved in the index (meta ``anti_entropy_state``)."""

    passes: int = 0
    next_pass_at: float = 0.0
    pending: list[str] = field(default_factory=list)  # drives still to compare
    last: dict[str, dict] = field(default_factory=dict)  # store id -> DriveResult
    ranges_compared: int = 0
    blobs_queued: int = 0
    bytes_queued: int = 0


def index_segments(node: Node) -> Iterator[tuple[Segment, str]]:
    """Every segment the index holds live, with a reference for the repair row: objects,
    noncurrent versions, parts of unfinished uploads. A batch at a time, at most
    SCAN_ROWS_PER_SECOND rows a second, each batch after a short lull in foreground
    requests (bounded), so the walk yields to clients."""
    cfg = node.config
    pace = TokenBucket(SCAN_ROWS_PER_SECOND, burst=SCAN_BATCH)

    def lull() -> None:
        pace.take_sync(SCAN_BATCH)
        node.foreground.wait_quiet_sync(
            cfg.foreground_quiet_seconds, cfg.foreground_max_wait_seconds
        )

    after = None
    while True:
        lull()
        objects = node.blocking.scan_objects(after, SCAN_BATCH)
        for obj in objects:
            for seg in obj.segments:
                yield seg, f"{obj.bucket}/{obj.key}"
        if len(objects) < SCAN_BATCH:
            break
        after = (objects[-1].bucket, objects[-1].key)
    after = None
    while True:
        lull()
        versions = node.blocking.scan_versions(after, SCAN_BATCH)
        for obj in versions:
            for seg in obj.segments:
                yield seg, f"{obj.bucket}/{obj.key}"
        if len(versions) < SCAN_BATCH:
            break
        after = (versions[-1].bucket, versions[-1].key, versions[-1].vseq)
    after = None
    while True:
        lull()
        parts = node.blocking.scan_parts(after, SCAN_BATCH)
        for part in parts:
            yield part.segment, f"upload {part.upload_id} part {part.part_number}"
        if len(parts) < SCAN_BATCH:
            break
        after = (parts[-1].upload_id, parts[-1].part_number)


class AntiEntropy:
    def __init__(self, node: Node, on_queued: Callable[[], None] = lambda: None) -> None:
        self.node = node
        self.interval = node.config.anti_entropy_interval_seconds
        self.on_queued = on_queued
        self.state = State()
        self.loaded = False
        self.running: list[str] = []
        self.errors = 0
        self.last_error: str | None = None
        self._writable: dict[str, bool] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="anti-entropy")
        self._backoff = Backoff(base=1.0, cap=300.0)
        self._retry_at = 0.0

    # -- which drives ---------------------------------------------------------------------------

    def eligible(self, store_id: str) -> bool:
        store = self.node.all_stores.get(store_id)
        return (
            store is not None
            and store.kind in KINDS
            and store.can(Capability.LISTING)
            and bool(self.node.writable(store_id))
        )

    def _watch(self) -> None:
        """Queue the drives that became writable since the last look: a node back from a
        partition or a crash is compared at once (its hint log may be gone)."""
        for sid in list(self.node.all_stores):
            now = bool(self.node.writable(sid))
            before = self._writable.get(sid)
            self._writable[sid] = now
            if now and before is False and sid not in self.state.pending:
                log.info("drive %s is back: comparing it with the index", sid)
                self.state.pending.append(sid)

    # -- state ---------------------------------------------------------------------------------

    def load(self) -> None:
        raw = self.node.blocking.get_meta(STATE_KEY)
        if raw:
            try:
                self.state = State(**json.loads(raw))
            except (TypeError, ValueError):
                log.error("ignoring an unreadable anti-entropy state: %r", raw[:200])
        if not self.state.next_pass_at:
            # Not at start-up: the first full pass comes one interval after the first run.
            self.state.next_pass_at = time.time() + self.interval
        self.loaded = True

    def save(self) -> None:
        self.node.blocking.set_meta(STATE_KEY, json.dumps(asdict(self.state)))

    def snapshot(self) -> dict:
        s = self.state
        return {
            "interval_seconds": self.interval,
            "passes": s.passes,
            "next_pass_at": s.next_pass_at if self.loaded else None,
            "pending": list(s.pending),
            "running": list(self.running),
            "ranges_compared": s.ranges_compared,
            "blobs_resynced": s.blobs_queued,
            "bytes_resynced": s.bytes_queued,
            "drives": dict(s.last),
            "errors": self.errors,
            "last_error": self.last_error,
        }

    # -- one comparison (blocking) ---------------------------------------------------------------

    def compare(self, store_ids: list[str]) -> list[DriveResult]:
        """Compare the given drives with the index (one walk of the index for all of them)
        and queue a repair for every blob one of them lacks. A drive that cannot be asked
        is left out (it is compared again once it is back)."""
        started = time.monotonic()
        resolve = self.node.stores.resolve
        stores = {sid: self.node.all_stores[sid] for sid in store_ids if self.eligible(sid)}
        held_hours: dict[str, dict[str, str]] = {}
        for sid, store in stores.items():
            try:
                held_hours[sid] = store.tree_digests()
            except Exception as e:  # a peer down, or one too old to know the "digests" op
                log.warning("anti-entropy: cannot list drive %s: %s", sid, e)
        if not held_hours:
            return []
        trees = {sid: Tree() for sid in held_hours}
        for seg, _ref in index_segments(self.node):
            for sid in seg.stores:
                tree = trees.get(resolve(sid))
                if tree is not None:
                    tree.add(seg.blob_id, seg.size)
        results = []
        differing: dict[str, set[tuple[str, str]]] = {}
        for sid, tree in trees.items():
            store = stores[sid]
            d = descend(tree, lambda sid=sid: held_hours[sid], store.tree_digests)
            r = DriveResult(sid, ranges_compared=d.ranges_compared)
            r.expected_blobs = sum(c for hour in tree.leaves.values() for c, _ in hour.values())
            r.leaves_differing = len(d.leaves_differing)
            count("ANTI_ENTROPY_RANGES", d.ranges_compared)
            if d.leaves_differing:
                differing[sid] = set(d.leaves_differing)
            results.append(r)
        if differing:
            self._repair_leaves(stores, differing, {r.store_id: r for r in results})
        for r in results:
            r.finished = time.time()
            r.seconds = round(time.monotonic() - started, 3)
            log.info("anti-entropy %s: %s", r.store_id, asdict(r))
        return results

    def _repair_leaves(
        self,
        stores: dict,
        differing: dict[str, set[tuple[str, str]]],
        results: dict[str, DriveResult],
    ) -> None:
        """Second walk of the index, keeping only the differing leaves' items; then each
        such leaf is listed on its drive and compared item by item."""
        resolve = self.node.stores.resolve
        expected: dict[str, dict[tuple[str, str], dict[str, tuple[Segment, str]]]] = {
            sid: {leaf: {} for leaf in leaves} for sid, leaves in differing.items()
        }
        for seg, ref in index_segments(self.node):
            where = (hour_of(seg.blob_id), leaf_of(seg.blob_id))
            for sid in seg.stores:
                leaf = expected.get(resolve(sid), {}).get(where)
                if leaf is not None:
                    leaf[seg.blob_id] = (seg, ref)
        for sid, leaves in expected.items():
            r = results[sid]
            tasks: list[RepairTask] = []
            for (hour, leaf), items in sorted(leaves.items()):
                try:
                    held = stores[sid].leaf_blobs(hour, leaf)
                except Exception as e:
                    log.warning("anti-entropy: cannot list %s %s/%s: %s", sid, hour, leaf, e)
                    continue
                diff = diff_leaf({b: seg.size for b, (seg, _) in items.items()}, held)
                r.missing += len(diff.missing)
                r.wrong_size += len(diff.wrong_size)
                r.extra += len(diff.extra)
                for blob_id in diff.missing + diff.wrong_size:
                    seg, ref = items[blob_id]
                    reason = "anti-entropy" if blob_id in diff.missing else "anti-entropy-size"
                    tasks.append(RepairTask(blob_id, sid, "copy", reason, segment=seg, ref=ref))
            if tasks:
                self.node.blocking.queue_repairs(tasks)
                r.blobs_queued = len(tasks)
                r.bytes_queued = sum(t.size for t in tasks)
                count("ANTI_ENTROPY_BLOBS", r.blobs_queued)
                count("ANTI_ENTROPY_BYTES", r.bytes_queued)

    # -- the loop --------------------------------------------------------------------------------

    def _record(self, results: list[DriveResult]) -> None:
        s = self.state
        for r in results:
            s.last[r.store_id] = asdict(r)
            s.ranges_compared += r.ranges_compared
            s.blobs_queued += r.blobs_queued
            s.bytes_queued += r.bytes_queued
        done = {r.store_id for r in results}
        s.pending = [sid for sid in s.pending if sid not in done and self.eligible(sid)]

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self.load)
        while True:
            try:
                self._watch()
                now = time.time()
                if self.interval > 0 and now >= self.state.next_pass_at:
                    self.state.passes += 1
                    self.state.next_pass_at = now + self.interval
                    self.state.pending = sorted(
                        set(self.state.pending) | {s for s in self.node.all_stores}
                    )
                gap = min(MIN_GAP_SECONDS, self.interval) if self.interval > 0 else MIN_GAP_SECONDS
                todo = [
                    sid
                    for sid in self.state.pending
                    if self.eligible(sid)
                    and now - (self.state.last.get(sid) or {}).get("finished", 0.0) >= gap
                ]
                if todo and time.monotonic() >= self._retry_at:
                    self.running = todo
                    results = await loop.run_in_executor(self._pool, self.compare, todo)
                    self._record(results)
                    if {r.store_id for r in results} != set(todo):
                        # A drive that could not be asked: again later, not in a loop.
                        self._retry_at = time.monotonic() + self._backoff.next_delay()
                    else:
                        self._backoff.reset()
                    if any(r.blobs_queued for r in results):
                        self.on_queued()
                    await loop.run_in_executor(self._pool, self.save)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.errors += 1
                self.last_error = str(e)
                delay = self._backoff.next_delay()
                self._retry_at = time.monotonic() + delay
                log.exception("anti-entropy failed; retrying in %.1fs", delay)
            finally:
                self.running = []
            await asyncio.sleep(WATCH_SECONDS)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
