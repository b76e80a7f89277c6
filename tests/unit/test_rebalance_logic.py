"""Pure pieces of rebalancing: the targets, which copies move where, the bytes against the
minimum, the policy's constraints, staging a capacity, the blast radius and the progress."""

from __future__ import annotations

import random

import pytest

from holdfast.cluster import rebalance_state as rbs
from holdfast.cluster.layout import Layout, LayoutError, add_node, parse_capacity, set_capacity
from holdfast.cluster.rails import Plan
from holdfast.index.records import NodeRecord, ObjectRecord, Segment
from holdfast.placement.balance import Balance, minimum_to_move, used_bytes, weights
from holdfast.placement.policy import node_of


def seg(blob: str, size: int, *nodes: str) -> Segment:
    return Segment(blob, size, 1 << 20, b"", tuple(f"{n}/d0" for n in nodes))


def obj(key: str, *segments: Segment) -> ObjectRecord:
    return ObjectRecord(bucket="b", key=key, size=sum(s.size for s in segments), etag="e",
                        last_modified=0.0, segments=segments)  # fmt: skip


def run_plan(objects, weight, tolerance=5.0, zone_of=None):
    """Plan over ``objects`` as the worker does (count, plan, walk); returns the plan, the
    bytes moved, and the objects' stores after the moves."""
    used = used_bytes(objects, weight)
    bal = Balance.plan(used, weight, tolerance)
    moved = 0
    after = {}
    for o in objects:
        stores = []
        for s in o.segments:
            st = list(s.stores)
            for old, dest in bal.moves(s.stores, s.size, zone_of):
                st[st.index(old)] = f"{dest}/d0"
                moved += s.size
            stores.append(tuple(st))
        after[o.key] = stores
    return bal, moved, after


def held(after: dict, sizes: dict) -> dict:
    out: dict[str, int] = {}
    for key, segs in after.items():
        for st in segs:
            for sid in st:
                out[node_of(sid)] = out.get(node_of(sid), 0) + sizes[key]
    return out


def test_weights_follow_capacity_only_when_every_node_has_one():
    assert weights([("n1", 2), ("n2", 1)]) == {"n1": 2.0, "n2": 1.0}
    assert weights([("n1", 2), ("n2", 0)]) == {"n1": 1.0, "n2": 1.0}
    assert weights([]) == {}


def test_targets_and_the_minimum_are_each_nodes_excess():
    used = {"n1": 600, "n2": 600, "n3": 0}
    bal = Balance.plan(used, {"n1": 1, "n2": 1, "n3": 1})
    assert bal.target == {"n1": 400, "n2": 400, "n3": 400}
    assert bal.give == {"n1": 200, "n2": 200} and bal.take == {"n3": 400}
    assert bal.planned == 400
    # Capacities: n3 weighs twice as much.
    assert minimum_to_move(used, {"n1": 1, "n2": 1, "n3": 2}) == 600
    # Within the tolerance band nothing moves; beyond it, down to the target.
    assert minimum_to_move({"n1": 104, "n2": 96}, {"n1": 1, "n2": 1}) == 0
    assert minimum_to_move({"n1": 110, "n2": 90}, {"n1": 1, "n2": 1}) == 10
    assert minimum_to_move({"n1": 110, "n2": 90}, {"n1": 1, "n2": 1}, 20) == 0
    # A node not in the weights (draining, removed) is neither source nor receiver.
    assert Balance.plan({"n1": 10, "n9": 1000}, {"n1": 1}).planned == 0


