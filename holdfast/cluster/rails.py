"""Safety rails for layout changes (issue #13, S3 2017: one mistyped playbook input removed
far more servers than intended).

``holdfast cluster layout apply`` builds a :class:`Plan` (the current layout, the staged
one, their difference, the blast radius), prints it, then runs every rule of :data:`RULES`
on it. A rule returns a :class:`Refusal` naming itself, why, and what to do instead; any
refusal stops the apply unless it is forced (``--force`` and the cluster's name typed).
A rule is a function in :data:`RULES`; the plan is where it finds what it needs.

Three rules take a number the operator sets once per cluster (:data:`SETTINGS`, kept in the
index engine, shown and changed with ``holdfast cluster layout rules``): the free headroom
floor, the largest share of capacity one change may remove, and the least time between two
changes that remove capacity (Swift's ``min_part_hours``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from holdfast.cluster.layout import MEMBER_STATES, Layout, diff
from holdfast.index.records import NodeRecord
from holdfast.placement.balance import DEFAULT_TOLERANCE_PERCENT, Balance, weights

DEFAULT_CLUSTER_COPIES = 2  # a cluster's default policy: 2 copies on 2 distinct nodes
SETTINGS_META = "layout_rules"


def _percent(text: str) -> float:
    value = float(str(text).rstrip("%"))
    if not 0 <= value <= 100:
        raise ValueError(f"not a percentage from 0 to 100: {text!r}")
    return value


def _seconds(text: str) -> float:
    """Seconds, or a number with s, m, h or d."""
    text = str(text).strip()
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}.get(text[-1:].lower())
    value = float(text[:-1] if unit else text) * (unit or 1)
    if value < 0 or value != value:
        raise ValueError(f"not a duration: {text!r}")
    return value


def _rate(text: str) -> float:
    from holdfast.sizes import parse_size

    try:
        value = float(parse_size(str(text).removesuffix("/s")))
    except Exception as e:  # parse_size raises argparse's error type
        raise ValueError(str(e)) from None
    if value <= 0:
        raise ValueError(f"a rate must be above 0 bytes/s: {text!r}")
    return value


def _count(text: str) -> int:
    """A whole number of at least 1 (a cap of 0 would stop every transfer for good)."""
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ValueError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise ValueError(f"must be at least 1: {text!r}")
    return value


DEFAULT_TRANSFER_CAP = 8


@dataclass
class Settings:
    """The rules' numbers, one cluster-wide value each (0 turns a rule off)."""

    headroom_floor_percent: float = 10.0
    max_capacity_share_percent: float = 34.0
    min_interval_seconds: float = 3600.0
    # Not a rule: how fast a drain moves copies (bytes/s), for the whole cluster.
    drain_bytes_per_second: float = 32 * 1024**2
    # Not rules either: how fast a rebalance moves copies (bytes/s, the whole cluster), and
    # how far above its target share a node may be before a rebalance moves its copies.
    rebalance_bytes_per_second: float = 32 * 1024**2
    rebalance_tolerance_percent: float = DEFAULT_TOLERANCE_PERCENT
    # Not a rule: the most background transfers (repair, drain, rebalance copies) under
    # way at once in the whole cluster, held as leased slots in the index engine
    # (holdfast/workers/transfers.py).
    transfer_cap: int = DEFAULT_TRANSFER_CAP

    @classmethod
    def from_text(cls, text: str | None) -> Settings:
        if not text:
            return cls()
        known = {k: v for k, v in json.loads(text).items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def to_text(self) -> str:
        return json.dumps(asdict(self))


# (flag of 'holdfast cluster layout rules', Settings field, parser, help): the one place each
# number is declared.
SETTINGS: list[tuple[str, str, Callable[[str], float], str]] = [
    (
        "--headroom-floor",
        "headroom_floor_percent",
        _percent,
        "percent of the capacity that must stay free after a change that removes capacity",
    ),
    (
        "--max-capacity-share",
        "max_capacity_share_percent",
        _percent,
        "the most percent of the capacity one change may remove",
    ),
    (
        "--min-interval",
        "min_interval_seconds",
        _seconds,
        "the least time between two changes that remove capacity (e.g. 3600, 90m, 1h)",
    ),
    (
        "--drain-rate",
        "drain_bytes_per_second",
        _rate,
        "bytes per second a drain moves, for the whole cluster (e.g. 32M)",
    ),
    (
        "--rebalance-rate",
        "rebalance_bytes_per_second",
        _rate,
        "bytes per second a rebalance moves, for the whole cluster (e.g. 32M)",
    ),
    (
        "--rebalance-tolerance",
        "rebalance_tolerance_percent",
        _percent,
        "percent above its target share a node may hold before a rebalance moves copies off it",
    ),
    (
        "--transfer-cap",
        "transfer_cap",
        _count,
        "the most background transfers (repair, drain, rebalance) under way at once in the "
        "whole cluster, at least 1",
    ),
]


@dataclass(frozen=True)
class Refusal:
    rule: str
    why: str
    instead: str

    def line(self) -> str:
        return f"refused by rule {self.rule}: {self.why}; {self.instead}"


@dataclass
class Plan:
    current: Layout
    staged: tuple[NodeRecord, ...]
    policy_copies: dict[str, int] = field(default_factory=dict)  # bucket -> copies
    default_copies: int = DEFAULT_CLUSTER_COPIES
    # What the removed nodes hold, from the index (:func:`copies_on`); None: not scanned.
    copies: dict | None = None
    drained: dict | None = None  # the same tally for the nodes this change starts draining
    # Bytes each node holds ({"used": {node: bytes}, "complete"}), when the change rebalances.
    held: dict | None = None
    settings: Settings = field(default_factory=Settings)
    used_bytes: int | None = None  # every copy of every object, from the index's totals
    last_removal: tuple[int, float] | None = None  # (version, applied_at) of the last one
    now: float = field(default_factory=time.time)

    @property
    def changes(self) -> list[dict]:
        return diff(self.current.nodes, self.staged)

    @property
    def after(self) -> Layout:
        return Layout(self.current.version + 1, self.staged)

    @property
    def removed(self) -> list[str]:
        return [c["node"] for c in self.changes if c["change"] == "removed"]

    @property
    def draining(self) -> list[str]:
        """Nodes this change starts draining (their copies will move, none is lost)."""
        before = {n.name: n.state for n in self.current.nodes}
        return [
            n.name
            for n in self.staged
            if n.state == "draining" and before.get(n.name) != "draining"
        ]

    @property
    def rebalances(self) -> bool:
        """Whether the change adds an active node or changes an active node's capacity:
        then copies move to follow the new shares (holdfast/workers/rebalance.py)."""
        before = {n.name: n for n in self.current.active}
        for n in self.after.active:
            old = before.get(n.name)
            if old is None or old.capacity != n.capacity:
                return True
        return False

    def weights_after(self) -> dict[str, float]:
        return weights((n.name, n.capacity) for n in self.after.active)

    def rebalance_bytes(self) -> int | None:
        """The bytes the new layout requires to move: each node's excess over its share."""
        if not self.rebalances or self.held is None:
            return None
        tolerance = self.settings.rebalance_tolerance_percent
        return Balance.plan(self.held["used"], self.weights_after(), tolerance).planned

    @property
    def needed_nodes(self) -> tuple[int, str]:
        """The most copies any policy asks for (each on its own node), and whose policy."""
        need, who = self.default_copies, "the cluster's default policy"
        for bucket, copies in sorted(self.policy_copies.items()):
            if copies > need:
                need, who = copies, f"bucket {bucket!r}'s policy"
        return need, who

    @property
    def capacity_known(self) -> bool:
        """Whether every active node, before and after, has a capacity (else the capacity
        rules cannot judge and say nothing)."""
        nodes = self.current.active + self.after.active
        return bool(nodes) and all(n.capacity > 0 for n in nodes)

    @property
    def removes_capacity(self) -> bool:
        return bool(self.removed) or self.after.capacity < self.current.capacity

    def free_after(self) -> int | None:
        if self.used_bytes is None or not self.capacity_known:
            return None
        return self.after.capacity - self.used_bytes

    def blast_radius(self) -> dict:
        """What the change takes away, shown before anything is done and kept in the audit
        record: nodes, capacity, zones, and from the index what the removed nodes hold
        (objects that lose copies, objects left with none, bytes that must move)."""
        before, after = self.current, self.after
        copies = self.copies or {}
        moving = copies.get("bytes_to_move")
        if self.drained is not None:
            moving = (moving or 0) + (self.drained.get("bytes_to_move") or 0)
        rate = self.settings.drain_bytes_per_second
        rebalance = self.rebalance_bytes()
        rebalance_rate = self.settings.rebalance_bytes_per_second
        return {
            "nodes_removed": self.removed,
            "nodes_before": len(before.members),
            "nodes_after": len(after.members),
            "active_after": len(after.active),
            "zones_after": sorted(after.zones),
            "capacity_before": before.capacity,
            "capacity_after": after.capacity,
            "used_bytes": self.used_bytes,
            "free_after": self.free_after(),
            "copies_needed": self.needed_nodes[0],
            "objects_losing_copies": copies.get("objects_losing_copies"),
            "objects_without_copies": copies.get("objects_without_copies"),
            "bytes_to_move": moving,
            "scan_complete": copies.get("complete", (self.drained or {}).get("complete")),
            "nodes_draining": self.draining,
            "drain_bytes_per_second": rate,
            "seconds_at_drain_rate": round(moving / rate, 1) if moving and rate else None,
            "rebalances": self.rebalances,
            "bytes_to_rebalance": rebalance,
            "rebalance_bytes_per_second": rebalance_rate,
            "seconds_at_rebalance_rate": round(rebalance / rebalance_rate, 1)
            if rebalance is not None and rebalance_rate
            else None,
            "rebalance_scan_complete": (self.held or {}).get("complete"),
        }


Rule = Callable[[Plan], "Refusal | None"]


def one_node_per_step(plan: Plan) -> Refusal | None:
    removed = plan.removed
    if len(removed) <= 1:
        return None
    return Refusal(
        "one-node-per-step",
        f"this change removes {len(removed)} nodes ({', '.join(removed)}); at most one node "
        "may leave the cluster per apply",
        "run 'holdfast cluster layout revert', stage one 'holdfast cluster node remove NAME', "
        "apply it, and repeat once its data has moved",
    )


def enough_nodes(plan: Plan) -> Refusal | None:
    """Removing or draining a node must leave a node for every copy a policy asks for."""
    if not plan.removed and not plan.draining:
        return None
    need, who = plan.needed_nodes
    left = len(plan.after.active)
    if left >= need:
        return None
    return Refusal(
        "enough-nodes",
        f"after it {left} active node{'s' if left != 1 else ''} would remain, but {who} "
        f"needs {need} (one copy per node)",
        "add a node first, or lower that policy",
    )


def enough_zones(plan: Plan) -> Refusal | None:
    """When every node has a zone, copies go to distinct zones: as many zones as copies."""
    after = plan.after.active
    if not plan.removed or not after or any(not n.zone for n in after):
        return None
    need, who = plan.needed_nodes
    zones = len({n.zone for n in after})
    before = len(plan.current.zones)
    if zones >= need or zones >= before:
        return None
    return Refusal(
        "enough-zones",
        f"after it {zones} zone{'s' if zones != 1 else ''} would remain, but {who} needs "
        f"{need} (one copy per zone)",
        "add a node in another zone first",
    )


def no_last_copy(plan: Plan) -> Refusal | None:
    """Objects whose every copy is on the nodes removed would be lost."""
    lost = (plan.copies or {}).get("objects_without_copies") or 0
    if not lost:
        return None
    return Refusal(
        "no-last-copy",
        f"{lost} object{'s' if lost != 1 else ''} have every copy on "
        f"{', '.join(plan.removed)} and would be lost",
        "drain the node first (its data must be copied elsewhere), then remove it",
    )


def headroom_floor(plan: Plan) -> Refusal | None:
    """After a change that removes capacity, at least the floor's share must stay free
    (EBS, 2011: re-mirroring ran out of space). Capacities are the layout's; the bytes used
    are every copy the index counts, which would have to fit in what is left."""
    floor = plan.settings.headroom_floor_percent
    free = plan.free_after()
    if not floor or free is None or not plan.removes_capacity:
        return None
    capacity = plan.after.capacity
    percent = 100.0 * free / capacity if capacity > 0 else 0.0
    if percent >= floor:
        return None
    return Refusal(
        "headroom-floor",
        f"after it {percent:.1f}% of the capacity would be free ({plan.used_bytes} bytes "
        f"used of {capacity}), below the floor of {floor:g}%",
        "add capacity or delete data first, or lower the floor with 'holdfast cluster layout "
        "rules --headroom-floor'",
    )


def capacity_share(plan: Plan) -> Refusal | None:
    """One change may remove at most a set share of the capacity."""
    share = plan.settings.max_capacity_share_percent
    before, after = plan.current.capacity, plan.after.capacity
    if not share or not plan.capacity_known or after >= before or before <= 0:
        return None
    removed = 100.0 * (before - after) / before
    if removed <= share:
        return None
    return Refusal(
        "capacity-share",
        f"this change removes {removed:.1f}% of the capacity ({before} -> {after} bytes); at "
        f"most {share:g}% may go in one change",
        "remove less capacity per change, or raise the share with 'holdfast cluster layout "
        "rules --max-capacity-share'",
    )


def min_interval(plan: Plan) -> Refusal | None:
    """Changes that remove capacity come at least a set time apart, so each one's data has
    moved and been checked before the next (Swift's min_part_hours)."""
    interval = plan.settings.min_interval_seconds
    if not interval or plan.last_removal is None or not plan.removes_capacity:
        return None
    version, at = plan.last_removal
    waited = plan.now - at
    if waited >= interval:
        return None
    ready = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at + interval))
    return Refusal(
        "min-interval",
        f"layout version {version} removed capacity {waited:.0f}s ago; changes that remove "
        f"capacity must be {interval:g}s apart",
        f"wait until {ready}, or change the interval with 'holdfast cluster layout rules "
        "--min-interval'",
    )


