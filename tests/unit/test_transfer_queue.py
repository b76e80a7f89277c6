"""The node's one queue of background transfers (holdfast/workers/transfers.py), its pure
logic: the kinds share one byte budget in every window, a kind's own rate holds it below
that, the cluster's cap (here a fake of the index's slots) bounds the transfers under way,
and without an index answering a transfer waits and then gives up: never goes unslotted."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest

from holdfast.index.errors import IndexUnavailable
from holdfast.workers.transfers import NoSlot, TransferQueue


@dataclass
class Rules:
    transfer_cap: int = 8
    drain_bytes_per_second: float = 1e12
    rebalance_bytes_per_second: float = 1e12


class FakeSlots:
    """The index's transfer-slot calls, in memory (the engines' own test is
    tests/contract/test_transfer_slots_contract.py)."""

    def __init__(self) -> None:
        self.slots: dict[int, str] = {}
        self.most = 0
        self.lock = threading.Lock()

    def acquire_transfer_slot(self, cap, holder, kind, target, token, ttl):
        with self.lock:
            for n in range(cap):
                if n not in self.slots and len(self.slots) < cap:
                    self.slots[n] = token
                    self.most = max(self.most, len(self.slots))
                    return n
            return None

    def renew_transfer_slot(self, slot, token, ttl):
        return self.slots.get(slot) == token

    def release_transfer_slot(self, slot, token):
        with self.lock:
            if self.slots.get(slot) == token:
                del self.slots[slot]


def _move(queue: TransferQueue, kind: str, target: str, block: int, until: float, done: list):
    lane = queue.lane(kind)
    while time.monotonic() < until:
        with lane.transfer(target) as pace, pace.moving(block):
            time.sleep(0.002)
        done.append((time.monotonic(), kind, block))


def _run(queue: TransferQueue, kinds: list[str], seconds: float, block: int) -> list:
    done: list = []
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(target=_move, args=(queue, kind, f"n{i}/d0", block, until, done))
        for i, kind in enumerate(kinds)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return done


def _busiest(done: list, window: float) -> float:
    times = sorted(done)
    best = 0.0
    for i, (t0, _, _) in enumerate(times):
        best = max(best, sum(n for t, _, n in times[i:] if t < t0 + window))
    return best


def test_kinds_share_one_budget_in_every_window() -> None:
    """Repair and drain (two threads each) at once: the bytes of all of them together in
    any window stay within the one limit, and both kinds get some."""
    window, limit = 0.2, 100
    queue = TransferQueue(limit / window, 1e6, window=window, settings=Rules)
    done = _run(queue, ["repair", "repair", "drain", "drain"], 1.2, 10)
    kinds = {k for _, k, _ in done}
    assert kinds == {"repair", "drain"}, kinds
    assert queue.record.busiest_window_bytes <= limit
    assert _busiest(done, window) <= limit
    # Alone, either kind could have used the whole budget: together they shared it.
    total = sum(n for _, _, n in done)
    assert total <= limit * (1.2 / window + 1)
    assert queue.admitted["repair"].bytes + queue.admitted["drain"].bytes == total


def test_a_kind_keeps_its_own_lower_rate_inside_the_total() -> None:
    mib = 1024 * 1024
    rules = Rules(drain_bytes_per_second=1 * mib)  # the total is 20 MiB/s
    queue = TransferQueue(20 * mib, 1e6, window=0.2, settings=lambda: rules)
    started = time.monotonic()
    done = _run(queue, ["drain", "repair"], 1.0, 64 * 1024)
    took = time.monotonic() - started
    drained = sum(n for _, k, n in done if k == "drain")
    repaired = sum(n for _, k, n in done if k == "repair")
    # The kind's bucket: its rate, and a burst of one second's worth (at least 1 MiB).
    assert drained <= 1 * mib * took + 1 * mib + 64 * 1024
    assert repaired > 3 * drained  # the rest of the budget went to repair


def test_the_cluster_cap_bounds_transfers_under_way() -> None:
    slots = FakeSlots()
    queue = TransferQueue(
        1e9, 1e6, index=slots, settings=lambda: Rules(transfer_cap=2), slot_wait=10
    )
    done = _run(queue, ["repair", "repair", "repair", "drain", "rebalance"], 0.6, 1)
    assert slots.most == 2  # used to the cap, never past it
    assert {k for _, k, _ in done} == {"repair", "drain", "rebalance"}
    assert slots.slots == {} and queue.held == {}  # every slot given back
    assert queue.slot_waits["full"] > 0


def test_no_index_no_transfer() -> None:
    """The index not answering: the transfer waits (backing off), then gives up; its bytes
    never move without a slot."""

    class Down:
        calls = 0

        def acquire_transfer_slot(self, *args):
            Down.calls += 1
            raise IndexUnavailable("down")

    queue = TransferQueue(1e9, 1e6, index=Down(), settings=Rules, slot_wait=0.5)
    moved = []
    lane = queue.lane("drain")
    with (
        pytest.raises(NoSlot, match="the index did not answer"),
        lane.transfer("n2/d0") as pace,
        pace.moving(10),
    ):
        moved.append(10)
    assert moved == [] and queue.slot_waits["unavailable"] == 1
    assert 2 <= Down.calls <= 10  # backing off, not spinning
    assert queue.admitted["drain"].bytes == 0


def test_a_lost_slot_stops_the_transfer() -> None:
    slots = FakeSlots()
    queue = TransferQueue(1e9, 1e6, index=slots, settings=Rules, ttl=0.03)
    with (
        pytest.raises(NoSlot, match="taken meanwhile"),
        queue.lane("repair").transfer("n2/d0") as p,
    ):
        p(1)
        slots.slots[0] = "someone else"  # expired and taken
        time.sleep(0.02)
        p(1)


def test_per_target_node_ops() -> None:
    """Each target node has its own operations bucket, under the total."""
    queue = TransferQueue(1e9, 1000.0, node_ops_per_second=5.0, settings=Rules)
    lane = queue.lane("repair")
    started = time.monotonic()
    for _ in range(8):
        lane.op("n2/d0")
    assert time.monotonic() - started >= (8 - 1 - 5) / 5.0 * 0.9
    assert queue.admitted["repair"].ops == 8
    with pytest.raises(ValueError):
        queue.lane("scrub")
