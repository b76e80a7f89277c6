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


def test_the_receiving_node_takes_one_copy_and_the_rest_spread():
    """The node that received the PUT keeps a copy (no network hop) even when other nodes
    are emptier; the other copies still go to distinct other nodes, emptiest first."""
    stores = [S("n1/d0", 100), S("n1/d1", 150), S("n2/d0", 900), S("n3/d0", 500)]
    on = lambda node: lambda sid: sid.startswith(node + "/")  # noqa: E731
    assert ids(choose_stores(stores, Policy(2, 1, domain="node"), 10).targets) == [
        "n2/d0",
        "n3/d0",
    ]
    c = choose_stores(stores, Policy(2, 1, domain="node"), 10, prefer=on("n1"))
    assert ids(c.targets) == ["n1/d1", "n2/d0"]  # its emptiest drive, then the emptiest node
    c = choose_stores(stores, Policy(3, 1, domain="node"), 10, prefer=on("n3"))
    assert ids(c.targets) == ["n3/d0", "n2/d0", "n1/d1"]
    c = choose_stores(stores, Policy(1, 1, domain="node"), 10, prefer=on("n1"))
    assert ids(c.targets) == ["n1/d1"]


def test_the_receiving_node_without_room_or_writable_drive_is_skipped():
    stores = [S("n1/d0", 100), S("n2/d0", 900), S("n3/d0", 500)]
    on_n1 = lambda sid: sid.startswith("n1/")  # noqa: E731
    c = choose_stores(stores, Policy(2, 1, domain="node"), 200, prefer=on_n1)  # n1 is full
    assert ids(c.targets) == ["n2/d0", "n3/d0"]
    down = lambda sid: not sid.startswith("n1/")  # noqa: E731
    c = choose_stores(stores, Policy(2, 1, domain="node"), 10, down, prefer=on_n1)
    assert ids(c.targets) == ["n2/d0", "n3/d0"]


def test_the_preference_keeps_the_zone_spread():
    stores = [S("n1/d0", 100), S("n2/d0", 900), S("n3/d0", 500)]
    zones = {"n1": "a", "n2": "a", "n3": "b"}.get
    c = choose_stores(
        stores, Policy(2, 1, domain="zone"), 10, zone_of=zones, prefer=lambda s: s[:2] == "n1"
    )
    assert ids(c.targets) == ["n1/d0", "n3/d0"]  # not n2: it shares n1's zone