def removed_capacity(blast: dict) -> bool:
    """Whether an applied change (its recorded blast radius) removed capacity."""
    before, after = blast.get("capacity_before") or 0, blast.get("capacity_after") or 0
    return bool(blast.get("nodes_removed")) or after < before


RULES: list[Rule] = [
    one_node_per_step,
    enough_nodes,
    enough_zones,
    no_last_copy,
    headroom_floor,
    capacity_share,
    min_interval,
]


def count_copies(objects, removed: set[str], into: dict) -> None:
    """Add ``objects``' copies on ``removed`` nodes to the tally ``into`` (pure)."""
    for obj in objects:
        losing = without = False
        for seg in obj.segments:
            if not seg.stores:
                continue  # inline: its bytes are in the index
            gone = [s for s in seg.stores if s.partition("/")[0] in removed and "/" in s]
            if gone:
                losing = True
                into["bytes_to_move"] += seg.size * len(gone)
                if len(gone) == len(seg.stores):
                    without = True
        into["objects_losing_copies"] += losing
        into["objects_without_copies"] += without


def check(plan: Plan, rules: list[Rule] | None = None) -> list[Refusal]:
    out = []
    for rule in RULES if rules is None else rules:
        refusal = rule(plan)
        if refusal is not None:
            out.append(refusal)
    return out


def members(nodes: tuple[NodeRecord, ...]) -> list[str]:
    return [n.name for n in nodes if n.state in MEMBER_STATES]
