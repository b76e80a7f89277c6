"""``holdfast fsck``: check the index against the blobs, and the index itself.

It runs the scrubber's verification (:class:`~holdfast.workers.scrub.Checker`) over every
object and upload part in one pass, plus what only a full pass can see: SQLite's own
integrity check, blobs referenced but not marked live (the orphan sweeper would delete
them), live marks nothing refers to, orphan and stale temporary files on every drive, and
quarantined copies. Reading is paced by ``--rate`` and yields to requests (the same
foreground gate as repair), so it can run on a live node.

``--repair`` fixes what it can, with the repair worker's own code: rebuilds bad or missing
copies (block by block from whatever copies are good), marks and unmarks damaged objects,
repairs the live marks and removes orphans older than ``--orphan-age``. What it cannot fix
now (a drive that is down, no room) is left in the durable repair queue for the server.

Exit status: 0 when nothing is wrong (or everything found was fixed), 1 when problems
remain, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from holdfast.config import Config
from holdfast.index.records import RepairTask, Segment
from holdfast.service.node import Node
from holdfast.sizes import format_size, parse_size
from holdfast.stores.health import DriveState
from holdfast.stores.registry import WrongNode
from holdfast.workers.gc import TMP_MAX_AGE
from holdfast.workers.limits import Pacer
from holdfast.workers.repair import Repairer, RepairFailed
from holdfast.workers.verify import (
    Checker,
    Fault,
    remove_orphans,
    segments_by_blob,
    stored_bytes,
)


def add_fsck_parser(sub: argparse._SubParsersAction, add_data: Callable) -> None:
    p = sub.add_parser(
        "fsck",
        help="check (and with --repair, fix) the index against the blobs on every drive",
        description="Verifies every copy of every object and upload part block by block, "
        "SQLite's integrity, the live marks, orphans and quarantined copies; paced by --rate "
        "and yielding to requests, so it can run on a live node. Exit status 0: clean (or "
        "all fixed); 1: problems remain.",
    )
    add_data(p)
    p.add_argument("--repair", action="store_true", help="fix what can be fixed")
    p.add_argument(
        "--rate", type=parse_size, default=parse_size("64MiB"), help="bytes read per second"
    )
    p.add_argument(
        "--orphan-age",
        dest="fsck_orphan_age",
        type=float,
        default=None,
        metavar="SECONDS",
        help="unreferenced blobs older than this are orphans (default: the server's, 7200)",
    )
    p.add_argument("--quick", action="store_true", help="SQLite quick_check, not integrity_check")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None)
    bar.add_argument("--no-progress", dest="progress", action="store_false")


class ProgressBar:
    """One line on stderr, redrawn at most five times a second."""

    def __init__(self, total_bytes: int, total_items: int, enabled: bool) -> None:
        self.total_bytes = max(total_bytes, 1)
        self.total_items = total_items
        self.enabled = enabled
        self.started = time.monotonic()
        self._drawn = 0.0

    def update(self, done_bytes: int, done_items: int, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._drawn < 0.2):
            return
        self._drawn = now
        share = min(done_bytes / self.total_bytes, 1.0)
        filled = int(share * 30)
        rate = done_bytes / max(now - self.started, 1e-6)
        sys.stderr.write(
            f"\rfsck [{'#' * filled}{'.' * (30 - filled)}] {share * 100:5.1f}%  "
            f"{format_size(done_bytes)} / {format_size(self.total_bytes)}  {format_size(rate)}/s  "
            f"{done_items}/{self.total_items} objects and parts "
        )
        sys.stderr.flush()

    def close(self, done_bytes: int, done_items: int) -> None:
        if self.enabled:
            self.update(done_bytes, done_items, force=True)
            sys.stderr.write("\n")


@dataclass
class Report:
    index: list[str] = field(default_factory=list)
    drives: dict[str, str] = field(default_factory=dict)
    objects: int = 0
    parts: int = 0
    bytes: int = 0
    faults: Counter = field(default_factory=Counter)
    fault_examples: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    unmarked: int = 0
    unreferenced: int = 0
    orphans: int = 0
    stale_tmp: int = 0
    quarantined: int = 0
    repair_queue: int = 0
    repaired: int = 0
    repaired_bytes: int = 0
    unrepaired: int = 0
    orphans_removed: int = 0
    references_fixed: int = 0
    seconds: float = 0.0

    def problems(self, repaired: bool) -> int:
        remaining_faults = self.unrepaired if repaired else sum(self.faults.values())
        refs = 0 if repaired else self.unmarked + self.unreferenced
        orphans = self.orphans - self.orphans_removed
        index_bad = 0 if self.index == ["ok"] else 1
        down = sum(1 for s in self.drives.values() if s != "up")
        return remaining_faults + refs + orphans + index_bad + len(self.damaged) + down


class Fsck:
    def __init__(self, node: Node, rate: int, repair: bool, progress: bool) -> None:
        self.node = node
        self.repair = repair
        pace = Pacer(node, rate)
        self.checker = Checker(node, pace)
        self.repairer = Repairer(node, pace)
        self.report = Report()
        self.progress_enabled = progress
        self._done = 0  # bytes of the copies looked at so far (progress)

    def run(self, quick: bool) -> Report:
        started = time.monotonic()
        r = self.report
        index = self.node.blocking
        r.index = index.integrity_check(quick)
        r.drives = {sid: h.state.value for sid, h in self.node.drives.health.items()}
        self._references()
        objects, total_bytes = index.totals()
        bar = ProgressBar(total_bytes, objects, self.progress_enabled)
        self._objects(bar)
        self._versions(bar)
        self._parts(bar)
        bar.close(self._done, r.objects + r.parts)
        self._drives()
        queue = index.repair_summary()
        r.repair_queue = int(sum(v["rows"] for ops in queue.values() for v in ops.values()))
        r.seconds = round(time.monotonic() - started, 3)
        return r

    def _references(self) -> None:
        problems = self.node.blocking.reference_problems()
        self.report.unmarked = len(problems["unmarked"])
        self.report.unreferenced = len(problems["unreferenced"])
        if self.repair and (problems["unmarked"] or problems["unreferenced"]):
            self.node.blocking.fix_references(problems["unmarked"], problems["unreferenced"])
            self.report.references_fixed = self.report.unmarked + self.report.unreferenced

    def _objects(self, bar: ProgressBar) -> None:
        after = None
        while True:
            batch = self.node.blocking.scan_objects(after, 100)
            for obj in batch:
                check = self.checker.check_object(obj)
                self._faults(check.faults, segments_by_blob(obj.segments))
                if self.repair:
                    if check.faults and obj.inline is None:
                        check = self.checker.check_object(obj)  # after the repairs
                    self.checker.settle_damage(obj, check)
                if check.damaged:
                    self.report.damaged.append(f"{obj.bucket}/{obj.key}")
                self.report.objects += 1
                self.report.bytes += check.bytes
                self._done += stored_bytes(obj.segments)
                bar.update(self._done, self.report.objects)
                after = (obj.bucket, obj.key)
            if len(batch) < 100:
                return

    def _versions(self, bar: ProgressBar) -> None:
        """Noncurrent versions: their copies checked and (with --repair) repaired too."""
        after = None
        while True:
            batch = self.node.blocking.scan_versions(after, 100)
            for obj in batch:
                check = self.checker.check_object(obj)
                self._faults(check.faults, segments_by_blob(obj.segments))
                if check.damaged:
                    self.report.damaged.append(f"{obj.bucket}/{obj.key} (a noncurrent version)")
                self.report.objects += 1
                self.report.bytes += check.bytes
                self._done += stored_bytes(obj.segments)
                bar.update(self._done, self.report.objects)
                after = (obj.bucket, obj.key, obj.vseq)
            if len(batch) < 100:
                return

    def _parts(self, bar: ProgressBar) -> None:
        after = None
        while True:
            batch = self.node.blocking.scan_parts(after, 100)
            for part in batch:
                ref = f"upload {part.upload_id} part {part.part_number}"
                check = self.checker.check_segment(part.segment, ref)
                self._faults(check.faults, segments_by_blob([part.segment]))
                self.report.parts += 1
                self.report.bytes += check.bytes
                self._done += stored_bytes([part.segment])
                bar.update(self._done, self.report.objects + self.report.parts)
                after = (part.upload_id, part.part_number)
            if len(batch) < 100:
                return

    def _faults(self, faults: list[Fault], seg_of: dict[str, Segment]) -> None:
        for f in faults:
            self.report.faults[f.kind] += 1
            if len(self.report.fault_examples) < 20:
                self.report.fault_examples.append(
                    f"{f.kind}: blob {f.blob_id} on {f.store_id} ({f.ref}) {f.detail}".strip()
                )
            if self.repair and f.store_id is not None and f.kind != "unknown-drive":
                self._repair(
                    RepairTask(f.blob_id, f.store_id, "copy", f.kind, seg_of[f.blob_id], f.ref)
                )
            elif f.kind in ("inline-corrupt", "unknown-drive"):
                self.report.unrepaired += 1

    def _repair(self, task: RepairTask) -> None:
        """Fix one copy now; if it cannot be fixed now, leave it queued for the server."""
        self.node.blocking.queue_repairs([task])
        try:
            self.report.repaired_bytes += self.repairer.execute(task)
            self.report.repaired += 1
        except RepairFailed as e:
            self.report.unrepaired += 1
            self.report.fault_examples.append(
                f"not repaired: blob {task.blob_id} on {task.store_id}: {e}"
            )

    def _drives(self) -> None:
        r = self.report
        for sid, store in self.node.stores.items():
            if self.node.drives.state(sid) is DriveState.DOWN:
                continue
            r.quarantined += len(store.quarantined())
            r.stale_tmp += store.stale_temporary(TMP_MAX_AGE)
            for hour in store.hours():
                orphans, _files = remove_orphans(self.node, store, hour, dry_run=not self.repair)
                r.orphans += orphans
                if self.repair:
                    r.orphans_removed += orphans


def render(report: Report, repaired: bool) -> str:
    r = report
    faults = ", ".join(f"{n} {k}" for k, n in sorted(r.faults.items())) or "none"
    lines = [
        f"holdfast fsck: {r.objects} objects and {r.parts} upload parts, "
        f"{format_size(r.bytes)} verified on {len(r.drives)} drive(s) in {r.seconds:.1f} s",
        f"  index: {'; '.join(r.index[:5])}",
        "  drives: " + ", ".join(f"{sid} {state}" for sid, state in r.drives.items()),
        f"  bad copies: {faults}",
        f"  damaged objects (no good copy): {len(r.damaged)}"
        + (f" e.g. {', '.join(r.damaged[:5])}" if r.damaged else ""),
        f"  live marks: {r.unmarked} missing, {r.unreferenced} unreferenced",
        f"  orphan blobs: {r.orphans}; stale temporary files: {r.stale_tmp}; "
        f"quarantined copies: {r.quarantined}",
        f"  repair queue: {r.repair_queue} row(s) pending",
    ]
    if repaired:
        lines.append(
            f"  fixed: {r.repaired} copies ({format_size(r.repaired_bytes)}), {r.orphans_removed} "
            f"orphans removed, {r.references_fixed} live marks; not fixed: {r.unrepaired}"
        )
    lines += [f"    {e}" for e in r.fault_examples[:10]]
    problems = r.problems(repaired)
    lines.append("result: clean" if problems == 0 else f"result: {problems} problem(s) remain")
    return "\n".join(lines)


def run_fsck(args: argparse.Namespace, config: Config) -> int:
    if args.fsck_orphan_age is not None:
        config.orphan_age_seconds = args.fsck_orphan_age
    node = Node(config)
    absent = node.index.absent()
    if absent is not None:
        print(f"holdfast: {absent}; pass the server's --data", file=sys.stderr)
        return 2
    try:
        node.start_blocking()
    except WrongNode as e:
        node.close()
        print(f"holdfast: {e}", file=sys.stderr)
        return 2
    try:
        progress = sys.stderr.isatty() if args.progress is None else args.progress
        fsck = Fsck(node, args.rate, args.repair, progress)
        report = fsck.run(args.quick)
    finally:
        node.close()
    if args.json:
        out = {k: v for k, v in report.__dict__.items()}
        out["faults"] = dict(report.faults)
        out["problems"] = report.problems(args.repair)
        print(json.dumps(out, indent=2))
    else:
        print(render(report, args.repair))
    return 0 if report.problems(args.repair) == 0 else 1
