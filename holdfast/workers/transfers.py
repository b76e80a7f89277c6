"""One flow-controlled queue for every byte that moves in the background (issue 13; EBS,
2011: re-mirroring with no flow control became a storm).

Repair (with hinted-handoff replay and the re-sync anti-entropy queues: both are rows of
the repair queue), drain and rebalance each take their admission from the one
:class:`TransferQueue` of the process that runs the background workers, instead of a
limit of their own, so that together they cannot exceed what one of them alone may do:

* **bytes**: every kind together moves at most ``--repair-rate`` bytes in any one-second
  window (a :class:`~holdfast.workers.limits.WindowLimit`, counted block by block as each
  is written; the storm test holds the record of it to the limit). A drain and a
  rebalance each also keep their own, lower rate (``holdfast cluster layout rules
  --drain-rate / --rebalance-rate``: a token bucket each, inside the shared window); a
  kind's rate above the total just means the total;
* **operations** (a blob copied or moved, a missed delete replayed): at most
  ``--repair-ops`` a second, all kinds together;
* **per target node**: a token bucket on bytes/s and one on operations/s for each node
  receiving (``--transfer-node-rate``, ``--transfer-node-ops``; by default the totals), so
  one returning node cannot take every byte while others wait;
* **the cluster's cap** on transfers under way at once, whichever node runs them: a slot
  leased in the index engine (``Index.acquire_transfer_slot``: one statement to take, one
  to give back, per blob copy, renewed only while a long copy goes on), ``holdfast cluster
  layout rules --transfer-cap``. A slot that is not renewed expires, so a crashed holder's
  slots come back by themselves. While the cap is reached, or the index does not answer,
  a transfer waits (backing off, at most ``SLOT_WAIT_SECONDS``, then it fails and is
  retried later with the caller's own backoff): never unbounded;
* **foreground first**: each block waits for a short lull in client requests (bounded, so
  background work still progresses under constant load).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from holdfast.placement.policy import node_of
from holdfast.workers.counters import count, gauge
from holdfast.workers.limits import Backoff, RateRecord, TokenBucket, WindowLimit

log = logging.getLogger("holdfast.transfers")

KINDS = ("repair", "drain", "rebalance")
SLOT_TTL_SECONDS = 30.0  # a slot's lease; renewed every third of it while a copy goes on
SLOT_WAIT_SECONDS = 60.0  # the longest one transfer waits for a slot before it gives up
SETTINGS_SECONDS = 5.0  # how often the cluster settings (cap, kinds' rates) are read again
MIB = 1024 * 1024


class NoSlot(Exception):
    """No transfer slot in time (the cluster's cap reached, or the index unavailable), or
    the slot was lost during the copy: the transfer is retried later."""


@dataclass
class Admitted:
    bytes: int = 0
    ops: int = 0
    transfers: int = 0


@dataclass
class Held:
    slot: int
    token: str
    kind: str
    target: str
    renewed: float  # monotonic time of the last successful take or renewal


class TransferQueue:
    """The node's one queue (see the module's docstring). ``index`` is anything with the
    index's transfer-slot methods, blocking (the node's BlockingIndex); None: no cluster
    cap (a tool, a unit test). ``settings`` returns the cluster settings
    (holdfast/cluster/rails.py: ``transfer_cap``, ``drain_bytes_per_second``,
    ``rebalance_bytes_per_second``), read at most every ``SETTINGS_SECONDS``."""

    def __init__(
        self,
        bytes_per_second: float,
        ops_per_second: float,
        *,
        node_bytes_per_second: float | None = None,
        node_ops_per_second: float | None = None,
        ops_burst: float = 1.0,
        index: Any = None,
        settings: Callable[[], Any] | None = None,
        holder: Callable[[], str] = lambda: f"local/{os.getpid()}",
        quiet: Callable[[], None] = lambda: None,
        ttl: float = SLOT_TTL_SECONDS,
        slot_wait: float = SLOT_WAIT_SECONDS,
        window: float = 1.0,
    ) -> None:
        self.rate = bytes_per_second
        self.ops_rate = ops_per_second
        self.node_rate = node_bytes_per_second or bytes_per_second
        self.node_ops_rate = node_ops_per_second or ops_per_second
        self.window = WindowLimit(bytes_per_second * window, window)
        self.ops = TokenBucket(ops_per_second, burst=max(1.0, ops_burst))
        # Bytes per second and attempts per second, as done, every kind together: the
        # figures the storm test (issue 13) holds to the limit.
        self.record = RateRecord(window=window)
        self.index = index
        self._settings_fn = settings
        self._settings: Any = None
        self._settings_at = 0.0
        self._holder = holder
        self.quiet = quiet
        self.ttl = ttl
        self.slot_wait = slot_wait
        self.admitted = {kind: Admitted() for kind in KINDS}
        self.slot_waits = {"full": 0, "unavailable": 0}
        self.held: dict[int, Held] = {}
        self._node_bytes: dict[str, TokenBucket] = {}
        self._node_ops: dict[str, TokenBucket] = {}
        self._kind_bytes: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()
        self._freed = threading.Condition()
        self._closed = False

    @classmethod
    def for_node(cls, node: Any) -> TransferQueue:
        cfg = node.config

        def settings() -> Any:
            from holdfast.cluster.rails import SETTINGS_META, Settings

            return Settings.from_text(node.blocking.get_meta(SETTINGS_META))

        def quiet() -> None:
            node.foreground.wait_quiet_sync(
                cfg.foreground_quiet_seconds, cfg.foreground_max_wait_seconds
            )

        return cls(
            cfg.repair_bytes_per_second,
            cfg.repair_ops_per_second,
            node_bytes_per_second=cfg.transfer_node_bytes_per_second,
            node_ops_per_second=cfg.transfer_node_ops_per_second,
            ops_burst=cfg.repair_concurrency,
            index=node.blocking,
            settings=settings,
            holder=lambda: f"{cfg.node_name or 'local'}/{os.getpid()}",
            quiet=quiet,
        )

    def lane(self, kind: str) -> Lane:
        if kind not in KINDS:
            raise ValueError(f"not a kind of transfer: {kind!r}")
        return Lane(self, kind)

    def close(self) -> None:
        """Transfers waiting for a slot give up at once (the process is stopping)."""
        self._closed = True
        with self._freed:
            self._freed.notify_all()

    # -- settings ------------------------------------------------------------------------------

    def settings(self) -> Any:
        """The cluster settings, read again at most every SETTINGS_SECONDS; the last ones
        known (or the defaults) while the index does not answer."""
        from holdfast.cluster.rails import Settings

        now = time.monotonic()
        if self._settings_fn is not None and (
            self._settings is None or now - self._settings_at >= SETTINGS_SECONDS
        ):
            self._settings_at = now
            try:
                self._settings = self._settings_fn()
            except Exception as e:  # the index down: keep what was known
                log.info("cluster settings not read (%s); keeping the last known", e)
        if self._settings is None:
            self._settings = Settings()
        return self._settings

    def refresh(self) -> None:
        """Read the cluster settings again at the next transfer. A drain or rebalance pass
        calls it as it begins: an operator who sets a rate and then starts the drain must
        not see it run for up to SETTINGS_SECONDS at the rate from before."""
        self._settings_at = float("-inf")

    def kind_rate(self, kind: str) -> float | None:
        """A kind's own rate (bytes/s), within the total; None: only the total."""
        s = self.settings()
        return {
            "drain": s.drain_bytes_per_second,
            "rebalance": s.rebalance_bytes_per_second,
        }.get(kind)

    def _bucket(self, table: dict[str, TokenBucket], key: str, rate: float, burst: float):
        """The bucket of ``key`` at ``rate``: kept while the rate stays the same (a new pass,
        or a new transfer, gets no fresh burst), replaced when it changes."""
        with self._lock:
            bucket = table.get(key)
            if bucket is None or bucket.rate != rate:
                bucket = table[key] = TokenBucket(rate, burst=burst)
            return bucket

    # -- operations ----------------------------------------------------------------------------

    def _op_buckets(self, kind: str, target: str | None) -> list[TokenBucket]:
        buckets = [self.ops]
        if target:
            rate = self.node_ops_rate
            buckets.append(self._bucket(self._node_ops, target, rate, max(1.0, self.ops.burst)))
        self.admitted[kind].ops += 1
        count("TRANSFER_OPS", 1, kind)
        return buckets

    def take_op(self, kind: str, target: str | None) -> None:
        for bucket in self._op_buckets(kind, target):
            bucket.take_sync(1)

    async def take_op_async(self, kind: str, target: str | None) -> None:
        for bucket in self._op_buckets(kind, target):
            await bucket.take(1)

    # -- bytes ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def moving(
        self, kind: str, target: str | None, nbytes: int, held: Held | None = None
    ) -> Iterator[None]:
        """Around moving one block: foreground first, then the kind's own rate, the
        target node's, and the shared window; counted when done."""
        self.quiet()
        if held is not None:
            self._keep(held)
        rate = self.kind_rate(kind)
        if rate is not None:
            self._bucket(self._kind_bytes, kind, rate, max(rate, MIB)).take_sync(nbytes)
        if target:
            rate = self.node_rate
            self._bucket(self._node_bytes, target, rate, max(rate, MIB)).take_sync(nbytes)
        self.window.acquire(nbytes)
        self.admitted[kind].bytes += nbytes
        count("TRANSFER_BYTES", nbytes, kind)
        done = False
        try:
            yield
            done = True
        finally:
            self.window.release(nbytes)  # a failed block held its share too
            if done:
                self.record.note_bytes(nbytes)

    # -- the cluster's slots -------------------------------------------------------------------

    @contextlib.contextmanager
    def transfer(self, kind: str, target_store: str) -> Iterator[Pace]:
        """One transfer (one blob) toward ``target_store``'s node, holding one of the
        cluster's slots for its length: NoSlot when none came in time."""
        target = node_of(target_store)
        held = self._acquire(kind, target)
        self.admitted[kind].transfers += 1
        try:
            yield Pace(self, kind, target, held)
        finally:
            self._release(held)

    def _acquire(self, kind: str, target: str) -> Held | None:
        if self.index is None:
            return None
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self.slot_wait
        backoff = Backoff(base=0.1, cap=2.0)
        waited = False
        while True:
            if self._closed:
                raise NoSlot("the transfer queue is closed")
            cap = int(self.settings().transfer_cap)
            try:
                slot = self.index.acquire_transfer_slot(
                    cap, self._holder(), kind, target, token, self.ttl
                )
                reason = "full"
            except Exception as e:  # the index unavailable: wait, never go on without a slot
                slot, reason = None, "unavailable"
                log.info("no transfer slot: the index did not answer: %s", e)
            if slot is not None:
                held = Held(slot, token, kind, target, time.monotonic())
                with self._lock:
                    self.held[slot] = held
                    gauge("TRANSFER_SLOTS_HELD", len(self.held))
                return held
            if not waited:
                waited = True
                self.slot_waits[reason] += 1
                count("TRANSFER_SLOT_WAITS", 1, reason)
            left = deadline - time.monotonic()
            if left <= 0:
                raise NoSlot(
                    f"no transfer slot within {self.slot_wait:g} s "
                    f"({'the cap of ' + str(cap) + ' reached' if reason == 'full' else 'the index did not answer'})"
                )
            with self._freed:  # a slot given back by this process wakes the waiters early
                self._freed.wait(min(backoff.next_delay(), left))

    def _keep(self, held: Held) -> None:
        """Renew a slot held for a third of its lease; NoSlot if it was lost."""
        now = time.monotonic()
        if now - held.renewed < self.ttl / 3:
            return
        try:
            ok = self.index.renew_transfer_slot(held.slot, held.token, self.ttl)
        except Exception as e:
            if now - held.renewed >= self.ttl:
                raise NoSlot(f"transfer slot {held.slot} not renewed in time: {e}") from e
            return  # tried again at the next block
        if not ok:
            raise NoSlot(f"transfer slot {held.slot} expired and was taken meanwhile")
        held.renewed = now

    def _release(self, held: Held | None) -> None:
        if held is None:
            return
        with self._lock:
            self.held.pop(held.slot, None)
            gauge("TRANSFER_SLOTS_HELD", len(self.held))
        try:
            self.index.release_transfer_slot(held.slot, held.token)
        except Exception as e:  # it expires by itself
            log.info("transfer slot %d left to expire: %s", held.slot, e)
        with self._freed:
            self._freed.notify_all()

    # -- status --------------------------------------------------------------------------------

    def snapshot(self) -> dict:
        s = self._settings
        with self._lock:
            held = [
                {"slot": h.slot, "kind": h.kind, "target": h.target} for h in self.held.values()
            ]
        return {
            "bytes_per_second": self.rate,
            "ops_per_second": self.ops_rate,
            "node_bytes_per_second": self.node_rate,
            "node_ops_per_second": self.node_ops_rate,
            "kind_bytes_per_second": {
                "drain": s.drain_bytes_per_second if s else None,
                "rebalance": s.rebalance_bytes_per_second if s else None,
            },
            "cap": s.transfer_cap if s else None,
            "slots_held": len(held),
            "held": held,
            "slot_waits": dict(self.slot_waits),
            "admitted": {kind: asdict(a) for kind, a in self.admitted.items()},
            "busiest_window_bytes": self.record.busiest_window_bytes,
        }


