"""Flow control for background work: token buckets and exponential backoff with jitter.

The EBS re-mirroring storm came from work that retried at once, everywhere, forever. Every
background loop in Holdfast takes its pace from these two pieces, so none can spin.
"""

from __future__ import annotations

import asyncio
import random
import time


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(rate, 1.0)
        self._tokens = self.burst
        self._stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def delay_for(self, amount: float = 1.0) -> float:
        """Seconds until ``amount`` tokens are available (0 if now)."""
        self._refill()
        missing = amount - self._tokens
        return 0.0 if missing <= 0 else missing / self.rate

    async def take(self, amount: float = 1.0) -> None:
        """Wait for and consume ``amount`` tokens (an amount above the burst is allowed and
        simply waits proportionally longer)."""
        self._refill()
        self._tokens -= amount
        if self._tokens < 0:
            await asyncio.sleep(-self._tokens / self.rate)


class Backoff:
    """Exponential backoff with "equal jitter": after n failures wait uniformly in
    [c/2, c] where c = min(cap, base * 2**n). Unlike full jitter it never waits ~0, so the
    retry rate of a loop that keeps failing has a hard upper bound; a success resets it."""

    def __init__(self, base: float = 0.5, cap: float = 60.0) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * (2**self.failures))
        self.failures += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0
