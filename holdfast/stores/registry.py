"""Store ids that are unique across the cluster, and this node's stores by id.

A store's id is its node's name and its drive's name: ``node1/d0``. The node's name comes
from ``--node-name``; without it, from the index (the name its drives were registered
under), and ``local`` for a node that never had one.

**Ids recorded before ids were qualified.** A data directory written by an earlier Holdfast
names its drives ``d0``, ``d1``, … in the index: in object and part segments, the drives
table, the repair queue and the GC queue. Nothing is rewritten: rewriting every object's
segments would be a full scan at start-up (DESIGN.md forbids one) and the small tables
would have to move in step with it. Instead a bare id is *read* as a drive of this node
(:meth:`StoreMap.resolve`), the one place that mapping is made; every id written from now
on is qualified. That is exact for such an index, which only ever had one node. (An index
with bare ids that is to be shared by a cluster must first have them qualified; that
migration belongs to the cluster work and is not written yet.)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence

from holdfast.stores.base import Store, qualify_store_id

DEFAULT_NODE_NAME = "local"
NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


class WrongNode(ValueError):
    """A drive is registered as another node's: starting would hide every copy on it."""


def check_node_name(name: str) -> str:
    if not NODE_NAME.fullmatch(name):
        raise ValueError(
            f"not a node name: {name!r} (1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit)"
        )
    return name


def is_qualified(store_id: str) -> bool:
    return "/" in store_id


def resolve_node_name(
    wanted: str | None, identities: Sequence[str | None], registered: Mapping[str, str]
) -> str:
    """This node's name. ``identities`` are the uuids on this node's drives (None where a
    drive is unreadable), ``registered`` the index's drives (store id -> uuid). A drive
    registered under a qualified id names its node; ``wanted`` (``--node-name``) must
    agree with it, or WrongNode. Without ``wanted``: that name, else ``local``."""
    by_uuid = {u: sid for sid, u in registered.items()}
    recorded: set[str] = set()
    for found in identities:
        sid = by_uuid.get(found) if found is not None else None
        if sid is not None and is_qualified(sid):
            recorded.add(sid.rpartition("/")[0])
    if len(recorded) > 1:
        raise WrongNode(
            f"this node's drives are registered under several node names ({sorted(recorded)})"
        )
    if wanted:
        if recorded and wanted not in recorded:
            (name,) = recorded
            raise WrongNode(
                f"these drives belong to node {name!r}, not {wanted!r}: start with "
                f"--node-name {name} (renaming a node is not supported yet)"
            )
        return wanted
    return next(iter(recorded), DEFAULT_NODE_NAME)


class StoreMap(Mapping[str, Store]):
    """This node's stores by id. Looking up a bare id (``d0``, recorded before ids were
    qualified, see the module docstring) finds this node's drive of that name."""

    def __init__(self, stores: Iterable[Store], node: str | None = None) -> None:
        self._by_id = {s.store_id: s for s in stores}
        self.node = node

    def replace(self, stores: Iterable[Store]) -> None:
        """Swap in a new set of stores (a back-end added or removed while serving). The
        dict is replaced, never mutated, so a request iterating the old one is unharmed."""
        self._by_id = {s.store_id: s for s in stores}

    def resolve(self, store_id: str) -> str:
        """The cluster-unique id for an id read from the index."""
        if self.node is None or is_qualified(store_id):
            return store_id
        return qualify_store_id(self.node, store_id)

    def aliases(self, store_ids: Iterable[str]) -> list[str]:
        """``store_ids`` and, for this node's, the bare ids older rows may carry: what an
        index query by store id must ask for."""
        out = []
        for sid in store_ids:
            out.append(sid)
            node, _, drive = sid.rpartition("/")
            if node and node == self.node:
                out.append(drive)
        return out

    def __getitem__(self, store_id: str) -> Store:
        return self._by_id[self.resolve(store_id)]

    def __contains__(self, store_id: object) -> bool:
        return isinstance(store_id, str) and self.resolve(store_id) in self._by_id

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    @property
    def first(self) -> Store | None:
        """The first store (for a node: the drive that also holds the index)."""
        return next(iter(self._by_id.values()), None)
