"""The stores of a whole cluster as one node's S3 workers see them: this node's drives
and, as :class:`holdfast.stores.node.NodeStore`, every drive of every other member of the
layout, for placement (PUT), reads (GET, repair's sources) and deletes (GC).

Everything placement needs comes from the cluster agent's published picture
(:class:`holdfast.cluster.state.LivenessView`): which peers are up and the free space of
their drives, as carried by heartbeats. Choosing targets therefore makes no network call;
a peer judged down is not writable and its copies are owed (hinted handoff: a repair row
for its drive, made by that node's own repair worker when it is back, reading from the
copies on the other nodes).

The remote drives are learnt from heartbeats (each peer lists its stores) and kept once
seen, so a peer that dies stays known as the target of the copies it is owed; a node that
leaves the layout is forgotten.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

from holdfast.cluster.agent import LayoutView
from holdfast.cluster.layout import Layout
from holdfast.cluster.state import LivenessView
from holdfast.net.client import NodeClient
from holdfast.stores.base import Store
from holdfast.stores.node import NodeStore
from holdfast.stores.registry import StoreMap

log = logging.getLogger("holdfast.cluster")

SYNC_SECONDS = 1.0


class ClusterStores(Mapping[str, Store]):
    """This node's StoreMap plus the other nodes' drives; see the module docstring."""

    def __init__(
        self,
        local: StoreMap,
        local_writable: Callable[[str], bool],
        view: LivenessView,
        make_client: Callable[[LayoutView], NodeClient],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.local = local
        self.node = local.node
        self.local_writable = local_writable
        self.view = view
        self.layout_view = LayoutView(Layout.empty())
        self.client = make_client(self.layout_view)
        self.clock = clock
        self._remote: dict[str, NodeStore] = {}
        self._zones: dict[str, str] = {}
        self._draining: set[str] = set()
        self._synced: float | None = None
        self._lock = threading.Lock()

    # -- following the agent's picture ------------------------------------------------------

    def sync(self, force: bool = False) -> None:
        now = self.clock()
        if not force and self._synced is not None and now - self._synced < SYNC_SECONDS:
            return
        with self._lock:
            self._synced = now
            state = self.view.state() or {}
            layout = self.view.layout
            if layout.version and layout.version != self.layout_view.layout.version:
                self.layout_view.layout = layout
            members = {n.name: n for n in self.layout_view.layout.members}
            self._zones = {name: n.zone for name, n in members.items()}
            self._draining = {name for name, n in members.items() if n.state == "draining"}
            remote = {sid: s for sid, s in self._remote.items() if s.node in members}
            for peer, info in (state.get("peers") or {}).items():
                if peer == self.node or peer not in members:
                    continue
                for sid, entry in ((info or {}).get("stores") or {}).items():
                    node, _, drive = sid.rpartition("/")
                    if node != peer:
                        continue
                    store = remote.get(sid)
                    if store is None:
                        store = remote[sid] = NodeStore(peer, drive, self.client)
                        log.info("remote store %s known", sid)
                    if entry.get("ok") and "free" in entry:
                        # Heartbeat news: free_bytes() below answers from it, no call.
                        store.note_space(int(entry["free"]), 0)
            self._remote = remote

    # -- the questions the data paths ask ---------------------------------------------------

    def writable(self, store_id: str) -> bool:
        """Whether new copies may go there: not on a node being drained (its copies are
        moving off it), nor on a drive or peer that is down."""
        self.sync()
        if store_id.partition("/")[0] in self._draining:
            return False
        if store_id in self.local:
            return self.local_writable(store_id)
        store = self._remote.get(store_id)
        if store is None or not self.view.alive(store.node):
            return False
        return self.view.free_space(store_id) is not None

    def draining(self) -> set[str]:
        """Nodes the layout has in state "draining"."""
        self.sync()
        return set(self._draining)

    def is_local(self, store_id: str) -> bool:
        """A drive of this node: placement gives it a copy first (no network hop)."""
        return store_id in self.local

    def zone_of(self, node: str) -> str:
        return self._zones.get(node, "")

    def read_rank(self, store_ids: Sequence[str]) -> list[str]:
        """``store_ids`` as the local drives ranked them, with copies on peers that are up
        ahead of copies on peers judged down (a down peer costs connection attempts), or
        that this process just failed to connect to (heartbeats take 3 s and more to judge
        a dead node down; meanwhile every read would try it first)."""
        self.sync()

        def rank(sid: str) -> int:
            if sid in self.local:
                return 0
            store = self._remote.get(sid)
            if store is None or self.client.unreachable(store.node):
                return 1
            return 0 if self.view.alive(store.node) else 1

        return sorted(store_ids, key=rank)

    def resolve(self, store_id: str) -> str:
        return self.local.resolve(store_id)

    def aliases(self, store_ids) -> list[str]:  # type: ignore[no-untyped-def]
        return self.local.aliases(store_ids)

    @property
    def first(self) -> Store | None:
        return self.local.first

    # -- Mapping ------------------------------------------------------------------------------

    def __getitem__(self, store_id: str) -> Store:
        if store_id in self.local:
            return self.local[store_id]
        self.sync()
        return self._remote[store_id]

    def __contains__(self, store_id: object) -> bool:
        if store_id in self.local:
            return True
        self.sync()
        return store_id in self._remote

    def __iter__(self) -> Iterator[str]:
        self.sync()
        yield from self.local
        yield from list(self._remote)

    def __len__(self) -> int:
        self.sync()
        return len(self.local) + len(self._remote)

    def close(self) -> None:
        self.client.close()
