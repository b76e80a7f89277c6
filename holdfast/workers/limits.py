"""Flow control for background work: token buckets and exponential backoff with jitter.

The EBS re-mirroring storm came from work that retried at once, everywhere, forever. Every
background loop in Holdfast takes its pace from these two pieces, so none can spin.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import random
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(rate, 1.0)
        self._tokens = self.burst
        self._stamp = time.monotonic()
        self._lock = threading.Lock()  # take_sync is called from several threads

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def delay_for(self, amount: float = 1.0) -> float:
        """Seconds until ``amount`` tokens are available (0 if now)."""
        self._refill()
        missing = amount - self._tokens
        return 0.0 if missing <= 0 else missing / self.rate

    def _debit(self, amount: float) -> float:
        """Consume ``amount`` tokens now (possibly going into debt); the wait owed."""
        with self._lock:
            self._refill()
            self._tokens -= amount
            return -self._tokens / self.rate if self._tokens < 0 else 0.0

    async def take(self, amount: float = 1.0) -> None:
        """Wait for and consume ``amount`` tokens (an amount above the burst is allowed and
        simply waits proportionally longer)."""
        wait = self._debit(amount)
        if wait:
            await asyncio.sleep(wait)

    def take_sync(self, amount: float = 1.0) -> None:
        """:meth:`take` for code running in a worker thread."""
        wait = self._debit(amount)
        if wait:
            time.sleep(wait)


class Backoff:
    """Exponential backoff with "equal jitter": after n failures wait uniformly in
    [c/2, c] where c = min(cap, base * 2**n). Unlike full jitter it never waits ~0, so the
    retry rate of a loop that keeps failing has a hard upper bound; a success resets it."""

    def __init__(self, base: float = 0.5, cap: float = 60.0) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0

    def next_delay(self) -> float:
        delay = jittered_delay(self.base, self.cap, self.failures)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0


def jittered_delay(base: float, cap: float, failures: int) -> float:
    """The delay after ``failures`` earlier failures: uniform in [c/2, c], c = min(cap,
    base * 2**failures). Shared by every backoff, including the durable per-row one of the
    repair queue (whose failure count lives in the index)."""
    ceiling = min(cap, base * (2 ** min(failures, 62)))
    return random.uniform(ceiling / 2, ceiling)


def max_attempts(base: float, cap: float, seconds: float) -> int:
    """The most attempts a loop backing off with :func:`jittered_delay` can make within
    ``seconds`` (every delay at its minimum): the bound the storm check holds repair to."""
    attempts, elapsed = 1, 0.0
    while True:
        elapsed += min(cap, base * 2 ** min(attempts - 1, 62)) / 2
        if elapsed > seconds:
            return attempts
        attempts += 1


class WindowLimit:
    """At most ``limit`` units in any ``window`` seconds, a sliding window, counted when
    they are done (a block written), not when they were asked for.

    A token bucket of rate r and burst b lets b + r through in a second (twice the rate
    when b = r, as at the start of a repair storm). This limit is the rule itself: a block
    is admitted only if the blocks done within the last ``window`` seconds, the blocks
    still under way and it fit under ``limit``; a block done at time t counts until
    t + window. So for any window, take the block admitted last of those done in it: each
    other was, at that moment, under way or done less than a window before, and they were
    counted together. (It costs some throughput: a block holds its share for its transfer
    time plus the window.) An amount above ``limit`` is admitted alone and holds the
    window proportionally longer, so the long-run rate stays at ``limit``."""

    def __init__(self, limit: float, window: float = 1.0) -> None:
        if limit <= 0:
            raise ValueError("limit must be positive")
        self.limit = limit
        self.window = window
        self._done: list[tuple[float, int, float]] = []  # heap: (expires, seq, amount)
        self._done_sum = 0.0
        self._moving = 0.0
        self._seq = 0
        self._cond = threading.Condition()

    def _expire(self, now: float) -> None:
        while self._done and self._done[0][0] <= now:
            self._done_sum -= heapq.heappop(self._done)[2]
        if not self._done:
            self._done_sum = 0.0  # no float drift left behind

    def acquire(self, amount: float) -> None:
        """Wait until ``amount`` fits, then count it as under way."""
        with self._cond:
            while True:
                now = time.monotonic()
                self._expire(now)
                used = self._done_sum + self._moving
                if used + amount <= self.limit or used <= 0:
                    self._moving += amount
                    return
                self._cond.wait(self._done[0][0] - now if self._done else None)

    def release(self, amount: float) -> None:
        """``amount`` (acquired before) is done now."""
        with self._cond:
            self._moving -= amount
            hold = self.window * max(1.0, amount / self.limit)
            self._seq += 1
            heapq.heappush(self._done, (time.monotonic() + hold, self._seq, amount))
            self._done_sum += amount
            self._cond.notify_all()


class RateRecord:
    """What background work did in each second, kept for the last ``keep`` seconds: bytes
    moved and attempts started, per wall-clock second, and the most bytes done within any
    sliding ``window`` (the figure the repair limit is held to). Read by the status page
    and the storm test (tests/cluster/test_storm.py)."""

    def __init__(self, keep: int = 600, window: float = 1.0) -> None:
        self.keep = keep
        self.window = window
        self.seconds: dict[int, list[int]] = {}  # second -> [bytes, attempts, retries]
        self.busiest_window_bytes = 0
        self._recent: deque[tuple[float, int]] = deque()  # (monotonic, bytes) in the window
        self._recent_sum = 0
        self._lock = threading.Lock()

    def _slot(self) -> list[int]:
        second = int(time.time())
        slot = self.seconds.get(second)
        if slot is None:
            slot = self.seconds[second] = [0, 0, 0]
            for old in [s for s in self.seconds if s <= second - self.keep]:
                del self.seconds[old]
        return slot

    def note_bytes(self, nbytes: int) -> None:
        with self._lock:
            self._slot()[0] += nbytes
            now = time.monotonic()
            self._recent.append((now, nbytes))
            self._recent_sum += nbytes
            while self._recent and self._recent[0][0] <= now - self.window:
                self._recent_sum -= self._recent.popleft()[1]
            self.busiest_window_bytes = max(self.busiest_window_bytes, self._recent_sum)

    def note_attempt(self, retry: bool) -> None:
        with self._lock:
            slot = self._slot()
            slot[1] += 1
            slot[2] += int(retry)

    def snapshot(self, last: int = 300) -> dict:
        with self._lock:
            since = int(time.time()) - last
            return {
                "window_seconds": self.window,
                "busiest_window_bytes": self.busiest_window_bytes,
                # [second, bytes, attempts, retries], seconds with nothing left out
                "seconds": [[s, *v] for s, v in sorted(self.seconds.items()) if s > since],
            }


class Pacer:
    """What a tool's verification or repair (the scrubber, ``holdfast fsck``) does between
    blocks: take bytes from its own token bucket (a burst of one second's worth), and let
    foreground requests go first. The background workers' movers of bytes share the node's
    one transfer queue instead (holdfast/workers/transfers.py)."""

    def __init__(self, node: Any, bytes_per_second: float) -> None:
        self.node = node
        self.bucket = TokenBucket(bytes_per_second, burst=max(bytes_per_second, 1024**2))

    def _wait_quiet(self) -> None:
        cfg = self.node.config
        self.node.foreground.wait_quiet_sync(
            cfg.foreground_quiet_seconds, cfg.foreground_max_wait_seconds
        )

    def transfer(self, target_store: str) -> contextlib.AbstractContextManager[Pacer]:
        """One blob toward ``target_store``: this pacer itself (a tool's own limit, no
        cluster slot)."""
        return contextlib.nullcontext(self)

    def op(self, target_store: str | None) -> None:
        """An operation: not counted by a tool's own limit."""

    def __call__(self, nbytes: int) -> None:
        """Before reading ``nbytes`` (verifying a copy): counted at once."""
        self._wait_quiet()
        self.bucket.take_sync(nbytes)

    @contextlib.contextmanager
    def moving(self, nbytes: int) -> Iterator[None]:
        """Around moving one block: admitted under the limit first."""
        self(nbytes)
        yield
