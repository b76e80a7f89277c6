"""The cluster agent: the part of a node that belongs to the cluster, in one process of its
own next to the S3 workers (the supervisor starts and restarts it, holdfast/server.py).

It
* reads the layout at start (a node whose name is not in it does not start) and follows it:
  a version poll once a second (one cheap read, both engines);
* runs the internal server (holdfast/net/server.py: mutual TLS, checksummed frames), which
  serves this node's drives to the other nodes and answers heartbeats;
* sends heartbeats within a fixed budget (holdfast/cluster/liveness.py) carrying its
  stores' free space;
* publishes what it knows, once a second, to ``<state dir>/cluster-state.json`` (written
  whole, then renamed): the S3 workers' status pages and placement read it from there, so
  status keeps answering from the last picture while the index engine is down.

The layout view it gives the net layer (:class:`LayoutView`, the ``Peers`` protocol) is the
layout it last read: a node removed by an operator is refused from the next poll on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from holdfast.cluster import rebalance_state as rbs
from holdfast.cluster.layout import Layout, LayoutError, parse_address
from holdfast.cluster.liveness import Heartbeater, HeartbeatPlan, Liveness, message
from holdfast.cluster.state import STATE_FILE, write_state
from holdfast.index.base import Index
from holdfast.index.errors import IndexError_
from holdfast.net.client import NodeClient
from holdfast.net.frames import MESSAGES_REJECTED, Kind
from holdfast.net.server import InternalServer
from holdfast.net.tls import NodeIdentity
from holdfast.stores.base import Store

log = logging.getLogger("holdfast.cluster")

POLL_SECONDS = 1.0  # layout version poll: at most once a second
PROGRESS_SECONDS = 5.0  # the rebalance's progress, for the status page: one read per 5 s


class NotInLayout(RuntimeError):
    """This node's name is not a member of the layout (one line: what to do)."""


def not_in_layout(name: str, layout: Layout) -> NotInLayout:
    members = ", ".join(n.name for n in layout.members) or "none"
    return NotInLayout(
        f"node {name!r} is not in the cluster layout (version {layout.version}, nodes: "
        f"{members}); add it with 'holdfast cluster node add {name} HOST:PORT --index-dsn ...' "
        "and 'holdfast cluster layout apply', then start it again"
    )


