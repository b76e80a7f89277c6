"""Leadership of a background job across the cluster: a PostgreSQL session advisory lock,
held on a connection of its own.

Why an advisory lock and not a lease row with an expiry: the lock lives exactly as long as
the holder's session, so a holder that dies (process killed, node powered off) loses it as
soon as PostgreSQL notices the connection is gone (TCP keepalives bound that to seconds),
with no clock to trust, no renewal writes and no takeover delay to tune. The cost is that
a holder must notice when *its* connection is gone: the lease pings it once a second and
counts as lost at the first failure, before anyone else could have taken it over (the
server needs at least the keepalive time to drop the session). After a Patroni failover
the new primary has no locks at all; the old holder's pings fail at the same moment, so
at worst two holders overlap for one ping interval: every job's steps are transactions on
the index, so an overlap repeats work, never corrupts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Callable

import psycopg

from holdfast.index.base import Lease

log = logging.getLogger("holdfast.index.postgres")

# The first key of every job lock ("hfjb"): the second is a CRC of the job name.
JOB_LOCK_SPACE = 0x68666A62
PING_SECONDS = 1.0


def job_lock_key(job: str) -> int:
    """A stable signed 32-bit key for ``job`` (advisory locks take two int4 keys)."""
    value = zlib.crc32(job.encode())
    return value - (1 << 32) if value >= 1 << 31 else value


class AdvisoryLease(Lease):
    def __init__(self, conninfo: str, job: str, key: int, timeout: float) -> None:
        self.job = job
        self._conninfo = conninfo
        self._key = key
        self._timeout = timeout
        self._conn: psycopg.AsyncConnection | None = None
        self._held = False
        self._pinger: asyncio.Task | None = None
        self.on_release: Callable[[AdvisoryLease], None] | None = None

    @property
    def held(self) -> bool:
        return self._held

    async def acquire(self) -> bool:
        """Take the lock if it is free; False at once if someone holds it or the engine
        cannot be reached."""
        try:
            async with asyncio.timeout(self._timeout):
                self._conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
                cur = await self._conn.execute(
                    "SELECT pg_try_advisory_lock(%s, %s)", (JOB_LOCK_SPACE, self._key)
                )
                (got,) = await cur.fetchone()
        except (psycopg.Error, TimeoutError, OSError) as e:
            log.debug("lease %s: engine unreachable: %s", self.job, e)
            await self._drop()
            return False
        if not got:
            await self._drop()
            return False
        self._held = True
        self._pinger = asyncio.create_task(self._ping(), name=f"lease-{self.job}")
        return True

    async def _ping(self) -> None:
        while self._held:
            await asyncio.sleep(PING_SECONDS)
            try:
                async with asyncio.timeout(self._timeout):
                    assert self._conn is not None
                    await self._conn.execute("SELECT 1")
            except (psycopg.Error, TimeoutError, OSError, AssertionError) as e:
                log.warning("lease %s lost: %s", self.job, e)
                self._held = False
                await self._drop()
                if self.on_release is not None:
                    self.on_release(self)
                return

    async def release(self) -> None:
        was_held, self._held = self._held, False
        if self._pinger is not None and self._pinger is not asyncio.current_task():
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pinger
        self._pinger = None
        if was_held and self._conn is not None and not self._conn.closed:
            with contextlib.suppress(psycopg.Error, TimeoutError, OSError):
                async with asyncio.timeout(self._timeout):
                    await self._conn.execute(
                        "SELECT pg_advisory_unlock(%s, %s)", (JOB_LOCK_SPACE, self._key)
                    )
        await self._drop()
        if self.on_release is not None:
            self.on_release(self)

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                # Closing the session releases the lock on the server in any case.
                await asyncio.wait_for(conn.close(), 2.0)
