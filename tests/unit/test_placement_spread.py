"""Spread of copies over distinct drives, nodes or zones (holdfast/placement/policy.py)."""

from dataclasses import dataclass

import pytest

from holdfast.placement.policy import NoCapacity, Policy, choose_stores, default_domain


@dataclass
class S:
    store_id: str
    free: int

    def free_bytes(self) -> int:
        return self.free


STORES = [S("n1/d0", 900), S("n1/d1", 800), S("n2/d0", 500), S("n3/d0", 100)]


def ids(stores):
    return [s.store_id for s in stores]


def test_spread_by_drive_takes_the_emptiest_drives_even_on_one_node():
    c = choose_stores(STORES, Policy(2, 1, domain="drive"), 10)
    assert ids(c.targets) == ["n1/d0", "n1/d1"]


def test_spread_by_node_puts_copies_on_distinct_nodes():
    c = choose_stores(STORES, Policy(2, 1, domain="node"), 10)
    assert ids(c.targets) == ["n1/d0", "n2/d0"]
    c = choose_stores(STORES, Policy(3, 1, domain="node"), 10)
    assert ids(c.targets) == ["n1/d0", "n2/d0", "n3/d0"]


def test_a_down_node_is_routed_around_and_owed_its_copy():
    up = lambda sid: not sid.startswith("n2/")  # noqa: E731
    c = choose_stores(STORES, Policy(2, 1, domain="node"), 10, up)
    assert ids(c.targets) == ["n1/d0", "n3/d0"]
    assert c.deferred == ()
    c = choose_stores(STORES[:3], Policy(2, 1, domain="node"), 10, up)
    assert ids(c.targets) == ["n1/d0"]
    assert c.deferred == ("n2/d0",)  # hinted handoff: repaired when n2 is back


def test_quorum_counts_distinct_nodes_not_drives():
    with pytest.raises(NoCapacity) as e:
        choose_stores(STORES[:2], Policy(2, 2, domain="node"), 10)
    assert not e.value.full
    with pytest.raises(NoCapacity) as e:
        choose_stores(STORES, Policy(2, 2, domain="node"), 600)  # only n1 has room
    assert e.value.full


def test_spread_by_zone():
    zones = {"n1": "a", "n2": "a", "n3": "b"}.get
    c = choose_stores(STORES, Policy(2, 1, domain="zone"), 10, zone_of=zones)
    assert ids(c.targets) == ["n1/d0", "n3/d0"]


def test_default_domain_and_bad_spread():
    assert default_domain(0) == "node" and default_domain(1) == "node"
    assert default_domain(3) == "zone"
    with pytest.raises(ValueError):
        Policy(2, 1, domain="rack")
    assert Policy(3, 2, domain="node").fit(2) == Policy(2, 2, domain="node")
