"""Flow control for background work: token buckets and exponential backoff with jitter.

The EBS re-mirroring storm came from work that retried at once, everywhere, forever. Every
background loop in Holdfast takes its pace from these two pieces, so none can spin.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
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


class Pacer:
    """What one repair (or scrub, or fsck) does between blocks: take bytes from the shared
    token bucket, and let foreground requests go first."""

    def __init__(self, node: Any, bytes_per_second: float) -> None:
        self.node = node
        self.bucket = TokenBucket(bytes_per_second, burst=max(bytes_per_second, 1024**2))

    def __call__(self, nbytes: int) -> None:
        cfg = self.node.config
        self.node.foreground.wait_quiet_sync(
            cfg.foreground_quiet_seconds, cfg.foreground_max_wait_seconds
        )
        self.bucket.take_sync(nbytes)
