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

    def __post_init__(self) -> None:
        if self.copies < 1 or not 1 <= self.min_copies <= self.copies:
            raise ValueError(f"need 1 <= min_copies <= copies, got {self}")

    def fit(self, stores: int) -> Policy:
        """The policy as this node can honour it: no more copies than drives."""
        copies = max(1, min(self.copies, stores))
        return Policy(copies, min(self.min_copies, copies))


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
) -> Choice:
    """The writable stores with the most free space that can each hold ``size_hint`` more
    bytes, at most ``policy.copies``; raises NoCapacity when fewer than ``policy.min_copies``
    qualify. Copies the policy wants beyond those go to ``deferred``."""
    up = [s for s in stores if writable(s.store_id)]
    fitting = []
    for s in up:
        try:
            free = s.free_bytes()
        except OSError:
            continue
        if free > size_hint:
            fitting.append((free, s))
    if len(fitting) < policy.min_copies:
        raise NoCapacity(
            f"need {policy.min_copies} drive(s) with {size_hint} bytes free: "
            f"{len(up)} of {len(stores)} drive(s) up, {len(fitting)} with room",
            full=len(up) >= policy.min_copies,
        )
    fitting.sort(key=lambda fs: fs[0], reverse=True)
    targets = [s for _, s in fitting[: policy.copies]]
    chosen = {s.store_id for s in targets}
    others = [s.store_id for s in stores if s.store_id not in chosen]
    return Choice(targets, tuple(others[: policy.copies - len(targets)]))


class Policies:
    """The server's policy and the per-bucket overrides, held in memory so a PUT never
    reads the index for them; ``refresh`` reloads the overrides (the background monitor
    calls it every couple of seconds, so ``holdfast bucket policy`` takes effect that fast)."""

    def __init__(self, default: Policy, drives: int) -> None:
        self.default = default
        self.drives = drives
        self._buckets: dict[str, Policy] = {}

    def policy_for(self, bucket: str | None) -> Policy:
        if bucket is None or not self._buckets:
            return self.default
        return self._buckets.get(bucket, self.default)

    def refresh(self, load: Callable[[], dict[str, tuple[int, int]]]) -> None:
        buckets = {}
        for name, (copies, min_copies) in load().items():
            try:
                buckets[name] = Policy(copies, min_copies).fit(self.drives)
            except ValueError as e:
                log.error("ignoring the placement policy of bucket %s: %s", name, e)
        self._buckets = buckets

    def as_dict(self) -> dict:
        return {
            "default": {"copies": self.default.copies, "min_copies": self.default.min_copies},
            "buckets": {
                b: {"copies": p.copies, "min_copies": p.min_copies}
                for b, p in sorted(self._buckets.items())
            },
        }
