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
