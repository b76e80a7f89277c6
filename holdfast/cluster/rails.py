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
        record. Objects below policy and bytes to move need placement across nodes (not
        built yet): they are reported as unknown rather than guessed."""
        before, after = self.current, self.after
        return {
            "nodes_removed": self.removed,
            "nodes_before": len(before.members),
            "nodes_after": len(after.members),
            "active_after": len(after.active),
            "zones_after": sorted(after.zones),
            "capacity_before": before.capacity,
            "capacity_after": after.capacity,
            "copies_needed": self.needed_nodes[0],
            "objects_below_policy": None,
            "bytes_to_move": None,
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


RULES: list[Rule] = [one_node_per_step, enough_nodes, enough_zones]


def check(plan: Plan, rules: list[Rule] | None = None) -> list[Refusal]:
    out = []
    for rule in RULES if rules is None else rules:
        refusal = rule(plan)
        if refusal is not None:
            out.append(refusal)
    return out


def members(nodes: tuple[NodeRecord, ...]) -> list[str]:
    return [n.name for n in nodes if n.state in MEMBER_STATES]
