"""Moving one copy of a blob from one drive to another, never the last copy first: what a
drain (holdfast/workers/drain.py) and a rebalance (holdfast/workers/rebalance.py) do for
each copy they move.

1. a target: the emptiest writable node drive (of the nodes allowed) that holds no copy of
   the blob yet, with room above its repair reserve;
2. the copy, block by block from whichever copy has each block right, verified against the
   index's CRCs, admitted by the node's one transfer queue (holdfast/workers/transfers.py:
   one operation, one of the cluster's transfer slots for the copy, every block within
   the caller's kind's rate, the target node's and the shared total, foreground first);
3. the move recorded in the index as a compare-and-set on the row's segments
   (``Index.move_copy``): if the object changed meanwhile, the new copy is garbage, deleted,
   and the caller looks at the row again on its next pass;
4. only then the old copy deleted (or that delete queued, if its drive is down).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from holdfast.index.records import RepairTask, Segment
from holdfast.placement.policy import node_of
from holdfast.service.node import Node
from holdfast.stores.base import Store
from holdfast.workers.limits import Backoff
from holdfast.workers.repair import Repairer
from holdfast.workers.transfers import Lane, TransferQueue

log = logging.getLogger("holdfast.move")

KINDS = ("local", "node")  # drives of cluster nodes; copies on S3 back-ends never move


class MoveFailed(Exception):
    """The copy could not be moved now (no target, a copy failed): try on a later pass."""


class CopyMover:
    def __init__(self, node: Node, lane: Lane, name: str, reason: str) -> None:
        self.node = node
        self.lane = lane
        self.name = name  # for the log
        self.reason = reason  # of the delete queued when the old copy's drive is down
        self._repairer = Repairer(node, lane)

    def target(self, seg: Segment, nodes: set[str] | None = None) -> Store | None:
        """The emptiest writable drive with room for ``seg`` on a node that holds no copy of
        it, among ``nodes`` (None: any node)."""
        return self._target(seg, nodes, [])

    def _target(self, seg: Segment, nodes: set[str] | None, why: list[str]) -> Store | None:
        holders = {node_of(sid) for sid in seg.stores}
        best, room = None, -1
        for sid in list(self.node.all_stores):
            store = self.node.all_stores.get(sid)
            if store is None or store.kind not in KINDS or node_of(sid) in holders:
                continue
            if nodes is not None and node_of(sid) not in nodes:
                continue
            if not self.node.writable(sid):
                why.append(f"{sid} not writable")
                continue
            try:
                free = store.repair_room()
            except OSError as e:
                why.append(f"{sid}: {e}")
                continue
            if free < seg.size:
                why.append(f"{sid} has {free} bytes of room")
            elif free > room:
                best, room = store, free
        return best

    def move(
        self,
        bucket: str,
        key: str,
        vseq: int | None,
        seg: Segment,
        old: str,
        nodes: set[str] | None = None,
    ) -> str | None:
        """Move the copy of ``seg`` on drive ``old`` to a drive of one of ``nodes``: the
        new copy's drive once moved, None when the row changed meanwhile (nothing changed);
        MoveFailed when it cannot be done now."""
        why: list[str] = []
        target = self._target(seg, nodes, why)
        if target is None:
            where = f" on {', '.join(sorted(nodes))}" if nodes is not None else ""
            detail = f" ({'; '.join(why[:3])})" if why else ""
            raise MoveFailed(f"blob {seg.blob_id}: no writable drive with room{where}{detail}")
        try:
            self.lane.op(target.store_id)
            with self.lane.transfer(target.store_id) as pace:
                self._repairer._rebuild(target, seg, replace=False, pace=pace)
        except Exception as e:  # NoSlot too: the cap reached for too long, tried next pass
            log.warning("%s: blob %s to %s: %s", self.name, seg.blob_id, target.store_id, e)
            raise MoveFailed(f"blob {seg.blob_id} to {target.store_id}: {e}") from e
        if not self.node.blocking.move_copy(bucket, key, vseq, seg.blob_id, old, target.store_id):
            target.delete(seg.blob_id)  # nobody refers to this copy
            return None
        try:
            self.node.all_stores[old].delete(seg.blob_id)
        except (OSError, KeyError) as e:
            log.info("%s: the copy on %s is left for the repair queue: %s", self.name, old, e)
            self.node.blocking.queue_repairs([RepairTask(seg.blob_id, old, "delete", self.reason)])
        return target.store_id


class MoverJob:
    """The one shape of the lease holder's copy movers (drain, rebalance): index and blob
    work on one thread of its own, a state loaded once and saved as it goes, and a step that
    fails backs off (never a loop: EBS, 2011). A subclass gives `name`, `log`, `load` and
    `tick`, one turn of its loop."""

    name = "mover"  # also its kind in the transfer queue
    reason = "moved"  # of a delete queued when the old copy's drive is down
    log = log

    def __init__(self, node: Node, transfers: TransferQueue | None = None) -> None:
        self.node = node
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        self._backoff = Backoff(base=5.0, cap=300.0)
        # The node's one transfer queue (shared with repair): its rates, the kind's own rate
        # (a cluster setting) and the cluster's cap on transfers.
        self.transfers = transfers if transfers is not None else TransferQueue.for_node(node)
        self._mover = CopyMover(node, self.transfers.lane(self.name), self.name, self.reason)
        self._saved = 0.0

    def load(self) -> None:
        raise NotImplementedError

    async def tick(self, loop: asyncio.AbstractEventLoop) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self.load)
        while True:
            try:
                await self.tick(loop)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.state.last_error = str(e)
                delay = self._backoff.next_delay()
                self.log.exception("%s failed; retrying in %.1fs", self.name, delay)
                await asyncio.sleep(delay)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
