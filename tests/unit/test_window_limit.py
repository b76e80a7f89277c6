"""The repair rate's limit (holdfast/workers/limits.py, WindowLimit): whatever the
concurrency and however long each transfer takes, no window of ``window`` seconds sees more
than ``limit`` units done; and RateRecord's sliding maximum matches the events."""

from __future__ import annotations

import random
import threading
import time

from holdfast.workers.limits import RateRecord, TokenBucket, WindowLimit


def _busiest(done: list[tuple[float, float]], window: float) -> float:
    done = sorted(done)
    best = 0.0
    for i, (t, _) in enumerate(done):
        best = max(best, sum(a for u, a in done[i:] if u < t + window))
    return best


def _run(limit: WindowLimit, seconds: float, threads: int = 4) -> list[tuple[float, float]]:
    done: list[tuple[float, float]] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            amount = rng.choice([1, 2, 3, 4])
            limit.acquire(amount)
            time.sleep(rng.uniform(0, 0.05))  # the transfer
            with lock:
                done.append((time.monotonic(), amount))
            limit.release(amount)

    ts = [threading.Thread(target=worker, args=(s,)) for s in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return done


def test_no_window_ever_holds_more_than_the_limit() -> None:
    window, cap = 0.2, 10
    done = _run(WindowLimit(cap, window), 0.8)
    assert _busiest(done, window) <= cap
    # ... and the limit is used, not just respected: about cap per window overall.
    assert sum(a for _, a in done) >= cap * 2


def test_a_token_bucket_lets_a_window_see_twice_its_rate() -> None:
    """Why repair does not use one: its burst plus a window's refill."""
    window, rate = 0.2, 50.0  # 10 per 0.2 s
    bucket = TokenBucket(rate, burst=rate * window)
    done = []
    end = time.monotonic() + 0.4
    while time.monotonic() < end:
        bucket.take_sync(1)
        done.append((time.monotonic(), 1))
    assert _busiest(done, window) > rate * window * 1.5


def test_an_amount_above_the_limit_goes_alone_and_holds_longer() -> None:
    limit = WindowLimit(4, 0.1)
    limit.acquire(10)  # nothing under way: admitted
    limit.release(10)
    t0 = time.monotonic()
    limit.acquire(1)  # waits 10/4 windows
    assert time.monotonic() - t0 >= 0.2
    limit.release(1)


def test_rate_record_per_second_and_busiest_window() -> None:
    record = RateRecord(window=0.2)
    record.note_bytes(5)
    record.note_bytes(7)
    record.note_attempt(retry=False)
    record.note_attempt(retry=True)
    time.sleep(0.25)
    record.note_bytes(3)
    snap = record.snapshot()
    assert snap["busiest_window_bytes"] == 12
    assert sum(s[1] for s in snap["seconds"]) == 15
    assert sum(s[2] for s in snap["seconds"]) == 2
    assert sum(s[3] for s in snap["seconds"]) == 1
