"""Placement: which stores receive a new blob, and how many must hold it before a write is
acknowledged.

Kept apart from the index (which records where blobs are) and from the stores (which hold
bytes), as in DESIGN.md. It checks free capacity before choosing, and fails fast with a clear
error when nothing fits: it never waits or retries. The same code will place copies on other
nodes and S3 back-ends once those are stores too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("holdfast.placement")

POLICY_REFRESH_SECONDS = 2.0
SPREADS = ("drive", "node", "zone")


def node_of(store_id: str) -> str:
    """The node part of a cluster-unique store id (``n2/d0`` -> ``n2``)."""
    return store_id.rpartition("/")[0]


def default_spread(zones: int) -> str:
    """A cluster's default: distinct zones when the layout sets at least two, else nodes."""
    return "zone" if zones >= 2 else "node"


class NoCapacity(Exception):
    """No set of stores can take the blob now.

    ``full`` is True when drives are up but lack space (the front end answers
    InsufficientStorage, 507); False when too few drives are up at all (503)."""

    def __init__(self, message: str, full: bool) -> None:
        super().__init__(message)
        self.full = full


class CapacityStore(Protocol):
    store_id: str

    def free_bytes(self) -> int: ...


@dataclass(frozen=True)
class Policy:
    """``copies`` on distinct drives; a write is acknowledged once ``min_copies`` of them
    are durable (the write quorum), the rest being queued for repair."""

    copies: int = 1
    min_copies: int = 1
    # Copies go to distinct drives ("drive"), nodes ("node") or zones ("zone"). A cluster
    # node's default is "node" (or "zone" when the layout has zones): see default_spread.
    spread: str = "drive"

    def __post_init__(self) -> None:
        if self.copies < 1 or not 1 <= self.min_copies <= self.copies:
            raise ValueError(f"need 1 <= min_copies <= copies, got {self}")
        if self.spread not in SPREADS:
            raise ValueError(f"spread must be one of {SPREADS}, got {self.spread!r}")

    def fit(self, stores: int) -> Policy:
        """The policy as this node can honour it: no more copies than drives."""
        copies = max(1, min(self.copies, stores))
        return Policy(copies, min(self.min_copies, copies), self.spread)


def default_policy(drives: int, copies: int = 0, min_copies: int = 1) -> Policy:
    """The server's policy: ``copies`` 0 means 2 with two or more drives, else 1."""
    copies = copies or (2 if drives >= 2 else 1)
    return Policy(copies, min(min_copies, copies)).fit(drives)


@dataclass(frozen=True)
class Choice:
    """Where a new blob goes: ``targets`` are written now; ``deferred`` are owed a copy
    (down, read-only or full right now) and get a repair queued with the commit."""

    targets: list
    deferred: tuple[str, ...]


def choose_stores(
    stores: Sequence[CapacityStore],
    policy: Policy,
    size_hint: int,
    writable: Callable[[str], bool] = lambda _sid: True,
    zone_of: Callable[[str], str] | None = None,
) -> Choice:
    """The writable stores with the most free space that can each hold ``size_hint`` more
    bytes, at most ``policy.copies`` and at most one per failure domain of
    ``policy.spread`` (a drive, a node, or a zone: ``zone_of`` maps a node's name to its
    zone); raises NoCapacity when fewer than ``policy.min_copies`` qualify. Copies the
    policy wants beyond those go to ``deferred``, on domains not chosen yet (a node that is
    down gets its copy later, by repair: hinted handoff)."""
    domain = _domain(policy.spread, zone_of)
    up = [s for s in stores if writable(s.store_id)]
    fitting = []
    for s in up:
        try:
            free = s.free_bytes()
        except OSError:
            continue
        if free > size_hint:
            fitting.append((free, s))
    fitting.sort(key=lambda fs: fs[0], reverse=True)
    targets, taken = [], set()
    for _, s in fitting:
        d = domain(s.store_id)
        if d in taken or len(targets) >= policy.copies:
            continue
        targets.append(s)
        taken.add(d)
    if len(targets) < policy.min_copies:
        domains = {domain(s.store_id) for s in up}
        raise NoCapacity(
            f"need {policy.min_copies} drive(s) on distinct {policy.spread}s with "
            f"{size_hint} bytes free: {len(up)} of {len(stores)} drive(s) up "
            f"({len(domains)} {policy.spread}s), {len(fitting)} with room",
            full=len(domains) >= policy.min_copies,
        )
    deferred: list[str] = []
    for s in stores:
        d = domain(s.store_id)
        if len(targets) + len(deferred) >= policy.copies:
            break
        if d not in taken:
            deferred.append(s.store_id)
            taken.add(d)
    return Choice(targets, tuple(deferred))


def _domain(spread: str, zone_of: Callable[[str], str] | None) -> Callable[[str], str]:
    if spread == "drive":
        return lambda sid: sid
    if spread == "zone" and zone_of is not None:
        return lambda sid: zone_of(node_of(sid)) or node_of(sid)
    return node_of


class Policies:
    """The server's policy and the per-bucket overrides, held in memory so a PUT never
    reads the index for them; ``refresh`` reloads the overrides (the background monitor
    calls it every couple of seconds, so ``holdfast bucket policy`` takes effect that fast)."""

    def __init__(self, default: Policy, drives: int) -> None:
        self.default = default
        self.drives = drives  # the most copies a policy can have (0: no limit)
        self._buckets: dict[str, Policy] = {}

    def policy_for(self, bucket: str | None) -> Policy:
        if bucket is None or not self._buckets:
            return self.default
        return self._buckets.get(bucket, self.default)

    def refresh(self, load: Callable[[], dict[str, tuple[int, int]]]) -> None:
        buckets = {}
        for name, (copies, min_copies) in load().items():
            try:
                policy = Policy(copies, min_copies, self.default.spread)
                buckets[name] = policy.fit(self.drives) if self.drives else policy
            except ValueError as e:
                log.error("ignoring the placement policy of bucket %s: %s", name, e)
        self._buckets = buckets

    def as_dict(self) -> dict:
        return {
            "default": {
                "copies": self.default.copies,
                "min_copies": self.default.min_copies,
                "spread": self.default.spread,
            },
            "buckets": {
                b: {"copies": p.copies, "min_copies": p.min_copies}
                for b, p in sorted(self._buckets.items())
            },
        }
