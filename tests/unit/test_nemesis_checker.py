"""The nemesis checker (tests/cluster/nemesis.py) on hand-made histories: it must find each
kind of violation the suite promises to count, and accept what concurrency allows."""

from __future__ import annotations

from types import SimpleNamespace

from tests.cluster.nemesis import Op, _body, _value_of, check


def history(*ops: Op):
    return SimpleNamespace(ops=list(ops), by_phase={}, keys=sorted({o.key for o in ops}))


def put(value, start, end, outcome="ok", node=0):
    return Op("put", "k", node, start, end, outcome, 200 if outcome == "ok" else 503, value)


def delete(start, end, outcome="ok"):
    return Op("delete", "k", 0, start, end, outcome, 204 if outcome == "ok" else 503)


def get(value, start, end, kind="get"):
    return Op(kind, "k", 1, start, end, "ok", 200, value)


def test_lost_acknowledged_put() -> None:
    report = check(history(put("a", 0, 1), get(None, 2, 3, "final")))
    assert len(report.violations) == 1


def test_stale_read_after_an_acknowledged_overwrite() -> None:
    report = check(history(put("a", 0, 1), put("b", 2, 3), get("a", 4, 5)))
    assert len(report.violations) == 1


def test_concurrent_write_may_be_seen_or_not() -> None:
    for seen in ("a", "b"):
        assert check(history(put("a", 0, 1), put("b", 2, 5), get(seen, 3, 4))).violations == []


def test_indeterminate_write_may_have_happened() -> None:
    ops = [put("a", 0, 1), put("b", 2, 3, outcome="unknown")]
    assert check(history(*ops, get("b", 4, 5, "final"))).violations == []
    assert check(history(*ops, get("a", 4, 5, "final"))).violations == []


def test_an_indeterminate_write_may_take_effect_after_its_client_gave_up() -> None:
    """A PUT whose client timed out may commit later, even after acknowledged writes."""
    ops = [put("a", 0, 1, outcome="unknown"), put("b", 2, 3)]
    assert check(history(*ops, get("a", 4, 5, "final"))).violations == []
    assert len(check(history(put("a", 0, 1), put("b", 2, 3), get("a", 4, 5))).violations) == 1


def test_deleted_object_comes_back() -> None:
    report = check(history(put("a", 0, 1), delete(2, 3), get("a", 4, 5, "final")))
    assert len(report.violations) == 1


def test_list_after_write() -> None:
    listed = Op("list", "k", 2, 4, 5, "ok", 200, None, frozenset())
    assert len(check(history(put("a", 0, 1), listed)).violations) == 1
    listed.listed = frozenset({"k"})
    assert check(history(put("a", 0, 1), listed)).violations == []


def test_corrupt_bytes_are_named() -> None:
    import random

    body = bytearray(_body("wabc", random.Random(1)))
    assert _value_of(bytes(body)) == "wabc"
    body[-1] ^= 1
    value = _value_of(bytes(body))
    assert value.startswith("CORRUPT")
    assert len(check(history(put("wabc", 0, 1), get(value, 2, 3))).violations) == 1


def test_client_mistake_answered_500() -> None:
    mistake = Op("mistake", "mistake", 0, 0, 1, "unknown", 500, error="InternalError")
    assert check(history(mistake)).violations


def test_a_500_is_a_violation_unless_it_says_the_write_may_not_have_been_applied() -> None:
    """A write whose statement reached the index as it became unreachable has an unknown
    outcome: its 500 says so, and the checker treats it as a write that may have happened
    (like a timeout). Any other 500 is a violation."""
    bare = Op("put", "k", 0, 0, 1, "unknown", 500, "a", error="InternalError")
    report = check(history(bare))
    assert report.violations == ["500 put k on n1: InternalError"]

    unknown = Op(
        "put",
        "k",
        0,
        0,
        1,
        "unknown",
        500,
        "a",
        error="InternalError",
        message="The write may not have been applied: index did not answer",
    )
    report = check(history(unknown, get("a", 2, 3)))
    assert report.unknown_outcomes == ["put k on n1: InternalError"]
    assert report.violations == []  # it may have been applied
    # ... and it is still a write the reads are checked against.
    assert len(check(history(unknown, get("b", 2, 3))).violations) == 1

    mistake = Op(
        "mistake",
        "mistake",
        0,
        0,
        1,
        "unknown",
        500,
        error="InternalError",
        message="The write may not have been applied: x",
    )
    assert check(history(mistake)).violations
