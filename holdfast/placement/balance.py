"""Rebalancing: which copies a layout change requires to move, and where (pure).

After a node is added or a capacity changed, each active node's *target* is its share of
the bytes the nodes hold (every copy of every object and noncurrent version), in proportion
to its capacity; nodes without a stated capacity make every weight equal. A node holding
more than its target by more than the tolerance band (a share of its target) is a *source*:
it gives its excess over the target, and nothing more. Nodes below their target *take* up to
their deficit. What must move is then the sum of the sources' excess: the least any
balancing can move (a copy that moves off one over-full node lands on one under-full node),
and the budget the plan keeps to, never a reshuffle.

The plan is made while walking the index (a streaming greedy): for each copy on a source,
:meth:`Balance.moves` picks the receiver with the most room left that the object's policy
still allows (no node holds two copies of a blob; where copies spread over zones, no zone
gets a second one), and only when the copy fits both the source's remaining excess and the
receiver's remaining deficit. So the bytes moved never exceed the planned minimum; what is
left unbalanced is less than one copy per pair of nodes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

from holdfast.placement.policy import node_of

DEFAULT_TOLERANCE_PERCENT = 5.0


def weights(nodes: Iterable[tuple[str, int]]) -> dict[str, float]:
    """(name, capacity) of the active nodes -> weight. Capacities when every node states
    one (> 0), else equal weights (a node without a capacity cannot be given a share of
    the others')."""
    pairs = list(nodes)
    if pairs and all(cap > 0 for _, cap in pairs):
        return {name: float(cap) for name, cap in pairs}
    return {name: 1.0 for name, _ in pairs}


def used_bytes(rows: Iterable, nodes: Iterable[str], into: dict[str, int] | None = None) -> dict:
    """Add the bytes each of ``nodes`` holds in ``rows`` (object or version records: their
    segments' copies on node drives) to ``into``; inline data is in the index, not counted."""
    out = into if into is not None else {}
    wanted = set(nodes)
    for n in wanted:
        out.setdefault(n, 0)
    for row in rows:
        for seg in row.segments:
            for sid in seg.stores:
                n = node_of(sid)
                if n in wanted:
                    out[n] += seg.size
    return out


@dataclass
class Balance:
    """One pass's plan: per node its target bytes, what it still gives (sources) and still
    takes (receivers). Saved as JSON with the pass's state, so a restart keeps the budget."""

    target: dict[str, int] = field(default_factory=dict)
    give: dict[str, int] = field(default_factory=dict)
    take: dict[str, int] = field(default_factory=dict)
    planned: int = 0  # bytes the plan moves at most: the sources' excess, at the start

    @classmethod
    def plan(
        cls,
        used: Mapping[str, int],
        weight: Mapping[str, float],
        tolerance_percent: float = DEFAULT_TOLERANCE_PERCENT,
    ) -> Balance:
        """Targets from ``used`` (bytes per node; nodes absent from ``weight`` are not
        balanced: removed or draining) and ``weight`` (active nodes)."""
        total_weight = sum(weight.values())
        total = sum(used.get(n, 0) for n in weight)
        out = cls()
        if total_weight <= 0 or total <= 0:
            return out
        band = max(0.0, tolerance_percent) / 100.0
        for n, w in sorted(weight.items()):
            target = int(total * w / total_weight)
            have = used.get(n, 0)
            out.target[n] = target
            if have > target * (1 + band) and have > target:
                out.give[n] = have - target
            elif have < target:
                out.take[n] = target - have
        # The sources' excess is what must move; the receivers can take all of it (the
        # sum of excess over all nodes equals the sum of deficits; within-band nodes keep
        # theirs, so the deficits are never smaller than what the sources give).
        out.planned = sum(out.give.values())
        return out

    @property
    def remaining(self) -> int:
        return sum(self.give.values())

    @property
    def settled(self) -> bool:
        """Nothing more can move in this pass: no source gives, or no receiver takes."""
        return self.remaining <= 0 or not any(v > 0 for v in self.take.values())

    def moves(
        self,
        stores: Sequence[str],
        size: int,
        zone_of: Callable[[str], str] | None = None,
    ) -> list[tuple[str, str]]:
        """The copies of one blob (its ``stores``, ``size`` bytes each) to move now: a list
        of (store id to move off, node to move to), the budget taken. Empty when nothing
        fits. With ``zone_of``, copies spread over zones: the receiver's zone must not hold
        another copy of the blob."""
        out: list[tuple[str, str]] = []
        holders = [node_of(s) for s in stores]
        for i, sid in enumerate(stores):
            src = holders[i]
            if size <= 0 or self.give.get(src, 0) < size:
                continue
            others = [h for j, h in enumerate(holders) if j != i]
            dest = self._receiver(size, others, zone_of)
            if dest is None:
                continue
            self.give[src] -= size
            self.take[dest] -= size
            holders[i] = dest
            out.append((sid, dest))
        return out

    def _receiver(
        self, size: int, others: list[str], zone_of: Callable[[str], str] | None
    ) -> str | None:
        taken_zones = {zone_of(h) or h for h in others} if zone_of is not None else set()
        best, room = None, -1
        for n, left in sorted(self.take.items()):
            if left < size or n in others or left <= room:
                continue
            if zone_of is not None and (zone_of(n) or n) in taken_zones:
                continue
            best, room = n, left
        return best

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: Mapping | None) -> Balance:
        if not obj:
            return cls()
        return cls(
            target={str(k): int(v) for k, v in (obj.get("target") or {}).items()},
            give={str(k): int(v) for k, v in (obj.get("give") or {}).items()},
            take={str(k): int(v) for k, v in (obj.get("take") or {}).items()},
            planned=int(obj.get("planned") or 0),
        )


def minimum_to_move(
    used: Mapping[str, int],
    weight: Mapping[str, float],
    tolerance_percent: float = DEFAULT_TOLERANCE_PERCENT,
) -> int:
    """The bytes a layout with these weights requires to move (the blast radius's figure)."""
    return Balance.plan(used, weight, tolerance_percent).planned
