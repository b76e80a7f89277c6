"""Safety rails for layout changes (issue #13, S3 2017: one mistyped playbook input removed
far more servers than intended).

``holdfast cluster layout apply`` builds a :class:`Plan` (the current layout, the staged
one, their difference, the blast radius), prints it, then runs every rule of :data:`RULES`
on it. A rule returns a :class:`Refusal` naming itself, why, and what to do instead; any
refusal stops the apply unless it is forced (``--force`` and the cluster's name typed).
A new rule (free headroom floor, share of capacity, interval since the last removal) is a
function added to :data:`RULES`; the plan is where it finds what it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from holdfast.cluster.layout import MEMBER_STATES, Layout, diff
from holdfast.index.records import NodeRecord

DEFAULT_CLUSTER_COPIES = 2  # a cluster's default policy: 2 copies on 2 distinct nodes


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
    def needed_nodes(self) -> tuple[int, str]:
        """The most copies any policy asks for (each on its own node), and whose policy."""
        need, who = self.default_copies, "the cluster's default policy"
        for bucket, copies in sorted(self.policy_copies.items()):
            if copies > need:
                need, who = copies, f"bucket {bucket!r}'s policy"
        return need, who

    def blast_radius(self) -> dict:
        """What the change takes away, shown before anything is done and kept in the audit
        record: nodes, capacity, zones, and from the index what the removed nodes hold
        (objects that lose copies, objects left with none, bytes that must move)."""
        before, after = self.current, self.after
        copies = self.copies or {}
        return {
            "nodes_removed": self.removed,
            "nodes_before": len(before.members),
            "nodes_after": len(after.members),
            "active_after": len(after.active),
            "zones_after": sorted(after.zones),
            "capacity_before": before.capacity,
            "capacity_after": after.capacity,
            "copies_needed": self.needed_nodes[0],
            "objects_losing_copies": copies.get("objects_losing_copies"),
            "objects_without_copies": copies.get("objects_without_copies"),
            "bytes_to_move": copies.get("bytes_to_move"),
            "scan_complete": copies.get("complete"),
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
    if not plan.removed:
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


RULES: list[Rule] = [one_node_per_step, enough_nodes, enough_zones, no_last_copy]


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
