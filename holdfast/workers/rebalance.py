"""Rebalancing: after a node is added or a capacity changed, move copies so that each node
holds its share of the bytes, moving no more than the new layout requires.

``holdfast cluster layout apply`` of such a change (or ``holdfast cluster rebalance
start``) writes a request into the index (holdfast/cluster/rebalance_state.py). The node
leading the background work takes it up:

1. **waiting** until no node is draining (a drain moves copies first; the rebalance follows
   once the drained node is removed) and every active node's drives are writable;
2. **counting** the bytes each active node holds (objects and noncurrent versions);
3. planning (holdfast/placement/balance.py): each node's target is its share by capacity;
   nodes above it by more than the tolerance give their excess, nodes below take theirs;
4. **objects**, then **versions**: walking the index again, each copy a source may give and
   a receiver may take within the object's policy (distinct nodes, distinct zones where the
   copies spread over zones) moves through :class:`holdfast.workers.move.CopyMover`
   (copy, verify, record with ``Index.move_copy``, then delete the old copy), through the
   leading process's one transfer queue (holdfast/workers/transfers.py): at most the
   cluster's rebalance rate, and with repair and drain together at most the node's
   ``--repair-rate``, one of the cluster's transfer slots per copy, foreground first.

The pass's position, its budget and counters are saved in the index every batch (meta
``rebalance_state``), so a restart, or another node taking the lead, resumes where it was.
A pass that could not move everything (a node down, no room) is followed by a new one,
counted afresh, after a backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

from holdfast.cluster import rebalance_state as rbs
from holdfast.cluster.layout import Layout
from holdfast.index.records import Segment
from holdfast.placement.balance import Balance, used_bytes, weights
from holdfast.placement.policy import default_domain, node_of
from holdfast.service.node import Node
from holdfast.workers.counters import count
from holdfast.workers.move import MoveFailed, MoverJob
from holdfast.workers.transfers import TransferQueue

log = logging.getLogger("holdfast.rebalance")

BATCH = 50
IDLE_SECONDS = 2.0
MOVING = ("objects", "versions")
ACTIVE = ("waiting", "counting", *MOVING, "retrying")


class Rebalancer(MoverJob):
    name = "rebalance"
    reason = "rebalanced"
    log = log

    def __init__(self, node: Node, transfers: TransferQueue | None = None) -> None:
        super().__init__(node, transfers)
        self.state = rbs.RebalanceState()
        self._balance: Balance | None = None
        self._failed_before = 0  # the counters when the pass began (they add up over passes)
        self._changed_before = 0

    # -- state ------------------------------------------------------------------------------

    def load(self) -> None:
        raw = self.node.blocking.get_meta(rbs.STATE_KEY)
        try:
            self.state = rbs.RebalanceState.from_text(raw)
        except (TypeError, ValueError):
            log.error("ignoring an unreadable rebalance state: %r", (raw or "")[:200])
        self._balance = Balance.from_json(self.state.balance)

    def save(self) -> None:
        if self._balance is not None:
            self.state.balance = self._balance.to_json()
        self.node.blocking.set_meta(rbs.STATE_KEY, self.state.to_text())
        self._saved = time.monotonic()

    def snapshot(self) -> dict:
        return rbs.progress(self.state)

    def _settings(self):  # type: ignore[no-untyped-def]
        from holdfast.cluster.rails import SETTINGS_META, Settings

        return Settings.from_text(self.node.blocking.get_meta(SETTINGS_META))

    def _layout(self) -> Layout:
        cluster = getattr(self.node, "cluster", None)
        if cluster is None:
            return Layout.empty()
        cluster.sync()
        return cluster.layout_view.layout

    # -- requests (blocking) ----------------------------------------------------------------

    def take_request(self) -> None:
        """Start or stop a pass if a newer request is in the index."""
        req = rbs.read_request(self.node.blocking.get_meta(rbs.REQUEST_KEY))
        seq = int(req.get("seq") or 0)
        if seq <= self.state.request:
            return
        s = self.state
        if req.get("action") == "stop":
            s.request = seq
            if s.phase in ACTIVE:
                s.phase, s.finished = "stopped", time.time()
                log.info("rebalance stopped (request %d)", seq)
        else:
            self._begin(seq, str(req.get("reason") or ""))
            self.state.layout_version = int(req.get("layout_version") or 0)
        self.save()

    def _begin(self, seq: int, reason: str) -> None:
        self.state = rbs.RebalanceState(
            request=seq, phase="waiting", reason=reason, passes=self.state.passes + 1
        )
        self.state.started = time.time()
        self._balance = None
        log.info("rebalance requested (%s)", reason)

    def not_ready(self) -> str:
        """Why a pass cannot begin now ("" when it can)."""
        layout = self._layout()
        if layout.version < self.state.layout_version:
            return f"this node follows layout version {layout.version}, not yet {self.state.layout_version}"
        draining = [n.name for n in layout.members if n.state == "draining"]
        if draining:
            return (
                f"{', '.join(draining)} draining: the rebalance begins once the drain is done "
                "and the node removed"
            )
        active = [n.name for n in layout.active]
        if len(active) < 2:
            return "fewer than two active nodes"
        have: set[str] = set()
        for sid in list(self.node.all_stores):
            name = node_of(sid)
            if name in have or name not in active or not self.node.writable(sid):
                continue
            try:
                self.node.all_stores[sid].repair_room()  # answers (a node just started may not)
            except (OSError, KeyError):
                continue
            have.add(name)
        missing = [n for n in active if n not in have]
        if missing:
            return f"no writable drive of {', '.join(missing)} yet (down, or not heard from)"
        return ""

    # -- the walk (blocking) ----------------------------------------------------------------

    def _start_counting(self) -> None:
        s = self.state
        settings = self._settings()
        self.transfers.refresh()  # the queue paces at this rate, not at one read before
        layout = self._layout()
        s.phase, s.cursor, s.walk, s.waiting_for = "counting", None, "objects", ""
        self._failed_before, self._changed_before = s.failed, s.changed_meanwhile
        s.rate = settings.rebalance_bytes_per_second
        s.weights = weights((n.name, n.capacity) for n in layout.active)
        s.used = {n: 0 for n in s.weights}

    def _rows(self, walk: str, after):  # type: ignore[no-untyped-def]
        if walk == "versions":
            rows = self.node.blocking.scan_versions(after, BATCH)
            return rows, [(r.bucket, r.key, r.vseq) for r in rows]
        rows = self.node.blocking.scan_objects(after, BATCH)
        return rows, [(r.bucket, r.key) for r in rows]

    def step(self) -> bool:
        """One batch; False when there is nothing (more) to do in this pass."""
        s = self.state
        if s.phase == "waiting":
            why = self.not_ready()
            if why:
                if why != s.waiting_for:
                    s.waiting_for = why
                    self.save()
                return False
            self._start_counting()
        if s.phase not in ("counting", *MOVING):
            return False
        if s.phase == "counting":
            self._count()
        else:
            self._walk()
        self.save()
        return s.phase not in ("done", "stopped")

    def _count(self) -> None:
        s = self.state
        rows, keys = self._rows(s.walk, tuple(s.cursor) if s.cursor else None)
        used_bytes(rows, s.weights, s.used)
        s.cursor = list(keys[-1]) if keys else s.cursor
        if len(rows) < BATCH:
            s.cursor = None
            if s.walk == "objects":
                s.walk = "versions"
                return
            tolerance = self._settings().rebalance_tolerance_percent
            self._balance = Balance.plan(s.used, s.weights, tolerance)
            # A later pass of the same request (after failures) adds what is still owed.
            s.bytes_planned = s.bytes_moved + self._balance.planned
            s.cursor = None
            s.moving_since = time.time()
            log.info(
                "rebalance: %d bytes to move (held: %s; targets: %s)",
                s.bytes_planned,
                s.used,
                self._balance.target,
            )
            if self._balance.planned <= 0:
                s.phase, s.finished = "done", time.time()
            else:
                s.phase = "objects"

    def _walk(self) -> None:
        s = self.state
        if self._balance is None:
            self._balance = Balance.from_json(s.balance)
        bal = self._balance
        walk = s.phase
        rows, keys = self._rows(walk, tuple(s.cursor) if s.cursor else None)
        layout = self._layout()
        zone_of = None
        if default_domain(len(layout.zones)) == "zone":
            zones = {n.name: n.zone for n in layout.members}

            def zone_of(name: str) -> str:
                return zones.get(name, "")

        for row, key in zip(rows, keys, strict=True):
            s.objects_seen += 1
            moved_any = False
            vseq = key[2] if walk == "versions" else None
            for seg in row.segments:
                if bal.settled:
                    break
                moved_any |= self._move_segment(row.bucket, row.key, vseq, seg, bal, zone_of)
            s.objects_moved += moved_any
            s.cursor = list(key)
            if bal.settled:
                break
        if len(rows) < BATCH or bal.settled:
            s.cursor = None
            if walk == "objects" and not bal.settled:
                s.phase = "versions"
            else:
                self._end_pass()

    def _end_pass(self) -> None:
        s = self.state
        log.info(
            "rebalance pass %d: %d of %d bytes moved, %d failed, %d changed meanwhile",
            s.passes,
            s.bytes_moved,
            s.bytes_planned,
            s.failed,
            s.changed_meanwhile,
        )
        if s.failed > self._failed_before or s.changed_meanwhile > self._changed_before:
            # Not all moved (a node down, no room, objects changed): a new pass, counted
            # afresh, after a backoff; the counters go on adding up.
            s.phase = "retrying"
            s.waiting_for = f"a new pass after a backoff; last error: {s.last_error}"
        else:
            s.phase, s.finished = "done", time.time()

    def _move_segment(self, bucket, key, vseq, seg: Segment, bal: Balance, zone_of) -> bool:  # type: ignore[no-untyped-def]
        s = self.state
        assert self._mover is not None
        moves = bal.moves(seg.stores, seg.size, zone_of)
        moved = False
        failed = s.failed
        for i, (old, dest) in enumerate(moves):
            try:
                new = self._mover.move(bucket, key, vseq, seg, old, {dest})
            except MoveFailed as e:
                s.failed += 1
                s.last_error = str(e)
                new = None
            else:
                if new is None:
                    s.changed_meanwhile += 1
            if new is None:
                # Give the budget of this move and the ones after it back: later copies
                # may use it (the ones after it were planned as if this one had moved).
                for old_, dest_ in moves[i:]:
                    bal.give[node_of(old_)] += seg.size
                    bal.take[dest_] += seg.size
                if s.failed > failed:
                    # A receiver that fails takes nothing more this pass: one failed attempt
                    # per receiver and pass, not one per copy (the next pass tries again).
                    bal.take[dest] = 0
                break
            seg = replace(seg, stores=tuple(new if sid == old else sid for sid in seg.stores))
            moved = True
            s.copies_moved += 1
            s.bytes_moved += seg.size
            count("REBALANCE_BYTES", seg.size)
            count("REBALANCE_COPIES")
            # Saved after every move: the budget a restart resumes with is exact (a copy
            # is large next to one meta write), so a restart moves no more than planned.
            self.save()
        return moved

    # -- the loop ---------------------------------------------------------------------------

    async def tick(self, loop: asyncio.AbstractEventLoop) -> None:
        if getattr(self.node, "cluster", None) is None:
            await asyncio.sleep(60)  # one node: nothing to balance between
            return
        await loop.run_in_executor(self._pool, self.take_request)
        s = self.state
        if s.phase == "retrying":
            await asyncio.sleep(self._backoff.next_delay())
            if self.state is s and s.phase == "retrying":
                s.phase = "waiting"
                s.passes += 1
        if not await loop.run_in_executor(self._pool, self.step):
            if s.phase == "done":
                self._backoff.reset()
            await asyncio.sleep(IDLE_SECONDS)
