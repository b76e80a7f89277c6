"""Placement spread by kind of store (holdfast/placement/policy.py): the policy language,
choosing stores of several kinds, what a set of copies lacks, and policies refused when set
because the stores there are can never meet them."""

from __future__ import annotations

import pytest

from holdfast.placement.policy import (
    KINDS,
    NoCapacity,
    Policies,
    Policy,
    choose_stores,
    default_policy,
    more_copies,
    parse_spread,
)


class FakeStore:
    def __init__(self, store_id: str, kind: str, free: int = 1000) -> None:
        self.store_id, self.kind, self.free = store_id, kind, free

    def free_bytes(self) -> int:
        return self.free


def ids(stores) -> list[str]:
    return [s.store_id for s in stores]


def test_the_spread_language() -> None:
    assert parse_spread("") == (1, ())
    assert parse_spread("kinds=2") == (2, ())
    assert parse_spread("kinds=2, s3>=1") == (2, (("s3", 1),))
    assert parse_spread("s3>=1,local>=2") == (1, (("local", 2), ("s3", 1)))
    for bad in ("kinds=0", "kinds=x", "s3>1", "s3=1", "kinds", "S3>=1"):
        with pytest.raises(ValueError):
            parse_spread(bad)
    p = Policy(3, 1).with_spread("kinds=2,s3>=1")
    assert p == Policy(3, 1, 2, (("s3", 1),))
    assert p.spread() == "kinds=2,s3>=1" and Policy(2, 1).spread() == ""
    assert "spread kinds=2,s3>=1" in p.describe()
    with pytest.raises(ValueError, match="kinds=3"):
        Policy(2, 1, kinds=3)
    with pytest.raises(ValueError, match="unknown store kind"):
        Policy(2, 1).with_spread("tape>=1")
    with pytest.raises(ValueError, match="asks for 3 copies"):
        Policy(2, 1).with_spread("local>=2,s3>=1")
    assert default_policy(2, 2, 1, "kinds=2") == Policy(2, 1, 2)


def test_two_copies_on_two_kinds_never_two_local() -> None:
    stores = [FakeStore("n/d0", "local", 900), FakeStore("n/d1", "local", 800)]
    stores.append(FakeStore("@s3/weed", "s3", 100))
    choice = choose_stores(stores, Policy(2, 1, kinds=2), 50)
    assert ids(choice.targets) == ["n/d0", "@s3/weed"] and choice.deferred == ()
    # Without the spread, the two roomiest stores (both local).
    assert ids(choose_stores(stores, Policy(2, 1), 50).targets) == ["n/d0", "n/d1"]


def test_a_down_back_end_is_owed_its_copy_not_replaced_by_a_local_one() -> None:
    stores = [FakeStore("n/d0", "local"), FakeStore("n/d1", "local"), FakeStore("@s3/w", "s3")]
    choice = choose_stores(stores, Policy(2, 1, kinds=2), 50, writable=lambda s: s != "@s3/w")
    assert ids(choice.targets) == ["n/d0"] and choice.deferred == ("@s3/w",)
    # A quorum the spread cannot reach without it is refused, fast.
    with pytest.raises(NoCapacity):
        choose_stores(stores, Policy(2, 2, kinds=2), 50, writable=lambda s: s != "@s3/w")
    # A full back-end likewise (its quota reached).
    stores[2].free = 10
    choice = choose_stores(stores, Policy(2, 1, kinds=2), 50)
    assert ids(choice.targets) == ["n/d0"] and choice.deferred == ("@s3/w",)


def test_at_least_one_on_s3() -> None:
    stores = [FakeStore(f"n/d{i}", "local", 1000 - i) for i in range(3)]
    stores += [FakeStore("@s3/a", "s3", 5), FakeStore("@s3/b", "s3", 500)]
    choice = choose_stores(stores, Policy(3, 2).with_spread("s3>=1"), 1)
    assert ids(choice.targets) == ["@s3/b", "n/d0", "n/d1"]
    two = choose_stores(stores, Policy(3, 1).with_spread("s3>=2"), 1)
    assert sorted(ids(two.targets)) == ["@s3/a", "@s3/b", "n/d0"]
    mixed = [FakeStore("n/d0", "local"), FakeStore("m/d0", "node"), FakeStore("@s3/a", "s3")]
    three = choose_stores(mixed, Policy(3, 1, kinds=3), 1)
    assert {s.kind for s in three.targets} == {"local", "node", "s3"}


