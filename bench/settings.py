"""Sizes and counts for a full run and for the smoke run.

Kept in one place so the smoke mode exercises exactly the same code paths as
the real benchmark, only smaller.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

ACCESS_KEY = "HOLDFASTBENCHKEY0001"
SECRET_KEY = "holdfast-bench-secret-key-0000000000000001"
REGION = "us-east-1"
BUCKET = "bench"
LIST_BUCKET = "bench-list"


@dataclass(frozen=True)
class Settings:
    """Everything a workload needs to know about how big to be."""

    duration: int = 10  # seconds per wrk run
    connections: int = 16
    wrk_threads: int = 1  # one epoll thread is plenty and keeps the client cheap
    small_size: int = 4 * KIB
    put_pool_per_second: int = 6000  # unique presigned PUT URLs per second of run
    put_pool_max: int = 120_000
    get_keys: int = 10_000  # distinct small objects GET and HEAD read (issue 16)
    list_keys: int = 10_000
    list_page: int = 1000
    list_repeats: int = 3
    large_size: int = 64 * MIB
    large_count: int = 8
    large_parallel: int = 4
    rss_size: int = 1 * GIB
    index_counts: tuple[int, int] = (10_000, 1_000_000)
    http_populate_max: int = 10_000  # above this, only populate_index() is fast enough
    restart_repeats: int = 3
    populate_connections: int = 16
    ready_timeout: float = 90.0
    smoke: bool = False

    def put_pool(self) -> int:
        """How many distinct PUT URLs to presign: enough for the run, capped for time."""
        return max(1000, min(self.duration * self.put_pool_per_second, self.put_pool_max))


FULL = Settings()

SMOKE = Settings(
    duration=1,
    connections=4,
    put_pool_per_second=2000,
    get_keys=50,
    list_keys=120,
    list_page=50,
    list_repeats=1,
    large_size=1 * MIB,
    large_count=2,
    large_parallel=2,
    rss_size=16 * MIB,
    index_counts=(100, 1000),
    http_populate_max=100,
    restart_repeats=1,
    populate_connections=4,
    ready_timeout=30.0,
    smoke=True,
)


def settings_for(smoke: bool, duration: int | None) -> Settings:
    """Pick the base settings and apply a --duration override."""
    base = SMOKE if smoke else FULL
    return replace(base, duration=duration) if duration else base
