"""The cluster's transfer slots in PostgreSQL (holdfast/index/base.py, "transfer slots";
holdfast/workers/transfers.py uses them). Each call is one statement; expiry is judged on
the engine's clock (``clock_timestamp()``), never a node's, so a node whose clock is off
neither steals live slots nor keeps dead ones."""

from __future__ import annotations

from typing import Any

from holdfast.index.records import TransferSlot, slot_request

_NOW = "extract(epoch from clock_timestamp())::float8"

# A free or expired slot below the cap, unless the live slots already number the cap. Two
# nodes picking the same free slot at once: the second waits for the first's commit, then
# its DO UPDATE finds the slot live and takes nothing (it asks again after a short wait).
# A random free number rather than the lowest makes that rare.
ACQUIRE = f"""
INSERT INTO transfer_slots (slot, holder, kind, target, token, expires_at)
SELECT s, %(holder)s, %(kind)s, %(target)s, %(token)s, {_NOW} + %(ttl)s
FROM generate_series(0, %(cap)s - 1) AS s
WHERE s NOT IN (SELECT slot FROM transfer_slots WHERE expires_at > {_NOW})
  AND (SELECT count(*) FROM transfer_slots WHERE expires_at > {_NOW}) < %(cap)s
ORDER BY random() LIMIT 1
ON CONFLICT (slot) DO UPDATE SET holder = EXCLUDED.holder, kind = EXCLUDED.kind,
    target = EXCLUDED.target, token = EXCLUDED.token, expires_at = EXCLUDED.expires_at
    WHERE transfer_slots.expires_at <= {_NOW}
RETURNING slot
"""

RENEW = f"UPDATE transfer_slots SET expires_at = {_NOW} + %s WHERE slot = %s AND token = %s"
RELEASE = "DELETE FROM transfer_slots WHERE slot = %s AND token = %s"
LIVE = (
    f"SELECT slot, holder, kind, target, token, expires_at - {_NOW} FROM transfer_slots "
    f"WHERE expires_at > {_NOW} ORDER BY slot"
)


async def acquire(
    conn: Any, cap: int, holder: str, kind: str, target: str, token: str, ttl: float
) -> int | None:
    if cap < 1:
        return None
    cur = await conn.execute(ACQUIRE, slot_request(cap, holder, kind, target, token, ttl))
    row = await cur.fetchone()
    return int(row[0]) if row else None


async def renew(conn: Any, slot: int, token: str, ttl: float) -> bool:
    cur = await conn.execute(RENEW, (float(ttl), slot, token))
    return cur.rowcount == 1


async def release(conn: Any, slot: int, token: str) -> None:
    await conn.execute(RELEASE, (slot, token))


def slot_of(row: tuple) -> TransferSlot:
    return TransferSlot(row[0], row[1], row[2], row[3], row[4], round(float(row[5]), 3))