class Pace:
    """What one transfer does between blocks (and what verification reads are paced by):
    ``pace(nbytes)`` before reading a block, ``with pace.moving(nbytes):`` around copying
    one."""

    def __init__(
        self, queue: TransferQueue, kind: str, target: str | None, held: Held | None
    ) -> None:
        self.queue = queue
        self.kind = kind
        self.target = target or None
        self.held = held

    def __call__(self, nbytes: int) -> None:
        with self.moving(nbytes):
            pass

    def moving(self, nbytes: int) -> contextlib.AbstractContextManager[None]:
        return self.queue.moving(self.kind, self.target, nbytes, self.held)


class Lane:
    """One kind's door into the queue, what a mover holds."""

    def __init__(self, queue: TransferQueue, kind: str) -> None:
        self.queue = queue
        self.kind = kind

    def op(self, target_store: str | None) -> None:
        self.queue.take_op(self.kind, node_of(target_store) if target_store else None)

    async def op_async(self, target_store: str | None) -> None:
        await self.queue.take_op_async(self.kind, node_of(target_store) if target_store else None)

    def transfer(self, target_store: str) -> contextlib.AbstractContextManager[Pace]:
        return self.queue.transfer(self.kind, target_store)

    def pace(self, target_store: str | None = None) -> Pace:
        """Bytes of this kind that need no slot (verifying copies in place)."""
        return Pace(self.queue, self.kind, node_of(target_store) if target_store else None, None)

    def __call__(self, nbytes: int) -> None:
        self.pace()(nbytes)

    def moving(self, nbytes: int) -> contextlib.AbstractContextManager[None]:
        return self.pace().moving(nbytes)
