"""Liveness: heartbeats between nodes, a hint only (issue #17 "Liveness is a hint", issue
#13 "Bounded gossip"; S3 2008: gossip grew until servers did little else).

* **Bounded.** A node sends at most ``rate`` heartbeats per second in total, whatever the
  cluster's size: one every ``1/rate`` s, to the next peer round robin. With N peers each
  one hears from this node every ``N/rate`` s, so the time after which a silent peer is
  judged down grows with N (:meth:`HeartbeatPlan.down_after`), while the load stays flat.
  A message is small and bounded (:data:`MAX_MESSAGE_BYTES`): name, layout version and the
  free space of the node's stores.
* **Both ways.** A heartbeat received is evidence too: the sender is alive.
* **A hint.** A peer judged down is routed around (:meth:`Liveness.alive`); it is never
  removed from the layout, which only an operator changes.
* **Free space travels with it,** so placement chooses targets without a network call on
  the PUT path (:meth:`Liveness.free_space`).

The loop (:class:`Heartbeater`) takes its transport and clock as arguments: the node gives
it the net layer (mutual TLS, checksummed frames), the simulation test gives it a function.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge

log = logging.getLogger("holdfast.cluster")

HEARTBEATS = Counter(
    "holdfast_heartbeats_total",
    "Heartbeats this node sent, by peer and result (ok, failed)",
    ["peer", "result"],
)
HEARTBEATS_RECEIVED = Counter(
    "holdfast_heartbeats_received_total", "Heartbeats this node received, by peer", ["peer"]
)
HEARTBEAT_BYTES = Counter(
    "holdfast_heartbeat_bytes_total",
    "Bytes of heartbeat messages (payload), by direction (sent, received)",
    ["direction"],
)
HEARTBEAT_BUDGET = Gauge(
    "holdfast_heartbeat_budget_per_second",
    "The most heartbeats this node sends per second, whatever the cluster's size",
)
PEER_LAST_SEEN = Gauge(
    "holdfast_peer_last_seen_seconds",
    "Seconds since this node last heard from the peer (heartbeat answered or received)",
    ["peer"],
)
PEER_UP = Gauge("holdfast_peer_up", "1 if this node judges the peer up (a hint only)", ["peer"])

DEFAULT_RATE = 5.0  # heartbeats per second, per node, in total
MIN_DOWN_AFTER = 3.0  # seconds
MAX_MESSAGE_BYTES = 4096  # a heartbeat is refused to be built bigger than this


@dataclass(frozen=True)
class HeartbeatPlan:
    """The heartbeat budget of one node."""

    rate: float = DEFAULT_RATE

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError("the heartbeat rate must be > 0 per second")

    @property
    def interval(self) -> float:
        return 1.0 / self.rate

    def cycle(self, peers: int) -> float:
        """Seconds between two heartbeats from this node to the same peer."""
        return max(1, peers) / self.rate

    def down_after(self, peers: int) -> float:
        """Silence after which a peer is judged down: three missed turns (heartbeats come
        both ways, so it is about six chances), never less than MIN_DOWN_AFTER."""
        return max(MIN_DOWN_AFTER, 3 * self.cycle(peers))


def message(node: str, layout_version: int, stores: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The heartbeat's content: who, which layout it runs, its stores' free space."""
    msg = {"node": node, "layout": layout_version, "stores": stores, "time": time.time()}
    if len(json.dumps(msg)) > MAX_MESSAGE_BYTES:
        # Many drives: keep the totals, which is what placement needs first.
        msg["stores"] = {
            "*": {
                "free": sum(int(s.get("free", 0)) for s in stores.values()),
                "ok": all(s.get("ok", True) for s in stores.values()),
                "count": len(stores),
            }
        }
    return msg


@dataclass
class PeerState:
    name: str
    last_seen: float | None = None  # monotonic
    last_heartbeat: float | None = None  # wall clock, when last heard from
    sent: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_error: str = ""
    layout_version: int = 0
    stores: dict[str, dict[str, Any]] = field(default_factory=dict)


