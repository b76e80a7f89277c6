"""The alert outbox: a small durable store of alerts, their delivery attempts and the
conditions that raised them (holdfast/ops/alerts.py decides what goes in and delivers it).

It is node-local on purpose, in the ops directory and apart from the index engine: alerts
must be committed and delivered while the index is broken or unreachable (DESIGN.md,
invariant 6), and "the index is down" is one of the alerts. SQLite in WAL mode with
``synchronous=FULL``; it lives in holdfast/index/ because every SQL string does.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

OUTBOX_FILE = "alerts.db"  # in the ops directory
KEEP_DELIVERED = 1000
KEEP_ATTEMPTS = 500

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uid TEXT NOT NULL UNIQUE,          -- sent with the alert: receivers can drop repeats
    rule TEXT NOT NULL,
    condition_key TEXT,
    kind TEXT NOT NULL,                -- firing, resolved or event
    severity TEXT NOT NULL,
    summary TEXT NOT NULL,
    details TEXT NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    delivered_at REAL,
    delivered_via TEXT
);
CREATE INDEX IF NOT EXISTS alerts_pending ON alerts (delivered_at, id);
CREATE TABLE IF NOT EXISTS conditions (
    key TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    summary TEXT NOT NULL,
    since REAL NOT NULL,
    last_seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id INTEGER NOT NULL,
    at REAL NOT NULL,
    channel TEXT NOT NULL,
    ok INTEGER NOT NULL,
    error TEXT
);
"""


