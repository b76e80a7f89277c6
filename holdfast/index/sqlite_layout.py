"""The cluster layout in the SQLite index (a single node's layout: one node, or a test).

Every applied version is a row of ``layouts`` (its nodes as JSON text and its audit
record), so the history is the table itself; ``layout_staged`` holds at most one staged
layout. Apply is a compare-and-set inside one write transaction: the version read and the
row inserted are in the same transaction, under the index's single writer."""

from __future__ import annotations

import sqlite3
import time

from holdfast.index.errors import Conflict
from holdfast.index.records import LayoutRecord, StagedLayout, nodes_from_text, nodes_to_text

LAYOUT_SCHEMA = """
CREATE TABLE IF NOT EXISTS layouts (
    version INTEGER PRIMARY KEY,
    nodes TEXT NOT NULL,
    applied_at REAL NOT NULL,
    applied_by TEXT NOT NULL,
    diff TEXT NOT NULL,
    blast TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS layout_staged (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    base_version INTEGER NOT NULL,
    nodes TEXT NOT NULL,
    staged_at REAL NOT NULL,
    staged_by TEXT NOT NULL
);
"""

_COLUMNS = "version, nodes, applied_at, applied_by, diff, blast"


def _record(row: tuple) -> LayoutRecord:
    return LayoutRecord(row[0], nodes_from_text(row[1]), row[2], row[3], row[4], row[5])


class SqliteLayout:
    """Mixed into SqliteIndex: needs its ``_conn()`` and ``_transact(op)``."""

    def layout_version(self) -> int:
        row = self._conn().execute("SELECT max(version) FROM layouts").fetchone()  # type: ignore[attr-defined]
        return int(row[0] or 0)

    def get_layout(self) -> LayoutRecord | None:
        row = (
            self._conn()  # type: ignore[attr-defined]
            .execute(f"SELECT {_COLUMNS} FROM layouts ORDER BY version DESC LIMIT 1")
            .fetchone()
        )
        return _record(row) if row else None

    def get_staged_layout(self) -> StagedLayout | None:
        row = (
            self._conn()  # type: ignore[attr-defined]
            .execute("SELECT base_version, nodes, staged_at, staged_by FROM layout_staged")
            .fetchone()
        )
        return StagedLayout(row[0], nodes_from_text(row[1]), row[2], row[3]) if row else None

    def stage_layout(self, staged: StagedLayout | None) -> None:
        def op(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM layout_staged")
            if staged is not None:
                db.execute(
                    "INSERT INTO layout_staged VALUES (1,?,?,?,?)",
                    (
                        staged.base_version,
                        nodes_to_text(staged.nodes),
                        staged.staged_at or time.time(),
                        staged.staged_by,
                    ),
                )

        return self._transact(op)  # type: ignore[attr-defined]

    def apply_layout(
        self, expect_version: int, layout: LayoutRecord, drop_staged: bool = True
    ) -> int:
        def op(db: sqlite3.Connection) -> int:
            (current,) = db.execute("SELECT coalesce(max(version), 0) FROM layouts").fetchone()
            if current != expect_version:
                raise Conflict(
                    f"the layout is at version {current}, not {expect_version}: someone "
                    "applied a change meanwhile"
                )
            new = expect_version + 1
            db.execute(
                f"INSERT INTO layouts ({_COLUMNS}) VALUES (?,?,?,?,?,?)",
                (
                    new,
                    nodes_to_text(layout.nodes),
                    layout.applied_at or time.time(),
                    layout.applied_by,
                    layout.diff,
                    layout.blast,
                ),
            )
            if drop_staged:
                db.execute("DELETE FROM layout_staged")
            return new

        return self._transact(op)  # type: ignore[attr-defined]

    def layout_history(self, limit: int = 50) -> list[LayoutRecord]:
        rows = (
            self._conn()  # type: ignore[attr-defined]
            .execute(f"SELECT {_COLUMNS} FROM layouts ORDER BY version DESC LIMIT ?", (limit,))
            .fetchall()
        )
        return [_record(r) for r in rows]
