"""The cluster's transfer slots in the SQLite index (a single node's: its one process that
runs the background work holds them). The engine-independent rules are in
holdfast/index/base.py ("transfer slots"); the PostgreSQL twin is
holdfast/index/postgres/transfers.py. Times are this machine's clock: a SQLite index has
one machine."""

from __future__ import annotations

import sqlite3
import time

from holdfast.index.records import TransferSlot, slot_request

TRANSFER_SLOTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS transfer_slots (
    slot INTEGER PRIMARY KEY,
    holder TEXT NOT NULL,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    token TEXT NOT NULL,
    expires_at REAL NOT NULL
);
"""

# One statement: the lowest slot number below the cap that is free or expired is taken,
# unless the live slots already number the cap (a cap lowered while more were held).
_ACQUIRE = """
WITH RECURSIVE n(s) AS (SELECT 0 UNION ALL SELECT s + 1 FROM n WHERE s + 1 < :cap)
INSERT INTO transfer_slots (slot, holder, kind, target, token, expires_at)
SELECT s, :holder, :kind, :target, :token, :now + :ttl FROM n
WHERE s NOT IN (SELECT slot FROM transfer_slots WHERE expires_at > :now)
  AND (SELECT count(*) FROM transfer_slots WHERE expires_at > :now) < :cap
ORDER BY s LIMIT 1
ON CONFLICT (slot) DO UPDATE SET holder = excluded.holder, kind = excluded.kind,
    target = excluded.target, token = excluded.token, expires_at = excluded.expires_at
RETURNING slot
"""


class SqliteTransfers:
    """Mixed into SqliteIndex: needs its ``_conn()`` and ``_transact(op)``."""

    def acquire_transfer_slot(
        self, cap: int, holder: str, kind: str, target: str, token: str, ttl: float
    ) -> int | None:
        args = slot_request(cap, holder, kind, target, token, ttl)

        def op(db: sqlite3.Connection) -> int | None:
            if args["cap"] < 1:
                return None
            row = db.execute(_ACQUIRE, {**args, "now": time.time()}).fetchone()
            return int(row[0]) if row else None

        return self._transact(op)  # type: ignore[attr-defined]

    def renew_transfer_slot(self, slot: int, token: str, ttl: float) -> bool:
        def op(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "UPDATE transfer_slots SET expires_at=? WHERE slot=? AND token=?",
                (time.time() + ttl, slot, token),
            )
            return cur.rowcount == 1

        return self._transact(op)  # type: ignore[attr-defined]

    def release_transfer_slot(self, slot: int, token: str) -> None:
        def op(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM transfer_slots WHERE slot=? AND token=?", (slot, token))

        return self._transact(op)  # type: ignore[attr-defined]

    def transfer_slots(self) -> list[TransferSlot]:
        now = time.time()
        rows = (
            self._conn()  # type: ignore[attr-defined]
            .execute(
                "SELECT slot, holder, kind, target, token, expires_at FROM transfer_slots "
                "WHERE expires_at > ? ORDER BY slot",
                (now,),
            )
            .fetchall()
        )
        return [TransferSlot(r[0], r[1], r[2], r[3], r[4], round(r[5] - now, 3)) for r in rows]
