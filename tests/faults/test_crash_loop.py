"""Crashes: kill -9 at random moments during PUT, multipart complete, copy, DeleteObjects and
repair, hundreds of times, restarting in between (tests/faults/crashloop.py).

After every kill, before the next start: every key holds its old content or the new one,
whole (its MD5 shows which), never a partial or corrupt one; every copy the index names is
whole or has a repair queued. At the end, the queued repairs are carried out, the garbage
collector and the orphan sweeper run, and no orphan blob and no missing copy is left.

200 cycles run by default; the ``slow`` variant runs 1,000. (tests/e2e/test_crash.py kills
a whole ``holdfast serve`` mid-upload, over HTTP, for the same invariant end to end.)
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time
from collections import Counter

import pytest

from holdfast.index.records import BucketRecord
from holdfast.service import Service
from holdfast.workers.gc import GarbageCollector
from holdfast.workers.limits import Pacer
from holdfast.workers.repair import Repairer
from tests.faults import crashloop


def _context():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(
        ["holdfast.service", "holdfast.workers.repair", "tests.faults.crashloop"]
    )
    return ctx


def _cycle(ctx, config_json: str, model: dict, rng: random.Random) -> tuple[list, str]:
    """Start a child, let it work for a random moment, kill -9 it; its messages."""
    parent_end, child_end = ctx.Pipe(duplex=False)
    child = ctx.Process(
        target=crashloop.child_main, args=(config_json, model, rng.randrange(1 << 30), child_end)
    )
    child.start()
    child_end.close()
    when = "start-up" if rng.random() < 0.1 else "operations"
    if when == "operations":
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not parent_end.poll(0.01):
            pass
        time.sleep(rng.uniform(0.0, 0.05))
    else:
        time.sleep(rng.uniform(0.0, 0.03))
    assert child.is_alive(), f"the child died on its own (exit {child.exitcode})"
    os.kill(child.pid, signal.SIGKILL)
    child.join(10)
    messages = []
    while parent_end.poll():
        try:
            messages.append(json.loads(parent_end.recv_bytes()))
        except EOFError:
            break
    parent_end.close()
    return messages, when


def crash_cycles(tmp_path, cycles: int, seed: int) -> dict:
    rng = random.Random(seed)
    dirs = [str(tmp_path / "drive0"), str(tmp_path / "drive1")]
    config = crashloop.fresh_config(dirs)
    service = Service(config)  # the parent's view: a surviving process of the same node
    service.start_blocking()
    for bucket, copies in crashloop.BUCKETS.items():
        service.node.blocking.create_bucket(BucketRecord(bucket, "root", time.time(), "us-east-1"))
        service.node.blocking.set_bucket_policy(bucket, copies, 1)
    model = {f"{b}/{k}": None for b in crashloop.BUCKETS for k in crashloop.KEYS}
    ctx = _context()
    stats: Counter = Counter()
    started = time.monotonic()
    try:
        for _ in range(cycles):
            messages, when = _cycle(ctx, json.dumps(config.__dict__), model, rng)
            model, pending = crashloop.replay(model, messages)
            stats["cycles"] += 1
            stats[f"killed during {pending[1] if pending else when}"] += 1
            stats["operations"] += sum(1 for m in messages if m[0] == "done")
            model = crashloop.check_objects(service, model, pending)
            stats["copies checked"] += crashloop.check_copies(service)
        stats["seconds"] = round(time.monotonic() - started, 1)
        left = crashloop.leftover_files(service)
        stats["orphans before GC"], stats["tmp files left by kills"] = left["orphans"], left["tmp"]
        # Background work after the crashes: repairs, GC, orphan sweep.
        repairer = Repairer(service.node, Pacer(service.node, 1 << 40))
        for task in service.node.blocking.repairs(100_000):
            repairer.execute(task)
            stats["repairs completed"] += 1
        gc = GarbageCollector(service.node)
        while gc.collect_due(now=time.time() + 3600):
            pass
        stats["orphans swept"] = gc.sweep_orphans(now=time.time() + 2 * 3600)
        assert service.node.blocking.repairs() == []
        crashloop.check_objects(service, model, None)
        crashloop.check_copies(service)
        assert crashloop.leftover_files(service)["orphans"] == 0, "orphans were not collected"
    finally:
        service.close()
    return dict(stats)


def test_kill9_at_random_moments(tmp_path):
    cycles = int(os.environ.get("HOLDFAST_CRASH_CYCLES", 200))
    stats = crash_cycles(tmp_path, cycles, seed=int(os.environ.get("HOLDFAST_CRASH_SEED", 7)))
    print("\ncrash loop:", stats)
    assert stats["cycles"] == cycles
    assert stats["operations"] > cycles
    for op in ("put", "complete", "copy", "delete", "repair"):
        assert cycles < 200 or stats.get(f"killed during {op}", 0) > 0, f"no kill during {op}"


@pytest.mark.slow
def test_kill9_at_random_moments_soak(tmp_path):
    stats = crash_cycles(tmp_path, cycles=1000, seed=11)
    print("\ncrash loop:", stats)
    assert stats["cycles"] == 1000
