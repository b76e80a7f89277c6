"""The scrubber: always on, it walks every blob at a bounded rate and verifies every block.

A pass walks the objects in key order, then the parts of unfinished uploads, then the files
on each drive. Every copy of every segment is read whole and checked block by block; a
missing, corrupt or unreadable copy gets a repair queued (the repair worker quarantines and
replaces it), an object left with no good copy is marked damaged, and a damaged object found
whole again is unmarked. On the drives it finds orphans (files the index does not know, old
enough not to be an upload in progress), including in hours the sweeper has already passed,
such as those a returning drive brings back.

The walk's position and the pass's counters are saved in the index every few seconds, so a
restart resumes where it stopped instead of starting over. Nothing is scanned at start-up.
The verification itself (holdfast/workers/verify.py) is shared with repair and fsck.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from holdfast.service.node import Node
from holdfast.workers.counters import count
from holdfast.workers.limits import Backoff, Pacer
from holdfast.workers.verify import (
    Checker,
    Fault,
    remove_orphans,
    segments_by_blob,
    stored_bytes,
)

log = logging.getLogger("holdfast.scrub")

STATE_KEY = "scrub_state"
BATCH = 50
SAVE_EVERY_SECONDS = 2.0


@dataclass
class PassState:
    """Where the walk is, and what this pass has found so far (saved in the index)."""

    number: int = 1
    phase: str = "objects"  # objects | versions | parts | drives | done
    cursor: list | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    total_bytes: int = 0
    total_objects: int = 0
    bytes: int = 0  # read and verified
    done_bytes: int = 0  # of the copies looked at (progress; a bad copy is not read whole)
    objects: int = 0
    parts: int = 0
    files: int = 0
    faults: int = 0
    repairs_queued: int = 0
    damaged: int = 0
    orphans: int = 0
    last_pass: dict | None = None


def own_drives_job(node: Node) -> str | None:
    """On a cluster node, the name of the lease under which one process of this node
    scrubs this node's drives (each node its own, in parallel, reading locally); None on a
    single node, whose scrubber runs with the other background work."""
    cluster = getattr(node, "cluster", None)
    return f"scrub/{cluster.node}" if cluster is not None else None


class Scrubber:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.rate = node.config.scrub_bytes_per_second
        self.interval = node.config.scrub_interval_seconds
        self.job = own_drives_job(node)
        # A cluster node's pass covers the copies on its own drives, and keeps its own place.
        self.state_key = STATE_KEY if self.job is None else f"{STATE_KEY}/{node.cluster.node}"
        self.checker = Checker(node, Pacer(node, max(self.rate, 1)), local_only=bool(self.job))
        self.state = PassState()
        self.loaded = False
        self.faults_total = 0
        self.errors = 0
        self._saved = 0.0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scrub")
        self._backoff = Backoff(base=1.0, cap=300.0)

    # -- state ---------------------------------------------------------------------------------

    def load(self) -> None:
        """Resume the pass the last run saved (before that, status says "starting")."""
        raw = self.node.blocking.get_meta(self.state_key)
        if raw:
            try:
                self.state = PassState(**json.loads(raw))
            except (TypeError, ValueError):
                log.error("ignoring an unreadable scrub state: %r", raw[:200])
        last = self.state.last_pass
        if self.state.phase == "done" and last:
            # The pause is today's --scrub-interval, not the one of the run that saved it.
            ended = last["started"] + last["seconds"]
            self.state.started = min(self.state.started, ended + self.interval)
        self.loaded = True

    def save(self, force: bool = False) -> None:
        if force or time.monotonic() - self._saved >= SAVE_EVERY_SECONDS:
            self.node.blocking.set_meta(self.state_key, json.dumps(asdict(self.state)))
            self._saved = time.monotonic()

    def snapshot(self) -> dict:
        s = self.state
        if s.phase == "done" or not s.total_bytes:
            done = 1.0 if s.phase == "done" else 0.0
        else:
            done = s.done_bytes / s.total_bytes
        return {
            "enabled": self.rate > 0,
            "bytes_per_second": self.rate,
            "interval_seconds": self.interval,
            "pass": s.number if self.loaded else None,
            "phase": s.phase if self.loaded else "starting",
            "progress": round(min(done, 1.0), 4),
            "bytes_verified": s.bytes,
            "objects_verified": s.objects,
            "parts_verified": s.parts,
            "files_walked": s.files,
            "faults_this_pass": s.faults,
            "faults_total": self.faults_total,
            "damaged_this_pass": s.damaged,
            "orphans_removed_this_pass": s.orphans,
            "pass_started": None if s.phase == "done" else s.started,
            "next_pass_at": s.started if s.phase == "done" else None,
            "last_pass": s.last_pass,
            "errors": self.errors,
        }

    # -- one step of the walk (blocking) --------------------------------------------------------

    def step(self) -> bool:
        """Verify one batch; returns False once the pass is complete."""
        s = self.state
        if s.phase == "objects":
            if s.cursor is None and s.objects == 0:
                s.total_objects, s.total_bytes = self.node.blocking.totals()
            self._objects()
        elif s.phase == "versions":
            self._versions()
        elif s.phase == "parts":
            self._parts()
        elif s.phase == "drives":
            self._drives()
        else:
            return False
        self.save()
        return True

    def _objects(self) -> None:
        s = self.state
        after = tuple(s.cursor) if s.cursor else None
        batch = self.node.blocking.scan_objects(after, BATCH)  # type: ignore[arg-type]
        for obj in batch:
            check = self.checker.check_object(obj)
            self._record(check.faults, check.bytes)
            s.repairs_queued += self.checker.act(segments_by_blob(obj.segments), check.faults)
            self.checker.settle_damage(obj, check)
            s.damaged += check.damaged
            s.done_bytes += stored_bytes(obj.segments)
            s.objects += 1
            s.cursor = [obj.bucket, obj.key]
            self.save()  # every few seconds: a restart loses at most that much work
        if len(batch) < BATCH:
            s.phase, s.cursor = "versions", None

    def _versions(self) -> None:
        """Noncurrent versions keep their blobs until they are deleted: verified and
        repaired like current ones (damage is recorded on current versions only)."""
        s = self.state
        after = tuple(s.cursor) if s.cursor else None
        batch = self.node.blocking.scan_versions(after, BATCH)  # type: ignore[arg-type]
        for obj in batch:
            check = self.checker.check_object(obj)
            self._record(check.faults, check.bytes)
            s.repairs_queued += self.checker.act(segments_by_blob(obj.segments), check.faults)
            s.done_bytes += stored_bytes(obj.segments)
            s.objects += 1
            s.cursor = [obj.bucket, obj.key, obj.vseq]
            self.save()
        if len(batch) < BATCH:
            s.phase, s.cursor = "parts", None

    def _parts(self) -> None:
        s = self.state
        after = tuple(s.cursor) if s.cursor else None
        batch = self.node.blocking.scan_parts(after, BATCH)  # type: ignore[arg-type]
        for part in batch:
            ref = f"upload {part.upload_id} part {part.part_number}"
            check = self.checker.check_segment(part.segment, ref)
            self._record(check.faults, check.bytes)
            s.repairs_queued += self.checker.act(segments_by_blob([part.segment]), check.faults)
            s.parts += 1
            s.done_bytes += stored_bytes([part.segment])
            s.cursor = [part.upload_id, part.part_number]
            self.save()
        if len(batch) < BATCH:
            s.phase, s.cursor = "drives", None

    def _drives(self) -> None:
        """One hour directory of one drive per step: find orphans the sweeper cannot."""
        s = self.state
        ids = list(self.node.stores)
        pos, after = (s.cursor or [0, ""])[0], (s.cursor or [0, ""])[1]
        while pos < len(ids):
            store = self.node.stores[ids[pos]]
            if self.node.drives.writable(store.store_id):
                hours = [h for h in store.hours() if h > after]
                if hours:
                    orphans, files = remove_orphans(self.node, store, hours[0])
                    s.orphans += orphans
                    s.files += files
                    s.cursor = [pos, hours[0]]
                    return
            pos, after = pos + 1, ""
        self._finish_pass()

    def _record(self, faults: list[Fault], nbytes: int) -> None:
        count("SCRUB_BYTES", nbytes)
        count("SCRUB_BLOBS")
        if faults:
            count("CORRUPTIONS_FOUND", len(faults), "scrub")
        self.state.bytes += nbytes
        self.state.faults += len(faults)
        self.faults_total += len(faults)
        for f in faults:
            log.error(
                "scrub: %s copy of blob %s on %s (%s) %s",
                f.kind,
                f.blob_id,
                f.store_id,
                f.ref,
                f.detail,
            )

    def _finish_pass(self) -> None:
        s = self.state
        s.finished = time.time()
        summary = {
            "number": s.number,
            "started": s.started,
            "seconds": round(s.finished - s.started, 3),
            "bytes": s.bytes,
            "objects": s.objects,
            "parts": s.parts,
            "files": s.files,
            "faults": s.faults,
            "repairs_queued": s.repairs_queued,
            "damaged": s.damaged,
            "orphans": s.orphans,
        }
        log.info("scrub pass %d done: %s", s.number, summary)
        self.state = PassState(number=s.number + 1, phase="done", last_pass=summary)
        self.state.started = s.finished + self.interval  # the next pass, not before
        self.save(force=True)

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        if self.rate <= 0:
            log.warning("the scrubber is off (--scrub-rate 0): silent corruption goes unseen")
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self.load)
        while True:
            try:
                if self.state.phase == "done":
                    await asyncio.sleep(max(0.0, self.state.started - time.time()))
                    self.state = PassState(number=self.state.number, last_pass=self.state.last_pass)
                while await loop.run_in_executor(self._pool, self.step):
                    self._backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.errors += 1
                count("RETRIES", 1, "scrub")
                delay = self._backoff.next_delay()
                log.exception("scrub step failed; retrying in %.1fs", delay)
                await asyncio.sleep(delay)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
