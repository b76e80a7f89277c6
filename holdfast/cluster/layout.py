"""The layout: which nodes make the cluster, where they are, and in which state.

It is authoritative and lives in the index engine (holdfast/index/base.py, "the cluster
layout"): a version number and the nodes. Operators change it in two steps, as in Garage:
``holdfast cluster node add|remove`` stage a change, ``holdfast cluster layout apply``
applies it as a compare-and-set on the version. Heartbeats never change it (liveness is a
hint, holdfast/cluster/liveness.py).

A removed node stays in the layout with state "removed": the history shows it, and its
certificate is refused from then on (:meth:`Layout.name_allowed`).

This module is pure: the layout as a value, its differences and staging edits. The layers
above read a :class:`Layout` (``layout.nodes``, ``layout.version``, ``layout.active``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from holdfast.index.records import NODE_STATES, LayoutRecord, NodeRecord, StagedLayout

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MEMBER_STATES = ("active", "draining")


class LayoutError(ValueError):
    """A layout command that cannot be done: the message names the problem and what to
    do, in one line."""


@dataclass(frozen=True)
class Layout:
    """One version of the layout."""

    version: int
    nodes: tuple[NodeRecord, ...]

    @classmethod
    def empty(cls) -> Layout:
        return cls(0, ())

    @classmethod
    def of(cls, record: LayoutRecord | None) -> Layout:
        return cls.empty() if record is None else cls(record.version, record.nodes)

    def node(self, name: str) -> NodeRecord | None:
        for n in self.nodes:
            if n.name == name:
                return n
        return None

    @property
    def members(self) -> tuple[NodeRecord, ...]:
        """Nodes that are part of the cluster (active or draining), by name."""
        return tuple(sorted((n for n in self.nodes if n.state in MEMBER_STATES), key=_name))

    @property
    def active(self) -> tuple[NodeRecord, ...]:
        """Nodes that take new copies."""
        return tuple(n for n in self.members if n.state == "active")

    @property
    def capacity(self) -> int:
        return sum(n.capacity for n in self.active)

    @property
    def zones(self) -> set[str]:
        return {n.zone for n in self.active if n.zone}

    # -- the net layer's view (holdfast/net/tls.py Peers) -----------------------------------

    def name_allowed(self, name: str) -> bool:
        node = self.node(name)
        return node is not None and node.state in MEMBER_STATES

    def address(self, name: str) -> tuple[str, int] | None:
        node = self.node(name)
        if node is None or node.state not in MEMBER_STATES:
            return None
        return parse_address(node.cluster)


def _name(n: NodeRecord) -> str:
    return n.name


def parse_address(text: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 in brackets) -> (host, port); LayoutError otherwise."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise LayoutError(f"{text!r} is not HOST:PORT (e.g. 10.0.0.2:7400)")
    return host, int(port)


def parse_capacity(text: str) -> int:
    """Bytes from "500G", "2T", "1.5TiB", "1000000": LayoutError otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)\s*", text.lower())
    if not m:
        if re.fullmatch(r"\s*-.*", text):
            raise LayoutError(f"capacity must be above 0 bytes, got {text!r}")
        raise LayoutError(f"capacity {text!r} is not a size (e.g. 500G, 2T, 1000000000)")
    scale = 1024 ** "_kmgtp".index(m.group(2) or "_") if m.group(2) else 1
    return int(float(m.group(1)) * scale)


# -- staging edits (pure: a node tuple in, a node tuple out) --------------------------------


def add_node(nodes: tuple[NodeRecord, ...], node: NodeRecord) -> tuple[NodeRecord, ...]:
    if not NAME_RE.match(node.name):
        raise LayoutError(
            f"node name {node.name!r} is not valid: lower-case letters, digits and '-', "
            "as in its certificate"
        )
    if node.state not in NODE_STATES:
        raise LayoutError(f"state {node.state!r} is not one of {', '.join(NODE_STATES)}")
    parse_address(node.cluster)
    if node.capacity < 0:
        raise LayoutError("capacity must be >= 0")
    old = next((n for n in nodes if n.name == node.name), None)
    if old is not None and old.state in MEMBER_STATES:
        raise LayoutError(
            f"node {node.name!r} is already in the layout ({old.state}); remove it first "
            "or pick another name"
        )
    for n in nodes:
        if n.name != node.name and n.state in MEMBER_STATES and n.cluster == node.cluster:
            raise LayoutError(f"address {node.cluster} is already node {n.name!r}'s")
    return tuple(sorted([n for n in nodes if n.name != node.name] + [node], key=_name))


