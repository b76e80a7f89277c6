"""The scrubber keeps to its rate, and a restart resumes its pass where it stopped."""

from __future__ import annotations

import json
import os
import threading
import time

from tests.conftest import start_server
from tests.faults.support import query, slow_put, status, wait_for

RATE = 2 * 1024 * 1024


def _saved(server) -> dict:
    rows = query(server, "SELECT value FROM meta WHERE name='scrub_state'")
    return json.loads(rows[0][0]) if rows else {}


def test_scrub_is_paced_and_resumes_after_a_crash(tmp_path):
    server = start_server(
        tmp_path, drives=2, extra_args=["--scrub-rate", "2MiB", "--scrub-interval", "1"]
    )
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="scrub")
        for i in range(10):
            s3.put_object(Bucket="scrub", Key=f"k{i:02}", Body=os.urandom(400_000))
        first = wait_for(
            "a pass over the objects saved part-way",
            lambda: (st := _saved(server)).get("phase") == "objects" and st["objects"] >= 2 and st,
            20,
            every=0.05,
        )
        server.kill9()
        server.start()
        done = wait_for(
            "the pass to finish",
            lambda: (
                (last := (status(server).get("scrub") or {}).get("last_pass"))
                and last["number"] == first["number"]
                and last
            ),
            30,
        )
        copies_bytes = 10 * 400_000 * 2
        print(f"\nscrub: saved at {first['objects']} objects, pass summary after restart {done}")
        assert done["started"] == first["started"], "the pass went on after the restart"
        assert done["objects"] == 10, "each object verified once in the pass, none skipped"
        assert done["bytes"] <= copies_bytes
        following = wait_for(
            "a whole pass without a restart",
            lambda: (
                (last := status(server)["scrub"].get("last_pass"))
                and last["number"] == first["number"] + 1
                and last
            ),
            30,
        )
        # A token bucket of RATE bytes/s holding at most RATE: bytes <= RATE * (t + 1).
        limit = RATE * (following["seconds"] + 1) * 1.05  # 5%: clock granularity
        print(
            f"scrub pace: {following['bytes']} bytes in {following['seconds']} s, bound {limit:.0f}"
        )
        assert following["bytes"] == copies_bytes and following["bytes"] <= limit
    finally:
        server.stop()


def test_scrub_rate_zero_turns_it_off(tmp_path):
    server = start_server(tmp_path, workers=1, extra_args=["--scrub-rate", "0"])
    try:
        time.sleep(2.0)
        assert status(server)["scrub"]["enabled"] is False
        assert "the scrubber is off" in server.log()
    finally:
        server.stop()


def test_a_long_upload_is_foreground_work_throughout(tmp_path):
    """Background work yields while requests run (DESIGN.md, bounded background work); a
    single upload that streams for seconds must keep the node's foreground meter fresh for
    all of it, not only at its start, or the scrubber resumes 0.2 s into it."""
    from holdfast.stores.activity import ForegroundMeter

    server = start_server(tmp_path)
    try:
        server.client().create_bucket(Bucket="slow")
        meter = ForegroundMeter(server.data_dirs[0] / "index" / "foreground.mmap")
        idle: list[float] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                idle.append(meter.idle_for())
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        body = os.urandom(12 * 1024 * 1024)
        assert slow_put(server, "slow", "big", body, 3.0) == 200
        done.set()
        sampler.join()
        middle = idle[len(idle) // 6 : -len(idle) // 6]  # away from the request's edges
        assert len(middle) > 50
        assert max(middle) < 1.0, f"foreground idle for {max(middle):.2f}s during the upload"
    finally:
        server.stop()
