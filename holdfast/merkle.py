"""Hash trees over a drive's blobs, for anti-entropy (EBS, 2011: a node that came back
re-mirrored whole volumes because it did not know what it had missed).

Two sides describe one drive: the index (the blobs whose segments name the drive) and the
drive itself (the blobs it holds). Each side builds the same tree over its set of
``(blob id, length)`` pairs, and the two trees are compared from the root down, only into
ranges whose digests differ, so two equal ranges cost one comparison and a drive that missed
N blobs is told about those N (plus their neighbours in the same leaf), not about everything.

The ranges follow the blob id, which is also how a drive lays its files out
(``blobs/<hour>/<last two hex digits>/<id>``): the root, then one range per finishing hour
(the id's first 8 hex digits), then 256 leaves per hour (its last two hex digits, uniformly
random). So the drive computes a leaf's digest from one directory, and an old hour, which no
longer changes, is compared with one digest.

A range's digest is the count of its items and the sum, modulo 2**128, of each item's 128-bit
BLAKE2b. A sum does not depend on the order items arrive in, so both sides build their
trees in one streaming pass (the index in key order, the drive in directory order) without
sorting or holding the items, and a parent's digest is the sum of its children's. This is a
set hash, not a defence against an adversary: the peers are authenticated by mutual TLS.

Lengths, not CRCs: a drive does not know its blobs' CRCs without reading every byte, which
is the scrubber's job (bounded, rate-limited, and already queueing repairs for damage).
A copy of the wrong length (truncated) differs here.

This module is pure: no I/O, so the descent can be tested on sets alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

MOD = 1 << 128
LEAVES_PER_HOUR = 256
EMPTY = "0-" + "0" * 32


def item_hash(blob_id: str, size: int) -> int:
    """The 128-bit hash of one ``(blob id, length)`` pair."""
    h = hashlib.blake2b(f"{blob_id}:{size}".encode(), digest_size=16, person=b"holdfast-ae")
    return int.from_bytes(h.digest(), "big")


def hour_of(blob_id: str) -> str:
    return blob_id[:8]


def leaf_of(blob_id: str) -> str:
    """The leaf within its hour: the id's last two hex digits (the drive's sub-directory)."""
    return blob_id[-2:]


def encode(count: int, total: int) -> str:
    """A digest as sent and compared: ``<count>-<sum as 32 hex digits>``."""
    return f"{count}-{total % MOD:032x}"


def decode(digest: str) -> tuple[int, int]:
    count, _, total = digest.partition("-")
    return int(count), int(total, 16)


def combine(digests: Iterable[str]) -> str:
    """The digest of a range made of the given ranges (their union)."""
    count = total = 0
    for d in digests:
        c, t = decode(d)
        count += c
        total += t
    return encode(count, total)


@dataclass
class Tree:
    """A set of ``(blob id, length)`` pairs, summed per leaf as they are added."""

    leaves: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    def add(self, blob_id: str, size: int) -> None:
        cell = self.leaves.setdefault(hour_of(blob_id), {}).setdefault(leaf_of(blob_id), [0, 0])
        cell[0] += 1
        cell[1] = (cell[1] + item_hash(blob_id, size)) % MOD

    @classmethod
    def of(cls, items: Iterable[tuple[str, int]]) -> Tree:
        tree = cls()
        for blob_id, size in items:
            tree.add(blob_id, size)
        return tree

    def subs(self, hour: str) -> dict[str, str]:
        """The digests of one hour's non-empty leaves."""
        return {sub: encode(c, t) for sub, (c, t) in sorted(self.leaves.get(hour, {}).items())}

    def hours(self) -> dict[str, str]:
        """The digests of the non-empty hours."""
        return {hour: combine(self.subs(hour).values()) for hour in sorted(self.leaves)}

    def root(self) -> str:
        return combine(self.hours().values())


def differing(mine: Mapping[str, str], theirs: Mapping[str, str]) -> list[str]:
    """The ranges, present on either side, whose digests differ (a range missing on one side
    counts as empty there)."""
    return sorted(k for k in set(mine) | set(theirs) if mine.get(k, EMPTY) != theirs.get(k, EMPTY))


@dataclass
class Descent:
    """What one comparison of two trees cost and found."""

    ranges_compared: int = 0
    hours_differing: list[str] = field(default_factory=list)
    leaves_differing: list[tuple[str, str]] = field(default_factory=list)


def descend(
    expected: Tree,
    held_hours: Callable[[], Mapping[str, str]],
    held_subs: Callable[[str], Mapping[str, str]],
) -> Descent:
    """Compare ``expected`` with the other side's tree, asking that side only for the
    levels it must: its hours' digests (from which its root is summed), and then the leaf
    digests of only the hours that differ. Returns the leaves that differ."""
    out = Descent()
    theirs = held_hours()
    out.ranges_compared += 1  # the root
    if expected.root() == combine(theirs.values()):
        return out
    mine = expected.hours()
    out.ranges_compared += len(set(mine) | set(theirs))
    out.hours_differing = differing(mine, theirs)
    for hour in out.hours_differing:
        my_subs, their_subs = expected.subs(hour), held_subs(hour)
        out.ranges_compared += len(set(my_subs) | set(their_subs))
        out.leaves_differing += [(hour, sub) for sub in differing(my_subs, their_subs)]
    return out


@dataclass
class LeafDiff:
    missing: list[str] = field(default_factory=list)  # expected, not held
    wrong_size: list[str] = field(default_factory=list)  # held with another length
    extra: list[str] = field(default_factory=list)  # held, not expected


def diff_leaf(expected: Mapping[str, int], held: Mapping[str, int]) -> LeafDiff:
    """Item by item, within one leaf (both sides are small there: ~1/256 of an hour)."""
    out = LeafDiff()
    for blob_id, size in sorted(expected.items()):
        have = held.get(blob_id)
        if have is None:
            out.missing.append(blob_id)
        elif have != size:
            out.wrong_size.append(blob_id)
    out.extra = sorted(b for b in held if b not in expected)
    return out
