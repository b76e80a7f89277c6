"""Small SQL helpers shared by the index modules."""

from __future__ import annotations

import sqlite3


def blob_ids_in(db: sqlite3.Connection, table: str, blob_ids: list[str]) -> set[str]:
    """The subset of ``blob_ids`` present in ``table`` (a blob_id-keyed table), queried in
    chunks that stay under SQLite's bound-parameter limit."""
    found: set[str] = set()
    for i in range(0, len(blob_ids), 500):
        chunk = blob_ids[i : i + 500]
        marks = ",".join("?" * len(chunk))
        found.update(
            r[0]
            for r in db.execute(f"SELECT blob_id FROM {table} WHERE blob_id IN ({marks})", chunk)
        )
    return found