def _iso_utc(epoch: float) -> str:
    dt = datetime.fromtimestamp(epoch, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


class Outbox:
    """The durable outbox. Every method opens its own connection: it is called from
    different threads, and a fresh open notices a replaced or vanished file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def in_dir(cls, directory: Path) -> Outbox:
        return cls(directory / OUTBOX_FILE)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=2.0, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            yield db
        finally:
            db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.executescript(SCHEMA)

    def raise_event(self, uid: str, rule: str, severity: str, summary: str, details: dict) -> bool:
        """A one-off alert (a restart); the uid makes raising it twice harmless."""
        with self._write() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO alerts (uid, rule, kind, severity, summary, details, created) VALUES (?,?,?,?,?,?,?)",
                (uid, rule, "event", severity, summary, json.dumps(details), time.time()),
            )
            return cur.rowcount == 1

    def apply(
        self,
        conditions: list[Any],  # holdfast.ops.alerts.Condition
        known_rules: set[str],
        clear_after: float = 30.0,
        now: float | None = None,
    ) -> list[str]:
        """Record which conditions hold; returns the rules of the alerts raised. A condition
        gone for ``clear_after`` seconds is resolved."""
        now = time.time() if now is None else now
        raised: list[str] = []
        with self._write() as db:
            active = {
                r[0]: r
                for r in db.execute(
                    "SELECT key, rule, severity, summary, since, last_seen FROM conditions"
                )
            }
            current = {c.key: c for c in conditions}
            for key, c in current.items():
                if key in active:
                    db.execute("UPDATE conditions SET last_seen=? WHERE key=?", (now, key))
                    continue
                db.execute(
                    "INSERT INTO conditions VALUES (?,?,?,?,?,?)",
                    (key, c.rule, c.severity, c.summary, now, now),
                )
                self._insert(
                    db,
                    f"{key}@{now:.3f}",
                    c.rule,
                    key,
                    "firing",
                    c.severity,
                    c.summary,
                    c.details,
                    now,
                )
                raised.append(c.rule)
            for key, (_, rule, _severity, summary, since, last_seen) in active.items():
                if key in current or rule not in known_rules or now - last_seen < clear_after:
                    continue
                db.execute("DELETE FROM conditions WHERE key=?", (key,))
                details = {"since": _iso_utc(since), "lasted_seconds": round(now - since, 1)}
                self._insert(
                    db,
                    f"{key}@{now:.3f}:resolved",
                    rule,
                    key,
                    "resolved",
                    "info",
                    f"resolved: {summary}",
                    details,
                    now,
                )
                raised.append(rule)
        return raised

    @staticmethod
    def _insert(db, uid, rule, key, kind, severity, summary, details, now) -> None:
        db.execute(
            "INSERT OR IGNORE INTO alerts (uid, rule, condition_key, kind, severity, summary, details, created) VALUES (?,?,?,?,?,?,?,?)",
            (uid, rule, key, kind, severity, summary, json.dumps(details), now),
        )

    def next_pending(self) -> dict | None:
        with self._db() as db:
            db.row_factory = sqlite3.Row
            row = db.execute(
                "SELECT * FROM alerts WHERE delivered_at IS NULL ORDER BY id LIMIT 1"
            ).fetchone()
            return _alert(row) if row else None

    def delivered(self, alert_id: int, channel: str) -> None:
        now = time.time()
        with self._write() as db:
            db.execute(
                "UPDATE alerts SET delivered_at=?, delivered_via=?, attempts=attempts+1, last_error=NULL WHERE id=?",
                (now, channel, alert_id),
            )
            db.execute(
                "INSERT INTO attempts (alert_id, at, channel, ok) VALUES (?,?,?,1)",
                (alert_id, now, channel),
            )
            self._prune(db)

    def failed(self, alert_id: int, errors: list[tuple[str, str]], next_attempt: float) -> None:
        now = time.time()
        summary = "; ".join(f"{ch}: {err}" for ch, err in errors)
        with self._write() as db:
            db.execute(
                "UPDATE alerts SET attempts=attempts+1, next_attempt=?, last_error=? WHERE id=?",
                (next_attempt, summary, alert_id),
            )
            db.executemany(
                "INSERT INTO attempts (alert_id, at, channel, ok, error) VALUES (?,?,?,0,?)",
                [(alert_id, now, ch, err) for ch, err in errors],
            )

    @staticmethod
    def _prune(db: sqlite3.Connection) -> None:
        db.execute(
            "DELETE FROM alerts WHERE delivered_at IS NOT NULL AND id NOT IN "
            "(SELECT id FROM alerts WHERE delivered_at IS NOT NULL ORDER BY id DESC LIMIT ?)",
            (KEEP_DELIVERED,),
        )
        db.execute(
            "DELETE FROM attempts WHERE id NOT IN (SELECT id FROM attempts ORDER BY id DESC LIMIT ?)",
            (KEEP_ATTEMPTS,),
        )

    def recent(self, limit: int = 20) -> list[dict]:
        with self._db() as db:
            db.row_factory = sqlite3.Row
            return [
                _alert(r)
                for r in db.execute("SELECT * FROM alerts ORDER BY id DESC LIMIT ?", (limit,))
            ]

    def summary(self, channels: list[str]) -> dict:
        """Delivery state for the status page and metrics."""
        now = time.time()
        with self._db() as db:
            pending, oldest = db.execute(
                "SELECT count(*), min(created) FROM alerts WHERE delivered_at IS NULL"
            ).fetchone()
            nxt = db.execute(
                "SELECT next_attempt, last_error FROM alerts WHERE delivered_at IS NULL ORDER BY id LIMIT 1"
            ).fetchone()
            last_ok = db.execute(
                "SELECT at, channel FROM attempts WHERE ok=1 ORDER BY id DESC LIMIT 1"
            ).fetchone()
            last_fail = db.execute(
                "SELECT at, channel, error FROM attempts WHERE ok=0 ORDER BY id DESC LIMIT 1"
            ).fetchone()
            active = db.execute(
                "SELECT key, rule, severity, summary, since FROM conditions ORDER BY since"
            ).fetchall()
        return {
            "channels": channels,
            "pending": pending,
            "oldest_pending_age_seconds": round(now - oldest, 1) if oldest else 0.0,
            "next_attempt_at": nxt[0] if nxt else None,
            "last_error": nxt[1] if nxt else None,
            "last_delivery": {"at": last_ok[0], "channel": last_ok[1]} if last_ok else None,
            "last_failure": {"at": last_fail[0], "channel": last_fail[1], "error": last_fail[2]}
            if last_fail
            else None,
            "active": [
                {"key": k, "rule": r, "severity": s, "summary": m, "since": t}
                for k, r, s, m, t in active
            ],
            "active_count": len(active),
            "recent": self.recent(20),
        }


def _alert(row: sqlite3.Row) -> dict:
    d = dict(row)
    d["details"] = json.loads(d["details"])
    if d["delivered_at"] is not None:
        d["state"] = "delivered"
    else:
        d["state"] = "retrying" if d["attempts"] else "pending"
    return d
