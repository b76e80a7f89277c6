"""The SQLite index's notification outbox and SSE key re-sealing (mixed into SqliteIndex).

The outbox rows are written by the object writes themselves (``_notify_*`` below, called
inside their transactions); the delivery worker (holdfast/workers/notify.py) reads the
heads of each (bucket, target) stream, and deletes a row once its target took it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

from holdfast.index import notify
from holdfast.index.records import NotifyEvent, ObjectRecord, VersionRef

T = TypeVar("T")

OUTBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS notify_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    bucket TEXT NOT NULL,
    target TEXT NOT NULL,
    config_id TEXT NOT NULL,
    event TEXT NOT NULL,
    key TEXT NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    vseq INTEGER NOT NULL,
    vnull INTEGER NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    state TEXT NOT NULL DEFAULT 'pending'
);
CREATE INDEX IF NOT EXISTS notify_outbox_stream ON notify_outbox (state, bucket, target, id);
"""

_SELECT = f"SELECT id, {notify.OUTBOX_COLUMNS} FROM notify_outbox"


def _headers_text(headers: dict) -> str:
    return json.dumps(headers, separators=(",", ":"), sort_keys=True)


class SqliteNotify:
    """Needs ``_conn()`` and ``_transact(op)`` from SqliteIndex."""

    _conn: Callable[[], sqlite3.Connection]
    _transact: Callable[..., object]

    # -- written inside the object writes' transactions --------------------------------------

    @staticmethod
    def _notify_config(db: sqlite3.Connection, bucket: str) -> str | None:
        row = db.execute(
            "SELECT value FROM bucket_configs WHERE bucket=? AND name=?",
            (bucket, notify.CONFIG_NAME),
        ).fetchone()
        return None if row is None else row[0]

    @staticmethod
    def _insert_events(db: sqlite3.Connection, rows: list) -> None:
        if rows:
            db.executemany(
                f"INSERT INTO notify_outbox ({notify.OUTBOX_COLUMNS}) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )

    def _notify_created(self, db: sqlite3.Connection, obj: ObjectRecord, event=None) -> None:
        config = self._notify_config(db, obj.bucket)
        if config is not None:
            self._insert_events(db, notify.created_rows(config, obj, event))

    def _notify_removed(
        self,
        db: sqlite3.Connection,
        bucket: str,
        keys: list[str],
        results: list[bool | VersionRef | ObjectRecord | None],
    ) -> None:
        config = self._notify_config(db, bucket)
        if config is None:
            return
        for key, result in zip(keys, results, strict=True):
            self._insert_events(db, notify.removed_rows(config, bucket, key, result))

    # -- the delivery worker's calls ---------------------------------------------------------

    def due_notifications(
        self, streams: int, per_stream: int, now: float | None = None
    ) -> list[list[NotifyEvent]]:
        now = time.time() if now is None else now
        db = self._conn()
        heads = db.execute(
            "SELECT o.id, o.bucket, o.target, o.next_attempt FROM notify_outbox o JOIN "
            "(SELECT min(id) AS id FROM notify_outbox WHERE state='pending' "
            "GROUP BY bucket, target) h ON h.id = o.id ORDER BY o.id"
        ).fetchall()
        out = []
        for _, bucket, target, next_attempt in heads:
            if next_attempt > now:
                continue
            rows = db.execute(
                f"{_SELECT} WHERE state='pending' AND bucket=? AND target=? ORDER BY id LIMIT ?",
                (bucket, target, per_stream),
            ).fetchall()
            out.append([notify.event_from_row(r) for r in rows])
            if len(out) >= streams:
                break
        return out

    def finish_notifications(self, ids: list[int]) -> None:
        def op(db: sqlite3.Connection):
            db.executemany("DELETE FROM notify_outbox WHERE id=?", [(i,) for i in ids])

        return self._transact(op)

    def defer_notification(self, event_id: int, not_before: float, error: str, dead: bool) -> None:
        def op(db: sqlite3.Connection):
            db.execute(
                "UPDATE notify_outbox SET attempts=attempts+1, next_attempt=?, last_error=?, "
                "state=? WHERE id=?",
                (not_before, error[:500], "dead" if dead else "pending", event_id),
            )

        return self._transact(op)

    def retry_dead_notifications(self, target: str | None = None) -> int:
        def op(db: sqlite3.Connection):
            where, args = ("AND target=?", (target,)) if target else ("", ())
            cur = db.execute(
                "UPDATE notify_outbox SET state='pending', attempts=0, next_attempt=0 "
                f"WHERE state='dead' {where}",
                args,
            )
            return cur.rowcount

        return self._transact(op)

    def notification_summary(self) -> dict:
        db = self._conn()
        out: dict = {}
        for target, state, n, oldest in db.execute(
            "SELECT target, state, count(*), min(created) FROM notify_outbox GROUP BY target, state"
        ):
            out.setdefault(target, {})[state] = {"rows": n, "oldest": oldest}
        return out

    def dead_notifications(self, limit: int = 100) -> list[NotifyEvent]:
        rows = self._conn().execute(
            f"{_SELECT} WHERE state='dead' ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [notify.event_from_row(r) for r in rows]

    # -- SSE-S3 data keys (holdfast/workers/reseal.py) ----------------------------------------

    def scan_sealed(
        self, table: str, after: tuple[str, str, int] | None, limit: int, marker: str
    ) -> list[tuple[str, str, int, str]]:
        """(bucket, key, vseq, value of header ``marker``) of the rows of ``table``
        ("objects" or "versions") whose headers hold it, in (bucket, key, vseq) order."""
        if table not in ("objects", "versions"):
            raise ValueError(table)
        where, args = ("AND (bucket, key, vseq) > (?, ?, ?)", after) if after else ("", ())
        rows = self._conn().execute(
            f"SELECT bucket, key, vseq, headers FROM {table} WHERE headers LIKE ? {where} "
            "ORDER BY bucket, key, vseq LIMIT ?",
            (f'%"{marker}"%', *args, limit),
        )
        out = []
        for bucket, key, vseq, headers in rows:
            value = json.loads(headers).get(marker)
            if value is not None:
                out.append((bucket, key, vseq, value))
        return out

    def replace_header(
        self, bucket: str, key: str, vseq: int, name: str, old: str, new: str
    ) -> bool:
        """Compare and set of one stored header of the version (bucket, key, vseq), current
        or not: False if the version is gone or the header changed meanwhile."""

        def op(db: sqlite3.Connection):
            for table in ("objects", "versions"):
                row = db.execute(
                    f"SELECT headers FROM {table} WHERE bucket=? AND key=? AND vseq=?",
                    (bucket, key, vseq),
                ).fetchone()
                if row is None:
                    continue
                headers = json.loads(row[0])
                if headers.get(name) != old:
                    return False
                headers[name] = new
                db.execute(
                    f"UPDATE {table} SET headers=? WHERE bucket=? AND key=? AND vseq=?",
                    (_headers_text(headers), bucket, key, vseq),
                )
                return True
            return False

        return self._transact(op)

    def replace_upload_header(self, upload_id: str, name: str, old: str, new: str) -> bool:
        def op(db: sqlite3.Connection):
            row = db.execute(
                "SELECT headers FROM uploads WHERE upload_id=?", (upload_id,)
            ).fetchone()
            if row is None:
                return False
            headers = json.loads(row[0])
            if headers.get(name) != old:
                return False
            headers[name] = new
            db.execute(
                "UPDATE uploads SET headers=? WHERE upload_id=?",
                (_headers_text(headers), upload_id),
            )
            return True

        return self._transact(op)
