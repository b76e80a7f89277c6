"""Bounded gossip (issue #13, S3 2008): a simulation of many nodes running the real
heartbeat code (holdfast/cluster/liveness.py: Heartbeater.beat, next_peer, Liveness) on a
simulated clock, with an in-memory transport. It shows that each node's heartbeat load, in
messages/s and bytes/s, sent and received, stays under a fixed bound whatever the cluster's
size, that a dead node is judged down by everyone, and that nothing removes it."""

from __future__ import annotations

import asyncio
import json
from collections import Counter as Tally

import pytest

from holdfast.cluster.layout import Layout
from holdfast.cluster.liveness import MAX_MESSAGE_BYTES, Heartbeater, HeartbeatPlan, Liveness
from holdfast.index.records import NodeRecord


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def simulate(n: int, seconds: int, rate: float, dead: set[str] = frozenset()):
    clock = Clock()
    plan = HeartbeatPlan(rate)
    names = [f"n{i:03d}" for i in range(n)]
    layout = Layout(
        1, tuple(NodeRecord(x, "", f"10.0.{i // 250}.{i % 250}:7400") for i, x in enumerate(names))
    )
    sent: Tally = Tally()  # (node, second) -> messages
    received: Tally = Tally()
    sent_bytes: Tally = Tally()
    nodes: dict[str, Heartbeater] = {}

    def builder(name: str):
        stores = {f"{name}/d{j}": {"free": 10**12 - j, "ok": True} for j in range(4)}
        return lambda: {"node": name, "layout": layout.version, "stores": stores, "time": 0.0}

    def sender(me: str):
        async def send(peer: str, msg: dict):
            second = int(clock.t)
            sent[me, second] += 1
            sent_bytes[me, second] += len(json.dumps(msg))
            if peer in dead:
                raise ConnectionError("no answer")
            received[peer, second] += 1
            nodes[peer].received(me, msg)
            return nodes[peer].build()

        return send

    for name in names:
        liveness = Liveness(name, plan, clock=clock)
        liveness.set_peers(n.name for n in layout.members)
        nodes[name] = Heartbeater(liveness, sender(name), builder(name))

    async def run() -> None:
        for _tick in range(int(seconds * rate)):
            clock.t += plan.interval
            for name, hb in nodes.items():
                if name in dead:
                    continue
                peer = hb.next_peer()
                if peer is not None:
                    await hb.beat(peer)

    asyncio.run(run())
    return plan, layout, nodes, sent, received, sent_bytes


@pytest.mark.parametrize("n", [3, 50, 80])
def test_per_node_load_is_bounded_whatever_the_size(n):
    rate = 5.0
    plan, _layout, _nodes, sent, received, sent_bytes = simulate(n, seconds=20, rate=rate)
    # Sent: exactly the budget, in every one-second window, for every node.
    assert max(sent.values()) <= rate + 1  # a window boundary can catch one tick more
    assert max(sent_bytes.values()) <= (rate + 1) * MAX_MESSAGE_BYTES
    # Received: about the budget too (peers start at different places in the ring).
    assert max(received.values()) <= 3 * rate
    total = sum(sent.values())
    assert total == pytest.approx(n * 20 * rate, rel=0.01)
    print(
        f"\n{n} nodes, budget {rate:g}/s: max sent {max(sent.values())}/s, max received "
        f"{max(received.values())}/s, max sent bytes {max(sent_bytes.values())}/s per node"
    )


def test_dead_node_is_judged_down_by_all_and_stays_in_the_layout():
    n, rate = 50, 5.0
    plan, layout, nodes, *_ = simulate(n, seconds=40, rate=rate, dead={"n007"})
    down_after = plan.down_after(n - 1)
    assert down_after < 40
    for name, hb in nodes.items():
        if name == "n007":
            continue
        assert not hb.liveness.alive("n007"), name
        assert hb.liveness.state("n007") == "down"
        others = [p for p in hb.liveness.peers if p != "n007"]
        assert all(hb.liveness.alive(p) for p in others), name
        # Free space of remote stores came with the heartbeats: no call needed to place.
        assert hb.liveness.free_space(f"{others[0]}/d1") == 10**12 - 1
    assert layout.name_allowed("n007") and len(layout.members) == n


def test_heartbeater_run_sends_one_message_per_interval():
    clock = Clock()
    liveness = Liveness("a", HeartbeatPlan(10.0), clock=clock)
    liveness.set_peers(["a", "b", "c"])
    sends: list[str] = []
    ticks = 0

    async def send(peer, msg):
        sends.append(peer)
        return {"node": peer}

    async def sleep(seconds):
        nonlocal ticks
        assert seconds == pytest.approx(0.1)
        ticks += 1
        clock.t += seconds
        await asyncio.sleep(0)
        if ticks == 20:
            raise asyncio.CancelledError

    hb = Heartbeater(liveness, send, lambda: {"node": "a"}, sleep=sleep)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(hb.run())
    assert len(sends) == 20
    assert Tally(sends) == {"b": 10, "c": 10}