class LayoutView:
    """The current layout, for the net layer (``Peers``) and the agent."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def name_allowed(self, name: str) -> bool:
        return self.layout.name_allowed(name)

    def address(self, name: str) -> tuple[str, int] | None:
        return self.layout.address(name)


def rejected_by_peer() -> dict[str, int]:
    """Messages rejected from each peer (holdfast_internal_messages_rejected_total)."""
    out: dict[str, int] = {}
    for metric in MESSAGES_REJECTED.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                peer = sample.labels.get("peer", "")
                out[peer] = out.get(peer, 0) + int(sample.value)
    return out


class ClusterAgent:
    def __init__(
        self,
        name: str,
        index: Index,
        identity: NodeIdentity,
        stores: Mapping[str, Store],
        listen: tuple[str, int],
        state_dir: Path,
        plan: HeartbeatPlan | None = None,
    ) -> None:
        self.name = name
        self.index = index
        self.identity = identity
        self.stores = stores
        self.listen = listen
        self.state_dir = Path(state_dir)
        self.state_path = self.state_dir / STATE_FILE
        self.plan = plan or HeartbeatPlan()
        self.view = LayoutView(Layout.empty())
        self.liveness = Liveness(name, self.plan)
        self.engine: dict[str, Any] = {"ok": True, "error": None, "checked": None}
        self.server: InternalServer | None = None
        self.client: NodeClient | None = None
        self.heartbeater: Heartbeater | None = None
        self._stores_info: dict[str, dict[str, Any]] = {}
        self._rebalance: dict[str, Any] | None = None
        self._progress_read = 0.0
        self._tasks: list[asyncio.Task] = []

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        layout = Layout.of(await self.index.get_layout())
        if not layout.name_allowed(self.name):
            raise not_in_layout(self.name, layout)
        self._follow(layout)
        self.server = InternalServer(self.identity, self.stores, self.view)
        self.server.on(Kind.HEARTBEAT, self._on_heartbeat)
        await self.server.start(*self.listen)
        # Heartbeats: one attempt, short timeouts; a missed one is the information.
        self.client = NodeClient(
            self.identity, self.view, timeout=2.0, connect_timeout=1.0, attempts=1, pool_size=1
        )
        self._refresh_stores()
        self.heartbeater = Heartbeater(self.liveness, self._send, self._build)
        self._tasks = [
            asyncio.ensure_future(self.heartbeater.run()),
            asyncio.ensure_future(self._follow_loop()),
            asyncio.ensure_future(self._publish_loop()),
        ]
        self.publish()
        log.info(
            "cluster agent %s: layout version %d, %d peers, internal server on %s:%d",
            self.name,
            layout.version,
            len(self.liveness.peers),
            self.listen[0],
            self.server.port,
        )

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        if self.server is not None:
            await self.server.close()
        if self.client is not None:
            self.client.close()

    # -- layout ------------------------------------------------------------------------------

    def _follow(self, layout: Layout) -> None:
        self.view.layout = layout
        self.liveness.set_peers(n.name for n in layout.members)

    async def _follow_loop(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                version = await self.index.layout_version()
                if version != self.view.layout.version:
                    layout = Layout.of(await self.index.get_layout())
                    log.info("layout version %d -> %d", self.view.layout.version, layout.version)
                    self._follow(layout)
                if time.monotonic() - self._progress_read >= PROGRESS_SECONDS:
                    self._progress_read = time.monotonic()
                    raw = await self.index.get_meta(rbs.STATE_KEY)
                    if raw:
                        self._rebalance = rbs.progress(rbs.RebalanceState.from_text(raw))
                self.engine = {"ok": True, "error": None, "checked": time.time()}
            except IndexError_ as e:
                self.engine = {"ok": False, "error": str(e), "checked": time.time()}

    # -- heartbeats --------------------------------------------------------------------------

    def _refresh_stores(self) -> None:
        info = {}
        for store_id, store in self.stores.items():
            try:
                info[store_id] = {"free": max(0, store.free_bytes()), "ok": True}
            except OSError:
                info[store_id] = {"free": 0, "ok": False}
        self._stores_info = info

    def _build(self) -> dict[str, Any]:
        return message(self.name, self.view.layout.version, self._stores_info)

    async def _send(self, peer: str, msg: dict[str, Any]) -> dict[str, Any] | None:
        assert self.client is not None
        return await self.client.acall(peer, "heartbeat", msg, kind=Kind.HEARTBEAT)

    async def _on_heartbeat(self, peer: str, msg: dict[str, Any]) -> dict[str, Any]:
        args = msg.get("args") if isinstance(msg.get("args"), dict) else msg
        if self.heartbeater is not None:
            self.heartbeater.received(peer, args)
        return self._build()

    # -- publishing --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        rejected = rejected_by_peer()
        peers = self.liveness.snapshot()
        for name, p in peers.items():
            p["rejected"] = rejected.get(name, 0)
            node = self.view.layout.node(name)
            p["s3"] = node.s3 if node else ""
            p["zone"] = node.zone if node else ""
        layout = self.view.layout
        return {
            "node": self.name,
            "pid": os.getpid(),
            "updated": time.time(),
            "layout_version": layout.version,
            "layout": [n.to_json() for n in layout.nodes],
            "peers": peers,
            "stores": self._stores_info,
            "heartbeat": {
                "rate": self.plan.rate,
                "down_after": self.plan.down_after(len(self.liveness.peers)),
            },
            "index": self.engine,
            "rebalance": self._rebalance,
            "internal": {
                "listen": f"{self.listen[0]}:{self.server.port if self.server else self.listen[1]}"
            },
        }

    def publish(self) -> None:
        try:
            write_state(self.state_dir, self.snapshot())
        except OSError as e:
            log.warning("cannot write %s: %s", self.state_path, e)

    async def _publish_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            await asyncio.to_thread(self._refresh_stores)
            self.liveness.export()
            self.publish()


def check_listen_matches(name: str, layout: Layout, listen: str) -> str | None:
    """A warning when the layout says this node is reached at another address than the
    one it listens on (other nodes would not find it)."""
    node = layout.node(name)
    if node is None:
        return None
    try:
        want_host, want_port = parse_address(node.cluster)
        host, _, port = listen.rpartition(":")
        if int(port) != want_port or host.strip("[]") not in (want_host, "0.0.0.0", "::"):
            return (
                f"node {name} listens on {listen} but the layout says {node.cluster}: other "
                "nodes will try the layout's address"
            )
    except (ValueError, LayoutError):
        return None
    return None
