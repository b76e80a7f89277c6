"""Draining a node: move every copy it holds to another node, at a bounded rate, so that it
can then be removed without any object falling below its copies (S3, 2017; EBS, 2011).

A node in state ``draining`` (``holdfast cluster node drain NAME``, then ``layout apply``)
takes no new copies (holdfast/cluster/remote.py). The node leading the background work walks
the objects and noncurrent versions; for each copy on a draining node it

1. picks a target: a writable drive of another node that holds no copy of that blob yet
   (the emptiest), with room above its repair reserve;
2. copies the blob there block by block, verified, through the leading process's one
   transfer queue (holdfast/workers/transfers.py): at most the cluster's drain rate
   (``holdfast cluster layout rules --drain-rate``), and, with repair and rebalance
   together, at most the node's ``--repair-rate``; one of the cluster's transfer slots per
   copy; yielding to foreground requests;
3. records the move in the index as a compare-and-set on the row's segments
   (``Index.move_copy``); if the object changed meanwhile, the new copy is garbage and is
   deleted, and the row is looked at again on the next pass;
4. deletes the copy on the draining node (or queues that delete if the node is down).

Those four steps are :class:`holdfast.workers.move.CopyMover`'s, shared with rebalancing.

Only what the new layout requires moves: copies on draining nodes, nothing else. The walk's
position and its counters are kept in the index (meta ``drain_state``), which is also where
``holdfast cluster layout show`` reads the progress from; a restart resumes the walk. A pass
that could not move everything (no target with room, a node down) is followed by another,
after a backoff. Copies of unfinished multipart uploads' parts are not moved (they are
completed or aborted within days): the node should be removed only once the status says
``done``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import asdict, dataclass, field

from holdfast.index.records import Segment
from holdfast.placement.policy import node_of
from holdfast.service.node import Node
from holdfast.workers.counters import count
from holdfast.workers.move import MoveFailed, MoverJob
from holdfast.workers.transfers import TransferQueue

log = logging.getLogger("holdfast.drain")

STATE_KEY = "drain_state"
BATCH = 50
IDLE_SECONDS = 2.0
SAVE_EVERY_SECONDS = 2.0


@dataclass
class DrainState:
    nodes: list[str] = field(default_factory=list)
    phase: str = "idle"  # idle | counting | objects | versions | done
    cursor: list | None = None
    passes: int = 0
    started: float = 0.0
    finished: float | None = None
    rate: float = 0.0  # bytes/s in force
    copies_to_move: int = 0  # counted at the start of the pass
    bytes_to_move: int = 0
    copies_moved: int = 0
    bytes_moved: int = 0
    changed_meanwhile: int = 0  # the object changed during its copy: looked at next pass
    failed: int = 0  # no target, no room, a node down: next pass
    last_error: str | None = None


class Drainer(MoverJob):
    name = "drain"
    reason = "drained"
    log = log

    def __init__(self, node: Node, transfers: TransferQueue | None = None) -> None:
        super().__init__(node, transfers)
        self.state = DrainState()

    # -- state -----------------------------------------------------------------------------------

    def draining(self) -> list[str]:
        cluster = getattr(self.node, "cluster", None)
        return sorted(cluster.draining()) if cluster is not None else []

    def _rate(self) -> float:
        from holdfast.cluster.rails import SETTINGS_META, Settings

        return Settings.from_text(self.node.blocking.get_meta(SETTINGS_META)).drain_bytes_per_second

    def load(self) -> None:
        raw = self.node.blocking.get_meta(STATE_KEY)
        if raw:
            try:
                self.state = DrainState(**json.loads(raw))
            except (TypeError, ValueError):
                log.error("ignoring an unreadable drain state: %r", raw[:200])

    def save(self) -> None:
        self.node.blocking.set_meta(STATE_KEY, json.dumps(asdict(self.state)))
        self._saved = time.monotonic()

    def snapshot(self) -> dict:
        s = asdict(self.state)
        s["progress"] = (
            round(min(1.0, self.state.bytes_moved / self.state.bytes_to_move), 4)
            if self.state.bytes_to_move
            else (1.0 if self.state.phase == "done" else 0.0)
        )
        return s

    # -- the walk (blocking) ---------------------------------------------------------------------

    def _begin(self, nodes: list[str]) -> None:
        rate = self._rate()
        self.transfers.refresh()  # the queue paces at this rate, not at one read before
        self.state = DrainState(
            nodes=nodes, phase="counting", passes=self.state.passes + 1, started=time.time()
        )
        self.state.rate = rate
        log.info("draining %s at %d bytes/s", ", ".join(nodes), rate)

    def _rows(self, phase: str, after):
        if phase == "versions":
            rows = self.node.blocking.scan_versions(after, BATCH)
            return rows, [(r.bucket, r.key, r.vseq) for r in rows]
        rows = self.node.blocking.scan_objects(after, BATCH)
        return rows, [(r.bucket, r.key) for r in rows]

    def step(self) -> bool:
        """One batch of the walk; False once the pass is complete."""
        s = self.state
        if s.phase in ("idle", "done"):
            return False
        phase = "objects" if s.phase == "counting" else s.phase
        after = tuple(s.cursor) if s.cursor else None
        rows, keys = self._rows(phase, after)
        draining = set(s.nodes)
        for row, key in zip(rows, keys, strict=True):
            for seg in row.segments:
                for sid in seg.stores:
                    if node_of(sid) not in draining:
                        continue
                    if s.phase == "counting":
                        s.copies_to_move += 1
                        s.bytes_to_move += seg.size
                    else:
                        vseq = key[2] if phase == "versions" else None
                        self._move(row.bucket, row.key, vseq, seg, sid)
            s.cursor = list(key)
        if len(rows) < BATCH:
            s.cursor = None
            if s.phase == "counting":
                s.phase = "objects"
            elif s.phase == "objects":
                s.phase = "versions"
            else:
                s.phase, s.finished = "done", time.time()
        self.save()
        return s.phase != "done"

    def _move(self, bucket: str, key: str, vseq: int | None, seg: Segment, old: str) -> None:
        s = self.state
        assert self._mover is not None
        try:
            moved = self._mover.move(bucket, key, vseq, seg, old)
        except MoveFailed as e:
            s.failed += 1
            s.last_error = str(e)
            return
        if not moved:
            s.changed_meanwhile += 1
            return
        s.copies_moved += 1
        s.bytes_moved += seg.size
        count("DRAIN_BYTES", seg.size)
        count("DRAIN_COPIES")
        if time.monotonic() - self._saved >= SAVE_EVERY_SECONDS:
            self.save()  # progress for 'layout show', and a restart loses little

    # -- the loop --------------------------------------------------------------------------------

    async def tick(self, loop: asyncio.AbstractEventLoop) -> None:
        nodes = self.draining()
        s = self.state
        if not nodes:
            if s.phase != "idle":
                self.state = DrainState(passes=s.passes, phase="idle")
                await loop.run_in_executor(self._pool, self.save)
            await asyncio.sleep(IDLE_SECONDS)
            return
        again = s.phase == "done" and (s.failed or s.changed_meanwhile)
        if s.nodes != nodes or again:
            if again:
                await asyncio.sleep(self._backoff.next_delay())
            await loop.run_in_executor(self._pool, self._begin, nodes)
        if not await loop.run_in_executor(self._pool, self.step):
            if not (self.state.failed or self.state.changed_meanwhile):
                self._backoff.reset()
            await asyncio.sleep(IDLE_SECONDS)
