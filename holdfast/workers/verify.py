"""Verification of stored copies against the index, shared by the scrubber, the repair
worker and ``holdfast fsck``.

Every copy of a segment is read whole and checked block by block (at the caller's pace,
through holdfast/stores/verify.py, the one place copies are read and verified); a missing,
corrupt or unreadable copy is a :class:`Fault`. Copies on a drive that is down are skipped:
that drive's hinted-handoff log and its return are the repair worker's business. What is
decided here is what the index makes of the result: faults, repair rows, damage marks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from holdfast.index.records import ObjectRecord, RepairTask, Segment
from holdfast.service.integrity import failure_reason
from holdfast.service.node import Node
from holdfast.stores.base import Store
from holdfast.stores.blocks import CorruptBlock, verify_block
from holdfast.stores.health import DriveState
from holdfast.stores.verify import verify_copy

log = logging.getLogger("holdfast.verify")


@dataclass
class Fault:
    """One problem found: ``kind`` is missing | corrupt | io-error | unknown-drive |
    inline-corrupt | orphan."""

    kind: str
    blob_id: str
    store_id: str | None
    ref: str
    detail: str = ""


@dataclass
class ObjectCheck:
    faults: list[Fault] = field(default_factory=list)
    # Some segment has copies on readable drives and none verifies whole (the repair worker
    # may still salvage it block by block).
    damaged: bool = False
    whole: bool = True  # every copy of every segment verified
    bytes: int = 0
    # Some copies were not looked at: on other nodes, which their own scrubbers verify. A
    # partial check says nothing about the object's damage either way.
    partial: bool = False


@dataclass
class SegmentCheck:
    faults: list[Fault] = field(default_factory=list)
    good: int = 0  # copies that verified whole
    checked: int = 0  # copies on readable drives that were looked at
    bytes: int = 0
    elsewhere: int = 0  # copies on other nodes, left to them (a Checker with local_only)


class Checker:
    """Verifies objects and parts against their copies (blocking; paced by ``pace``)."""

    def __init__(self, node: Node, pace: Callable[[int], None], local_only: bool = False) -> None:
        self.node = node
        self.pace = pace
        # A cluster node's scrubber verifies the copies on its own drives only, reading
        # them locally; the other nodes' scrubbers verify theirs (docs/cluster.md).
        self.local_only = local_only

    def check_segment(self, seg: Segment, ref: str) -> SegmentCheck:
        result = SegmentCheck()
        for recorded in seg.stores:
            store_id = self.node.stores.resolve(recorded)
            # On a cluster node, copies on other nodes' drives are checked through them.
            if self.local_only and store_id not in self.node.stores:
                result.elsewhere += 1
                continue
            store = self.node.all_stores.get(store_id)
            if store is None:
                result.faults.append(Fault("unknown-drive", seg.blob_id, store_id, ref))
                continue
            local = store_id in self.node.stores
            if not (self.node.drives.readable(store_id) if local else self.node.writable(store_id)):
                continue  # its handoff log and its return are the repair worker's business
            result.checked += 1
            fault = self._check_copy(store, seg, ref, result)
            if fault is None:
                result.good += 1
            else:
                result.faults.append(fault)
        return result

    def _check_copy(
        self, store: Store, seg: Segment, ref: str, result: SegmentCheck
    ) -> Fault | None:
        def pace(nbytes: int) -> None:
            self.pace(nbytes)
            result.bytes += nbytes

        try:
            verify_copy(store, seg, pace)
            return None
        except (CorruptBlock, OSError) as e:
            verdict = self.node.drives.copy_failed(store.store_id, seg.blob_id, e)
            local = store.store_id in self.node.stores  # a remote copy missing is a fault
            if local and verdict is DriveState.DOWN and isinstance(e, FileNotFoundError):
                result.checked -= 1  # the drive went away, not the copy
                return None
            return Fault(failure_reason(e), seg.blob_id, store.store_id, ref, str(e))

    def check_inline(self, obj: ObjectRecord) -> list[Fault]:
        seg = obj.segments[0]
        data = obj.inline or b""
        try:
            for block in range(-(-seg.size // seg.block_size)):
                piece = data[block * seg.block_size : (block + 1) * seg.block_size]
                verify_block(piece, len(piece), seg.crcs, block, "inline")
        except CorruptBlock as e:
            return [Fault("inline-corrupt", "inline", None, f"{obj.bucket}/{obj.key}", str(e))]
        return []

    def check_object(self, obj: ObjectRecord) -> ObjectCheck:
        """Verify every copy of every segment of ``obj`` (its inline bytes, if inline)."""
        if obj.inline is not None:
            # Paced like a blob's blocks: a million small inline objects are still a
            # million checks, and they must wait for foreground requests just the same.
            self.pace(len(obj.inline))
            faults = self.check_inline(obj)
            return ObjectCheck(faults, bool(faults), not faults, len(obj.inline))
        result = ObjectCheck()
        ref = f"{obj.bucket}/{obj.key}"
        for seg in obj.segments:
            check = self.check_segment(seg, ref)
            result.faults += check.faults
            result.bytes += check.bytes
            result.damaged = result.damaged or (check.checked > 0 and check.good == 0)
            result.whole = result.whole and check.good > 0 and not check.faults
            result.partial = result.partial or check.elsewhere > 0
        return result

    def act(self, seg_of: dict[str, Segment], faults: list[Fault]) -> int:
        """Queue a repair for every fixable fault; returns how many were newly queued."""
        queued = 0
        for f in faults:
            if f.store_id is None or f.kind == "unknown-drive":
                continue
            task = RepairTask(f.blob_id, f.store_id, "copy", f.kind, seg_of[f.blob_id], f.ref)
            queued += self.node.integrity.queue(task)
        return queued

    def settle_damage(self, obj: ObjectRecord, check: ObjectCheck) -> None:
        """Mark an object found damaged; unmark one found whole again (every copy of every
        segment verified: copies on a drive that is down leave the mark alone). A partial
        check (copies left to other nodes) decides nothing: a bad copy here may have a good
        one elsewhere, which the repair worker finds when it replaces this one."""
        if check.partial:
            return
        if check.damaged and obj.state == "ok":
            self.node.integrity.object_damaged(obj, 0, ["found by a scrub or fsck"])
        elif (
            check.whole
            and obj.state != "ok"
            and self.node.blocking.set_state_if(obj.bucket, obj.key, obj.etag, obj.state, "ok")
        ):
            log.warning("%s/%s verified whole again: damage mark removed", obj.bucket, obj.key)


def stored_bytes(segments: list[Segment]) -> int:
    """Bytes of all the copies of these segments (an inline one counts once): what a full
    verification has to read, for progress."""
    return sum(s.size * max(1, len(s.stores)) for s in segments)


def segments_by_blob(segments: list[Segment]) -> dict[str, Segment]:
    return {s.blob_id: s for s in segments}


def remove_orphans(
    node: Node, store: Store, hour: str, dry_run: bool = False, cutoff: float | None = None
) -> tuple[int, int]:
    """Delete the blobs of one finishing hour on ``store`` that the index does not know
    (neither live nor queued for deletion) and that were finished before ``cutoff``
    (default: the orphan age ago, so an upload between rename and commit is never hit).
    Returns (orphans, blobs looked at). Shared by the scrubber, fsck and the GC's sweeper;
    reads the store's listing a page at a time."""
    if cutoff is None:
        cutoff = time.time() - node.config.orphan_age_seconds
    orphans = seen = 0
    cursor: str | None = None
    while True:
        page = store.list_blobs(hour, cursor)
        seen += len(page.blobs)
        aged = [b.blob_id for b in page.blobs if b.mtime <= cutoff]
        known = node.blocking.known_blobs(aged) if aged else set()
        for blob_id in aged:
            if blob_id in known:
                continue
            orphans += 1
            log.warning(
                "orphan blob %s on %s%s", blob_id, store.store_id, "" if dry_run else ": removed"
            )
            if not dry_run:
                store.delete(blob_id)
        cursor = page.cursor
        if cursor is None:
            return orphans, seen