def test_shortfall_says_what_copies_lack() -> None:
    p = Policy(3, 1).with_spread("kinds=2,s3>=1")
    assert p.shortfall(["local", "local", "s3"]) == []
    assert p.shortfall(["local", "local", "local"]) == [
        "copies on 1 kind(s) of store, the policy wants 2",
        "0 copies on s3 stores, the policy wants 1",
    ]
    assert p.shortfall(["local", "s3"]) == ["2 of 3 copies"]


def test_unmeetable_policies_are_refused_with_the_reason() -> None:
    two_kinds = Policy(2, 1, kinds=2)
    assert two_kinds.unmeetable(["local", "s3"]) is None
    reason = two_kinds.unmeetable(["local", "local"])
    assert reason == ("copies on 1 kind(s) of store, the policy wants 2 (stores: 2 local)")
    assert Policy(3, 1).with_spread("s3>=1").unmeetable(["local"] * 3) is not None
    assert Policy(3, 1).unmeetable(["local", "s3"]) == "2 of 3 copies (stores: 1 local, 1 s3)"


def test_bucket_policies_carry_their_spread() -> None:
    policies = Policies(Policy(2, 1), drives=3)
    policies.refresh(lambda: {"kinds": (2, 1, "kinds=2"), "plain": (2, 1), "bad": (2, 1, "x")})
    assert policies.policy_for("kinds") == Policy(2, 1, 2)
    assert policies.policy_for("plain") == Policy(2, 1)
    assert policies.policy_for("bad") == Policy(2, 1), "a bad row is ignored (and logged)"
    assert policies.as_dict()["buckets"]["kinds"] == {
        "copies": 2,
        "min_copies": 1,
        "spread": "kinds=2",
    }


def test_reads_go_to_the_nearest_healthy_copy_first(tmp_path) -> None:
    from holdfast.stores.health import BreakerSettings, Drives
    from holdfast.stores.local import LocalStore
    from holdfast.stores.s3 import S3Settings, S3Store

    local = LocalStore("n/d0", tmp_path / "d0")
    local.initialize("uuid-local")
    ext = S3Store("@s3/ext", S3Settings("http://127.0.0.1:1", "b", "a", "s", quota=1))
    drives = Drives([ext, local], {"n/d0": "uuid-local", "@s3/ext": "u"}, BreakerSettings())
    drives.probe("n/d0")
    drives.health["@s3/ext"].state = drives.health["n/d0"].state  # up, without a network
    assert drives.read_order(["@s3/ext", "n/d0"], "blob") == ["n/d0", "@s3/ext"]
    drives.copy_failed("n/d0", "blob", OSError(5, "EIO"))
    assert drives.read_order(["@s3/ext", "n/d0"], "blob") == ["@s3/ext", "n/d0"]


def test_every_store_class_declares_a_kind_placement_and_reads_know() -> None:
    """The real store classes (not fakes): placement's spread by kind and the read order
    (local, then another node's drive, then an external service) go by ``kind``."""
    from holdfast.stores.health import READ_COST
    from holdfast.stores.local import LocalStore
    from holdfast.stores.node import NodeStore
    from holdfast.stores.s3 import S3Store

    classes = (LocalStore, NodeStore, S3Store)
    assert tuple(c.kind for c in classes) == KINDS == ("local", "node", "s3")
    assert [READ_COST[c.kind] for c in classes] == sorted(READ_COST[c.kind] for c in classes)
    assert len({READ_COST[c.kind] for c in classes}) == 3


def test_more_copies_adds_only_what_a_later_policy_wants() -> None:
    a, b = FakeStore("n/d0", "local"), FakeStore("n/d1", "local")
    ext, ext2 = FakeStore("@s3/ext", "s3"), FakeStore("@s3/two", "s3")
    everything = [a, b, ext, ext2]
    # Written under "2 copies" on two drives; the policy now wants one copy on s3.
    policy = Policy(2, 1).with_spread("s3>=1")
    assert ids(more_copies(policy, [a, b], everything)) == ["@s3/ext"]
    # Already whole: nothing to add, whatever the candidates.
    assert more_copies(Policy(2, 1).with_spread("kinds=2"), [a, ext], everything) == []
    # One copy, the policy now wants 2 on 2 kinds: the s3 one, not a second local.
    assert ids(more_copies(Policy(2, 1).with_spread("kinds=2"), [a], [b, ext])) == ["@s3/ext"]
    # 3 copies: two more, never a store it already holds a copy on.
    assert ids(more_copies(Policy(3, 1), [ext], everything)) == ["n/d0", "n/d1"]
    # Nothing that can help: nothing added.
    assert ids(more_copies(Policy(1, 1).with_spread("s3>=1"), [a], [b])) == []
