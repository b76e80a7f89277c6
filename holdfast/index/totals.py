"""Per-bucket object counts and sizes, kept current by triggers in the same transaction as
every write to ``objects``.

The status page, the metrics and the scrubber's progress need "how many objects, how many
bytes, how many damaged". Counting the objects table answers that with a full scan: at a
million 4 KiB objects that is gigabytes of pages read every status refresh, and it showed up
as a third of a worker's CPU under load. Triggers keep the answer in one small row per
bucket instead; because they run inside the writing transaction, the totals can never drift
from the rows, whichever code path (PUT, copy, multipart, delete, repair, bulk import)
changed them. Damaged objects are found through a partial index that holds only them.
"""

from __future__ import annotations

import sqlite3

# The copies of an object, as the scrubber reads them: an inline object (no stores) counts
# as one copy, like a blob with one store.
_STORED = "{0}.size * max(1, coalesce(json_array_length(json_extract({0}.segments, '$[0].st')), 0))"

TOTALS_TRIGGERS = ("objects_totals_insert", "objects_totals_delete", "objects_totals_update")

# Counting a row in (NEW) and out (OLD); an UPDATE does both, so a row that changes size,
# state or even bucket moves between the right totals.
_COUNT_IN = f"""
    INSERT INTO bucket_totals VALUES
        (NEW.bucket, 1, NEW.size, {_STORED.format("NEW")}, NEW.state != 'ok')
    ON CONFLICT (bucket) DO UPDATE SET
        objects = objects + 1,
        bytes = bytes + NEW.size,
        stored_bytes = stored_bytes + {_STORED.format("NEW")},
        not_ok = not_ok + (NEW.state != 'ok');"""
_COUNT_OUT = f"""
    UPDATE bucket_totals SET
        objects = objects - 1,
        bytes = bytes - OLD.size,
        stored_bytes = stored_bytes - {_STORED.format("OLD")},
        not_ok = not_ok - (OLD.state != 'ok')
    WHERE bucket = OLD.bucket;"""

TOTALS_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS bucket_totals (
    bucket TEXT PRIMARY KEY,
    objects INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    stored_bytes INTEGER NOT NULL,
    not_ok INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS objects_totals_insert AFTER INSERT ON objects BEGIN{_COUNT_IN}
END;
CREATE TRIGGER IF NOT EXISTS objects_totals_delete AFTER DELETE ON objects BEGIN{_COUNT_OUT}
END;
CREATE TRIGGER IF NOT EXISTS objects_totals_update AFTER UPDATE ON objects BEGIN{_COUNT_OUT}{_COUNT_IN}
END;
"""


def rebuild_totals(db: sqlite3.Connection) -> None:
    """Recount from the rows (one scan): for an index created before the triggers existed.
    Run inside the write transaction that records the schema upgrade."""
    db.execute("DELETE FROM bucket_totals")
    db.execute(
        "INSERT INTO bucket_totals SELECT bucket, count(*), coalesce(sum(size), 0), "
        f"coalesce(sum({_STORED.format('objects')}), 0), coalesce(sum(state != 'ok'), 0) "
        "FROM objects GROUP BY bucket"
    )


def object_totals(db: sqlite3.Connection) -> tuple[int, int, int, int]:
    """(objects, bytes, bytes of all copies, damaged objects) over every bucket."""
    row = db.execute(
        "SELECT coalesce(sum(objects), 0), coalesce(sum(bytes), 0), "
        "coalesce(sum(stored_bytes), 0), coalesce(sum(not_ok), 0) FROM bucket_totals"
    ).fetchone()
    return row[0], row[1], row[2], row[3]


def bucket_usage(db: sqlite3.Connection, owner: str | None = None) -> list[tuple]:
    """Each bucket (one owner's, or all) with its totals, by name: one row per bucket read
    from the small totals table, never a count over the objects."""
    where, args = ("WHERE b.owner = ?", (owner,)) if owner is not None else ("", ())
    return db.execute(
        "SELECT b.name, b.owner, b.created, b.region, coalesce(t.objects, 0), "
        "coalesce(t.bytes, 0), coalesce(t.stored_bytes, 0), coalesce(t.not_ok, 0) "
        f"FROM buckets b LEFT JOIN bucket_totals t ON t.bucket = b.name {where} "
        "ORDER BY b.name",
        args,
    ).fetchall()


def damaged_keys(db: sqlite3.Connection, bucket: str, first: str, last: str) -> set[str]:
    """The damaged objects' keys in ``bucket`` between ``first`` and ``last`` (one listing
    page), read from the partial index that holds damaged objects only."""
    rows = db.execute(
        "SELECT key FROM objects WHERE state<>'ok' AND bucket=? AND key>=? AND key<=?",
        (bucket, first, last),
    )
    return {r[0] for r in rows}
