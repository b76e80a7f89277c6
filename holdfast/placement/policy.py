"""Placement: which stores receive a new blob.

Kept apart from the index (which records where blobs are) and from the stores (which hold
bytes), as in DESIGN.md. It checks free capacity before choosing, and fails fast with a clear
error when nothing fits: it never waits or retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class NoCapacity(Exception):
    """No set of stores can take the blob; the front end answers InsufficientStorage."""


class CapacityStore(Protocol):
    store_id: str

    def free_bytes(self) -> int: ...


@dataclass(frozen=True)
class Policy:
    copies: int = 1
    min_copies: int = 1  # the write quorum: fewer durable copies than this fails the write


def choose_stores(
    stores: Sequence[CapacityStore], policy: Policy, size_hint: int
) -> list[CapacityStore]:
    """The stores with the most free space that can each hold ``size_hint`` more bytes.
    Returns at most ``policy.copies`` and at least ``policy.min_copies`` stores."""
    fitting = [(s.free_bytes(), s) for s in stores]
    fitting = [(free, s) for free, s in fitting if free > size_hint]
    if len(fitting) < policy.min_copies:
        raise NoCapacity(
            f"need {policy.min_copies} drive(s) with {size_hint} bytes free, "
            f"{len(fitting)} of {len(stores)} have it"
        )
    fitting.sort(key=lambda fs: fs[0], reverse=True)
    return [s for _, s in fitting[: policy.copies]]