class Liveness:
    """This node's view of its peers (hints). Read by placement (``alive``,
    ``free_space``), the status page (``snapshot``) and metrics."""

    def __init__(self, me: str, plan: HeartbeatPlan, clock: Callable[[], float] = time.monotonic):
        self.me = me
        self.plan = plan
        self.clock = clock
        self.peers: dict[str, PeerState] = {}

    def set_peers(self, names: Iterable[str]) -> None:
        """Follow the layout: new members appear, removed ones are forgotten."""
        wanted = {n for n in names if n != self.me}
        for gone in set(self.peers) - wanted:
            del self.peers[gone]
        for name in wanted - set(self.peers):
            self.peers[name] = PeerState(name)

    def seen(self, name: str, msg: dict[str, Any] | None = None) -> None:
        peer = self.peers.get(name)
        if peer is None:
            return
        peer.last_seen = self.clock()
        peer.last_heartbeat = time.time()
        peer.consecutive_failures = 0
        if msg:
            peer.layout_version = int(msg.get("layout", peer.layout_version) or 0)
            stores = msg.get("stores")
            if isinstance(stores, dict):
                peer.stores = {str(k): dict(v) for k, v in stores.items() if isinstance(v, dict)}

    def failed(self, name: str, error: str) -> None:
        peer = self.peers.get(name)
        if peer is None:
            return
        peer.failures += 1
        peer.consecutive_failures += 1
        peer.last_error = error[:200]

    def age(self, name: str) -> float | None:
        peer = self.peers.get(name)
        if peer is None or peer.last_seen is None:
            return None
        return self.clock() - peer.last_seen

    def alive(self, name: str) -> bool:
        """A hint: heard from within the plan's down_after. This node is always alive."""
        if name == self.me:
            return True
        age = self.age(name)
        return age is not None and age <= self.plan.down_after(len(self.peers))

    def state(self, name: str) -> str:
        if self.age(name) is None:
            peer = self.peers.get(name)
            return "down" if peer is not None and peer.failures else "unknown"
        return "up" if self.alive(name) else "down"

    def free_space(self, store_id: str) -> int | None:
        """Free bytes of a remote store (``node/drive``) as its last heartbeat said."""
        node, _, _drive = store_id.partition("/")
        peer = self.peers.get(node)
        if peer is None:
            return None
        entry = peer.stores.get(store_id)
        return int(entry["free"]) if entry and "free" in entry else None

    def snapshot(self) -> dict[str, Any]:
        out = {}
        for name, p in sorted(self.peers.items()):
            age = self.age(name)
            out[name] = {
                "state": self.state(name),
                "last_seen_age": None if age is None else round(age, 3),
                "last_heartbeat": p.last_heartbeat,
                "sent": p.sent,
                "failures": p.failures,
                "last_error": p.last_error,
                "layout_version": p.layout_version,
                "stores": p.stores,
            }
        return out

    def export(self) -> None:
        """Refresh the per-peer gauges (the status loop calls it about once a second)."""
        for name in self.peers:
            age = self.age(name)
            PEER_LAST_SEEN.labels(name).set(-1 if age is None else age)
            PEER_UP.labels(name).set(1 if self.alive(name) else 0)


Send = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any] | None]]


class Heartbeater:
    """Sends one heartbeat every ``plan.interval`` seconds to the next peer, round robin.
    A send that has not answered by the next tick is not waited for: at most
    ``ceil(rate * timeout)`` sends are in flight, and the send rate never exceeds the
    budget."""

    def __init__(
        self,
        liveness: Liveness,
        send: Send,
        build: Callable[[], dict[str, Any]],
        *,
        timeout: float = 2.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.liveness = liveness
        self.send = send
        self.build = build
        self.timeout = timeout
        self.sleep = sleep
        # Start at a place of our own in the ring, so peers' turns do not line up.
        self._turn = zlib.crc32(liveness.me.encode())
        self._tasks: set[asyncio.Task] = set()
        HEARTBEAT_BUDGET.set(liveness.plan.rate)

    def next_peer(self) -> str | None:
        names = sorted(self.liveness.peers)
        if not names:
            return None
        self._turn += 1
        return names[self._turn % len(names)]

    async def beat(self, peer: str) -> None:
        msg = self.build()
        HEARTBEAT_BYTES.labels("sent").inc(len(json.dumps(msg)))
        state = self.liveness.peers.get(peer)
        if state is not None:
            state.sent += 1
        try:
            answer = await asyncio.wait_for(self.send(peer, msg), self.timeout)
        except Exception as e:  # noqa: BLE001 - any failure is a missed heartbeat
            HEARTBEATS.labels(peer, "failed").inc()
            self.liveness.failed(peer, f"{type(e).__name__}: {e}")
            return
        HEARTBEATS.labels(peer, "ok").inc()
        self.liveness.seen(peer, answer if isinstance(answer, dict) else None)

    async def run(self) -> None:
        while True:
            peer = self.next_peer()
            if peer is not None:
                task = asyncio.ensure_future(self.beat(peer))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            await self.sleep(self.liveness.plan.interval)

    def received(self, peer: str, msg: dict[str, Any]) -> None:
        """A peer's heartbeat arrived (already checked by the net layer)."""
        HEARTBEATS_RECEIVED.labels(peer).inc()
        HEARTBEAT_BYTES.labels("received").inc(len(json.dumps(msg)))
        self.liveness.seen(peer, msg)
