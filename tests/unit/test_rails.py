"""The layout safety rules that take a configured number (holdfast/cluster/rails.py):
headroom floor, capacity share, minimum interval between removals. Pure: plans built by
hand."""

from __future__ import annotations

import pytest

from holdfast.cluster.layout import Layout, remove_node
from holdfast.cluster.rails import (
    Plan,
    Settings,
    capacity_share,
    check,
    headroom_floor,
    min_interval,
    removed_capacity,
)
from holdfast.index.records import NodeRecord

T = 1024**4


def layout(*capacities: int) -> Layout:
    return Layout(
        1,
        tuple(
            NodeRecord(f"n{i}", "", f"127.0.0.1:{7400 + i}", capacity=c)
            for i, c in enumerate(capacities, 1)
        ),
    )


def plan_removing(current: Layout, name: str, **kw) -> Plan:
    return Plan(current, remove_node(current.nodes, name), **kw)


def test_headroom_floor_refuses_a_removal_that_leaves_too_little_free():
    current = layout(T, T, T, T)
    # 2.8 T used: after removing one node, 3 T capacity, 6.7% free < 10%.
    plan = plan_removing(current, "n4", used_bytes=int(2.8 * T))
    r = headroom_floor(plan)
    assert r is not None and r.rule == "headroom-floor"
    assert "6.7% of the capacity would be free" in r.why and "floor of 10%" in r.why
    assert "--headroom-floor" in r.instead
    # 2 T used: 33% free after: fine.
    assert headroom_floor(plan_removing(current, "n4", used_bytes=2 * T)) is None
    # The floor is the configured one; 0 turns it off.
    assert headroom_floor(
        plan_removing(current, "n4", used_bytes=int(2.8 * T), settings=Settings(5.0))
    ) is None  # fmt: skip
    assert headroom_floor(
        plan_removing(current, "n4", used_bytes=3 * T, settings=Settings(0.0))
    ) is None  # fmt: skip


def test_headroom_floor_says_nothing_when_it_cannot_judge():
    # A node without a stated capacity, or usage unknown: no verdict (other rules apply).
    assert headroom_floor(plan_removing(layout(T, 0, T), "n3", used_bytes=2 * T)) is None
    assert headroom_floor(plan_removing(layout(T, T, T), "n3", used_bytes=None)) is None
    # Adding capacity never trips it, however full the cluster is.
    current = layout(T, T)
    grown = Plan(current, current.nodes + (NodeRecord("n3", "", "127.0.0.1:7403", capacity=T),))
    grown.used_bytes = 2 * T
    assert headroom_floor(grown) is None


def test_capacity_share():
    current = layout(T, T, T, T)
    r = capacity_share(plan_removing(current, "n4"))  # 25% <= 34%
    assert r is None
    r = capacity_share(
        plan_removing(current, "n4", settings=Settings(max_capacity_share_percent=20))
    )
    assert r is not None and r.rule == "capacity-share"
    assert "removes 25.0% of the capacity" in r.why and "at most 20%" in r.why
    # A big node is a big share.
    r = capacity_share(plan_removing(layout(T, T, 4 * T), "n3"))
    assert r is not None and "66.7%" in r.why
    # Lowering a node's capacity counts too.
    current = layout(T, T, T)
    smaller = tuple(
        NodeRecord(n.name, n.s3, n.cluster, capacity=T // 4 if n.name == "n1" else n.capacity)
        for n in current.nodes
    )
    assert capacity_share(Plan(current, smaller)) is None  # 25%
    assert capacity_share(Plan(current, smaller, settings=Settings(max_capacity_share_percent=10)))
    # Unknown capacities: no verdict.
    assert capacity_share(plan_removing(layout(0, 0, 0, 0), "n4")) is None


def test_min_interval():
    current = layout(T, T, T, T)
    now = 1_000_000.0
    recent = plan_removing(current, "n4", last_removal=(3, now - 600), now=now)
    r = min_interval(recent)
    assert r is not None and r.rule == "min-interval"
    assert "layout version 3 removed capacity 600s ago" in r.why and "3600s apart" in r.why
    assert "wait until" in r.instead
    assert min_interval(plan_removing(current, "n4", last_removal=(3, now - 4000), now=now)) is None
    assert min_interval(plan_removing(current, "n4", last_removal=None, now=now)) is None
    short = Settings(min_interval_seconds=300)
    assert min_interval(
        plan_removing(current, "n4", last_removal=(3, now - 600), now=now, settings=short)
    ) is None  # fmt: skip
    # Adding a node is never held back.
    grown = Plan(current, current.nodes + (NodeRecord("n5", "", "127.0.0.1:7405"),))
    grown.last_removal, grown.now = (3, now - 1), now
    assert min_interval(grown) is None


def test_removed_capacity_reads_recorded_blast_radius():
    assert removed_capacity({"nodes_removed": ["n4"]})
    assert removed_capacity({"nodes_removed": [], "capacity_before": 3, "capacity_after": 2})
    assert not removed_capacity({"nodes_removed": [], "capacity_before": 2, "capacity_after": 3})
    assert not removed_capacity({})  # an apply by 'cluster dev' records no blast radius


def test_all_rules_report_together():
    current = layout(T, T, T, T)
    plan = Plan(
        current,
        remove_node(remove_node(current.nodes, "n4"), "n3"),
        used_bytes=int(1.9 * T),
        last_removal=(2, 99.0),
        now=100.0,
    )
    rules = [r.rule for r in check(plan)]
    assert rules == ["one-node-per-step", "headroom-floor", "capacity-share", "min-interval"]


@pytest.mark.parametrize("text", ["", None])
def test_settings_default(text):
    assert Settings.from_text(text) == Settings()
    assert Settings.from_text(Settings(1, 2, 3).to_text()) == Settings(1, 2, 3)


def test_blast_radius_of_a_drain_gives_the_time_at_the_drain_rate():
    from holdfast.cluster.layout import drain_node

    current = layout(T, T, T)
    plan = Plan(current, drain_node(current.nodes, "n3"), settings=Settings())
    assert plan.draining == ["n3"] and plan.removed == []
    assert plan.removes_capacity  # a draining node takes no new copies
    plan.drained = {"objects_losing_copies": 4, "bytes_to_move": 64 * 1024**2, "complete": True}
    blast = plan.blast_radius()
    assert blast["nodes_draining"] == ["n3"] and blast["bytes_to_move"] == 64 * 1024**2
    assert blast["seconds_at_drain_rate"] == 2.0  # at the default 32 MiB/s
    # Already draining: not counted again.
    again = Plan(Layout(2, plan.staged), plan.staged)
    assert again.draining == []