def remove_node(nodes: tuple[NodeRecord, ...], name: str) -> tuple[NodeRecord, ...]:
    old = next((n for n in nodes if n.name == name), None)
    if old is None or old.state not in MEMBER_STATES:
        known = ", ".join(n.name for n in nodes if n.state in MEMBER_STATES) or "none"
        raise LayoutError(
            f"no node {name!r} in the layout (nodes: {known}); see 'holdfast cluster layout show'"
        )
    return tuple(replace(n, state="removed") if n.name == name else n for n in nodes)


def drain_node(nodes: tuple[NodeRecord, ...], name: str) -> tuple[NodeRecord, ...]:
    """The node stays a member (its copies are still read) but takes no new copies, and
    the leading node moves its copies elsewhere at the drain rate; then remove it."""
    old = next((n for n in nodes if n.name == name), None)
    if old is None or old.state != "active":
        known = ", ".join(n.name for n in nodes if n.state == "active") or "none"
        raise LayoutError(
            f"no active node {name!r} to drain (active: {known}); see 'holdfast cluster "
            "layout show'"
        )
    return tuple(replace(n, state="draining") if n.name == name else n for n in nodes)


def set_capacity(nodes: tuple[NodeRecord, ...], name: str, capacity: int) -> tuple[NodeRecord, ...]:
    """A member's new capacity (its weight: once applied, a rebalance moves copies so that
    each node holds its share, holdfast/workers/rebalance.py)."""
    old = next((n for n in nodes if n.name == name), None)
    if old is None or old.state not in MEMBER_STATES:
        known = ", ".join(n.name for n in nodes if n.state in MEMBER_STATES) or "none"
        raise LayoutError(
            f"no node {name!r} in the layout (nodes: {known}); see 'holdfast cluster layout show'"
        )
    check_capacity(capacity)
    return tuple(replace(n, capacity=capacity) if n.name == name else n for n in nodes)


def check_capacity(capacity: int) -> int:
    """A capacity an operator states must be above 0 (leaving it out leaves it unset)."""
    if capacity <= 0:
        raise LayoutError(
            f"capacity must be above 0 bytes, got {capacity} (e.g. 500G, 2T; leave --capacity "
            "out to leave it unset)"
        )
    return capacity


def staged_nodes(current: Layout, staged: StagedLayout | None) -> tuple[NodeRecord, ...]:
    """What the next staging edit starts from: the staged nodes, else the current ones."""
    return staged.nodes if staged is not None else current.nodes


# -- differences ----------------------------------------------------------------------------


def diff(before: tuple[NodeRecord, ...], after: tuple[NodeRecord, ...]) -> list[dict]:
    """[{"node", "change": added|removed|changed, "before", "after"}], by node name."""
    old = {n.name: n for n in before}
    new = {n.name: n for n in after}
    out: list[dict] = []
    for name in sorted(old.keys() | new.keys()):
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        was = a is not None and a.state in MEMBER_STATES
        now = b is not None and b.state in MEMBER_STATES
        if now and not was:
            change = "added"
        elif was and not now:
            change = "removed"
        elif not was and not now:
            continue
        else:
            change = "changed"
        out.append(
            {
                "node": name,
                "change": change,
                "before": a.to_json() if a is not None else None,
                "after": b.to_json() if b is not None else None,
            }
        )
    return out


def describe_change(change: dict) -> str:
    """One line per change, for the terminal."""
    name, kind = change["node"], change["change"]
    after = change["after"] or {}
    if kind == "added":
        zone = f" zone {after['zone']}" if after.get("zone") else ""
        cap = f" capacity {after['capacity']}" if after.get("capacity") else ""
        return f"+ {name}  s3 {after['s3'] or '-'}  cluster {after['cluster']}{zone}{cap}"
    if kind == "removed":
        return f"- {name}  (was {change['before']['state']}, {change['before']['cluster']})"
    before = change["before"]
    fields = [f"{k} {before[k]} -> {after[k]}" for k in after if before.get(k) != after[k]]
    return f"~ {name}  " + ", ".join(fields)
