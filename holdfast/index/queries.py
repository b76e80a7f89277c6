"""Small SQL helpers shared by the index modules."""

from __future__ import annotations

import sqlite3

from holdfast.index.rows import part_from_row  # noqa: F401  (re-exported: the engines' callers)

PART_COLUMNS = "upload_id, part_number, size, etag, md5, checksum, last_modified, segment"


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


def queue_for_gc(db: sqlite3.Connection, blob_id: str, stores: str, due: float) -> None:
    """Hand a blob to the GC: no longer live, deleted from ``stores`` (comma-separated)
    once ``due`` has passed (the grace that lets in-flight reads finish)."""
    db.execute("DELETE FROM live_blobs WHERE blob_id=?", (blob_id,))
    db.execute("INSERT OR REPLACE INTO gc_queue VALUES (?,?,?)", (blob_id, stores, due))