def test_adding_a_third_node_moves_at_most_the_minimum_and_keeps_copies_apart():
    rng = random.Random(7)
    sizes = {f"k{i}": rng.randint(1_000, 200_000) for i in range(300)}
    objects = [obj(k, seg(f"b{k}", n, "n1", "n2")) for k, n in sizes.items()]
    weight = {"n1": 1.0, "n2": 1.0, "n3": 1.0}
    bal, moved, after = run_plan(objects, weight)
    total = 2 * sum(sizes.values())
    minimum = total - 2 * (total // 3)  # what n1 and n2 hold beyond their third
    assert abs(bal.planned - minimum) <= 2
    assert 0.95 * bal.planned <= moved <= bal.planned
    for segs in after.values():
        for st in segs:
            assert len({node_of(s) for s in st}) == 2  # still two copies on two nodes
    share = held(after, sizes)
    for n in weight:
        assert abs(share[n] - total / 3) <= 0.05 * total / 3 + 200_000, share


def test_a_capacity_change_moves_toward_the_new_weights():
    sizes = {f"k{i}": 10_000 for i in range(90)}
    nodes = ["n1", "n2", "n3"]
    objects = [obj(k, seg(f"b{k}", 10_000, nodes[i % 3], nodes[(i + 1) % 3]))
               for i, k in enumerate(sizes)]  # fmt: skip
    # Balanced at equal weights; n3 now has twice the capacity.
    bal, moved, after = run_plan(objects, {"n1": 1.0, "n2": 1.0, "n3": 2.0})
    assert bal.planned == 300_000  # n1 and n2 each hold 600k of a 450k target
    share = held(after, sizes)
    assert moved <= bal.planned
    assert share["n3"] > share["n1"] and share["n3"] > share["n2"]
    assert abs(share["n3"] - 900_000) <= 20_000, share
    for segs in after.values():
        for st in segs:
            assert len({node_of(s) for s in st}) == 2


def test_a_copy_never_goes_to_a_node_or_zone_that_holds_another():
    bal = Balance.plan({"n1": 1000, "n2": 1000, "n3": 0, "n4": 0},
                       {"n1": 1, "n2": 1, "n3": 1, "n4": 1})  # fmt: skip
    zones = {"n1": "a", "n2": "b", "n3": "a", "n4": "c"}
    # n1 (zone a) -> n3 (zone a) is fine; then n2 -> n3 is not (n3 holds a copy now).
    assert dict(bal.moves(("n1/d0", "n2/d0"), 100, zones.get)) == {"n1/d0": "n3", "n2/d0": "n4"}
    # Only n3 (zone a) takes, and the blob's other copy is in zone a: nothing moves, unless
    # copies spread over nodes only.
    bal = Balance.plan({"n1": 500, "n2": 1000, "n3": 0}, {"n1": 1, "n2": 1, "n3": 1})
    assert bal.moves(("n1/d0", "n2/d0"), 100, zones.get) == []
    assert bal.moves(("n1/d0", "n2/d0"), 100) == [("n2/d0", "n3")]
    # A blob already on the only receiver is not given a second copy there.
    bal = Balance.plan({"n1": 1000, "n2": 0}, {"n1": 1, "n2": 1})
    assert bal.moves(("n1/d0", "n2/d0"), 100) == []


def test_a_copy_larger_than_what_is_left_does_not_move():
    bal = Balance.plan({"n1": 600, "n2": 400}, {"n1": 1, "n2": 1})
    assert bal.give == {"n1": 100}
    assert bal.moves(("n1/d0",), 150) == []
    assert bal.moves(("n1/d0",), 60) == [("n1/d0", "n2")]
    assert bal.moves(("n1/d0",), 60) == []  # 40 left
    assert Balance.from_json(bal.to_json()) == bal  # saved and resumed as is
    # The receiver has room for it, the giver has not that much to give: it stays.
    bal = Balance.plan({"n1": 500, "n2": 500, "n3": 200}, {"n1": 1, "n2": 1, "n3": 1})
    assert bal.give == {"n1": 100, "n2": 100} and bal.take == {"n3": 200}
    assert bal.moves(("n1/d0",), 150) == []


def test_used_bytes_counts_node_copies_only():
    rows = [obj("a", seg("x", 10, "n1", "n2")),
            obj("b", Segment("y", 5, 1 << 20, b"", ("n1/d0", "s3-backup"))),
            obj("c", Segment("z", 7, 1 << 20, b"", ()))]  # fmt: skip
    assert used_bytes(rows, ["n1", "n2", "n3"]) == {"n1": 15, "n2": 10, "n3": 0}


def test_staging_a_capacity_and_bad_input():
    nodes = (NodeRecord("n1", "", "a:1", capacity=100), NodeRecord("n2", "", "a:2"))
    assert set_capacity(nodes, "n2", 50)[1].capacity == 50
    with pytest.raises(LayoutError, match="no node 'n9'"):
        set_capacity(nodes, "n9", 50)
    for bad in (0, -1):
        with pytest.raises(LayoutError, match="above 0"):
            set_capacity(nodes, "n1", bad)
    with pytest.raises(LayoutError, match="above 0"):
        parse_capacity("-5G")
    with pytest.raises(LayoutError, match="not a size"):
        parse_capacity("lots")


def test_the_blast_radius_of_an_add_shows_bytes_and_time():
    n1, n2 = NodeRecord("n1", "", "a:1"), NodeRecord("n2", "", "a:2")
    current = Layout(1, (n1, n2))
    staged = add_node(current.nodes, NodeRecord("n3", "", "a:3"))
    plan = Plan(current, staged)
    assert plan.rebalances
    plan.held = {"used": {"n1": 600, "n2": 600, "n3": 0}, "complete": True}
    plan.settings.rebalance_bytes_per_second = 100.0
    blast = plan.blast_radius()
    assert blast["bytes_to_rebalance"] == 400
    assert blast["seconds_at_rebalance_rate"] == 4.0
    # A capacity change rebalances too; a removal (its data moved by a drain) does not.
    assert Plan(current, set_capacity(current.nodes, "n1", 5)).rebalances
    removed = tuple(n if n.name == "n1" else n.__class__("n2", "", "a:2", state="removed")
                    for n in current.nodes)  # fmt: skip
    assert not Plan(current, removed).rebalances


def test_progress_and_eta():
    s = rbs.RebalanceState(request=1, phase="objects", reason="n3 added", rate=100.0,
                           bytes_planned=1000, bytes_moved=250, copies_moved=2,
                           objects_moved=2, objects_seen=10, moving_since=100.0)  # fmt: skip
    p = rbs.progress(s, now=105.0)  # 250 bytes in 5 s: 50 bytes/s measured
    assert p["progress"] == 0.25 and p["bytes_left"] == 750 and p["eta_seconds"] == 15.0
    line = rbs.describe(s, now=105.0)
    assert line.startswith("rebalance (n3 added): objects, 250 of 1000 bytes moved (25%)")
    assert "about 15 s left" in line
    done = rbs.RebalanceState(phase="done", bytes_planned=1000, bytes_moved=990)
    assert rbs.progress(done)["eta_seconds"] == 0.0
    assert rbs.RebalanceState.from_text(s.to_text()) == s
