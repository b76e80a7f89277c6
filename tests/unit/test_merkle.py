"""The anti-entropy hash tree (holdfast/merkle.py): equal sets cost one comparison, a
difference is found by descending only into differing ranges, and the blobs found are
exactly the ones missing, so the bytes re-synced are the bytes missed."""

from __future__ import annotations

import random

from holdfast.merkle import (
    EMPTY,
    Tree,
    combine,
    decode,
    descend,
    diff_leaf,
    differing,
    encode,
    leaf_of,
)


def blob_ids(n: int, seed: int = 1, hours: int = 24) -> list[str]:
    rnd = random.Random(seed)
    return [f"{0x78000 + rnd.randrange(hours):08x}{rnd.getrandbits(96):024x}" for _ in range(n)]


def items(n: int, seed: int = 1) -> dict[str, int]:
    rnd = random.Random(seed + 1000)
    return {b: rnd.randrange(1, 5_000_000) for b in blob_ids(n, seed)}


class Side:
    """The drive's side of a descent, counting what it was asked."""

    def __init__(self, held: dict[str, int]) -> None:
        self.tree = Tree.of(held.items())
        self.held = held
        self.asked_hours = 0
        self.asked_subs: list[str] = []

    def hours(self):
        self.asked_hours += 1
        return self.tree.hours()

    def subs(self, hour: str):
        self.asked_subs.append(hour)
        return self.tree.subs(hour)

    def leaf(self, hour: str, leaf: str) -> dict[str, int]:
        return {b: n for b, n in self.held.items() if b[:8] == hour and leaf_of(b) == leaf}


def resync(expected: dict[str, int], side: Side) -> tuple[list[str], int]:
    """What anti-entropy would copy: descend, then diff only the differing leaves."""
    d = descend(Tree.of(expected.items()), side.hours, side.subs)
    copy: list[str] = []
    for hour, leaf in d.leaves_differing:
        want = {b: n for b, n in expected.items() if b[:8] == hour and leaf_of(b) == leaf}
        diff = diff_leaf(want, side.leaf(hour, leaf))
        copy += diff.missing + diff.wrong_size
    return sorted(copy), d.ranges_compared


def test_digest_is_order_independent_and_sums_its_children():
    xs = list(items(500).items())
    a, b = Tree.of(xs), Tree.of(reversed(xs))
    assert a.root() == b.root() and a.hours() == b.hours()
    for hour in a.hours():
        assert combine(a.subs(hour).values()) == a.hours()[hour]
    assert decode(a.root())[0] == 500
    assert Tree().root() == EMPTY == encode(0, 0)


def test_equal_sets_cost_one_comparison():
    expected = items(2000)
    side = Side(dict(expected))
    copy, compared = resync(expected, side)
    assert copy == [] and compared == 1
    assert side.asked_subs == []


def test_length_counts():
    expected = items(50)
    held = dict(expected)
    victim = sorted(held)[7]
    held[victim] -= 1  # a truncated copy
    copy, _ = resync(expected, Side(held))
    assert copy == [victim]


def test_missing_blobs_found_exactly_and_ratio_is_one():
    """A drive that missed N of M writes: exactly those N are copied (ratio 1.0 <= 1.1),
    and only the hours holding them are descended into."""
    expected = items(5000, seed=3)
    rnd = random.Random(7)
    missed = set(rnd.sample(sorted(expected), 120))
    held = {b: n for b, n in expected.items() if b not in missed}
    extra = blob_ids(5, seed=99)  # not in the index (an upload not yet committed): not copied
    held.update({b: 10 for b in extra})
    side = Side(held)
    copy, compared = resync(expected, side)
    assert set(copy) == missed
    copied = sum(expected[b] for b in copy)
    missed_bytes = sum(expected[b] for b in missed)
    assert copied / missed_bytes == 1.0
    hours_touched = {b[:8] for b in missed | set(extra)}
    assert set(side.asked_subs) == hours_touched


def test_missed_writes_in_one_hour_descend_into_that_hour_only():
    expected = items(3000, seed=5)
    newest = max(b[:8] for b in expected)
    missed = {b for b in expected if b[:8] == newest}
    held = {b: n for b, n in expected.items() if b not in missed}
    side = Side(held)
    copy, compared = resync(expected, side)
    assert set(copy) == missed
    assert side.asked_subs == [newest]
    # root + every hour + the leaves of one hour: far fewer than the items
    assert compared <= 1 + 24 + 256 < len(expected)


def test_a_wiped_drive_gets_everything():
    expected = items(300, seed=11)
    copy, _ = resync(expected, Side({}))
    assert set(copy) == set(expected)


def test_differing_treats_absent_as_empty():
    a = {"x": encode(1, 5), "y": EMPTY}
    b = {"x": encode(1, 5), "z": encode(2, 9)}
    assert differing(a, b) == ["z"]


def test_diff_leaf():
    d = diff_leaf({"a": 1, "b": 2, "c": 3}, {"b": 2, "c": 4, "d": 1})
    assert (d.missing, d.wrong_size, d.extra) == (["a"], ["c"], ["d"])
