"""The per-bucket totals the triggers keep must always equal a count of the rows, whichever
write path changed them, and an index from before the triggers must be counted once."""

from __future__ import annotations

import sqlite3

from holdfast.index.records import BucketRecord, ObjectRecord, Segment
from holdfast.index.sqlite import OBJECTS_TABLE, SCHEMA_VERSION, SqliteIndex
from holdfast.index.totals import TOTALS_TRIGGERS, object_totals


def _obj(bucket: str, key: str, size: int, copies: int = 1, inline: bool = False) -> ObjectRecord:
    stores = () if inline else tuple(f"d{i}" for i in range(copies))
    seg = Segment(f"blob-{bucket}-{key}-{size}", size, 1024, b"\0\0\0\0", stores)
    return ObjectRecord(
        bucket, key, size, '"e"', 0.0, [seg], inline=b"x" * size if inline else None
    )


def _counted(index: SqliteIndex) -> tuple[int, int, int, int]:
    """The same four figures, by a full scan of the rows."""
    db = index._conn()
    objects, size, damaged = db.execute(
        "SELECT count(*), coalesce(sum(size), 0), coalesce(sum(state != 'ok'), 0) FROM objects"
    ).fetchone()
    stored = sum(
        o.size * max(1, len(o.segments[0].stores)) for o in index.scan_objects(None, 10**6)
    )
    return objects, size, stored, damaged


def test_totals_follow_every_write_path(tmp_path) -> None:
    index = SqliteIndex(tmp_path / "index.db")
    for name in ("a", "b"):
        index.create_bucket(BucketRecord(name, "root", 0.0, "us-east-1"))
    index.put_object(_obj("a", "k1", 100, copies=2))
    index.put_object(_obj("a", "k2", 10, inline=True))
    index.put_object(_obj("b", "k1", 7))
    assert object_totals(index._conn()) == _counted(index) == (3, 117, 217, 0)

    index.put_object(_obj("a", "k1", 50))  # overwrite: smaller, one copy
    index.mark_object_state("a", "k2", '"e"', "corrupt")
    assert object_totals(index._conn()) == _counted(index) == (3, 67, 67, 1)

    index.delete_object("a", "k2")
    index.delete_objects("b", ["k1", "missing"])
    index.import_objects(_obj("b", f"i{n}", 3) for n in range(5))
    assert object_totals(index._conn()) == _counted(index) == (6, 65, 65, 0)


def _make_version_1(path) -> None:
    """Turn an index into what version 1 wrote: objects WITHOUT ROWID keyed by (bucket,
    key), no totals table, no triggers."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    for trigger in TOTALS_TRIGGERS:
        db.execute(f"DROP TRIGGER {trigger}")
    db.execute("DROP TABLE bucket_totals")
    db.execute("DROP INDEX objects_damaged")
    old = OBJECTS_TABLE.replace("objects", "objects_v1", 1).replace(
        "UNIQUE (bucket, key)\n)", "PRIMARY KEY (bucket, key)\n) WITHOUT ROWID"
    )
    db.execute(old)
    columns = ", ".join(r[1] for r in db.execute("PRAGMA table_info(objects_v1)"))
    db.execute(f"INSERT INTO objects_v1 SELECT {columns} FROM objects")
    db.execute("DROP TABLE objects")
    db.execute("ALTER TABLE objects_v1 RENAME TO objects")
    db.execute("CREATE INDEX objects_damaged ON objects (bucket, key) WHERE state<>'ok'")
    db.execute("UPDATE meta SET value='1' WHERE name='schema_version'")
    db.execute("COMMIT")
    db.close()


def test_a_version_1_index_is_rebuilt_and_counted_once_on_open(tmp_path) -> None:
    path = tmp_path / "index.db"
    index = SqliteIndex(path)
    index.create_bucket(BucketRecord("a", "root", 0.0, "us-east-1"))
    index.import_objects(_obj("a", f"k{n}", 4, inline=n % 2 == 0) for n in range(10))
    index.mark_object_state("a", "k3", '"e"', "corrupt")
    before = [index.get_object("a", f"k{n}") for n in range(10)]
    index.close()
    _make_version_1(path)
    assert "WITHOUT ROWID" in _table_sql(path)

    reopened = SqliteIndex(path)
    assert "WITHOUT ROWID" not in _table_sql(path)
    assert [reopened.get_object("a", f"k{n}") for n in range(10)] == before
    assert object_totals(reopened._conn()) == _counted(reopened) == (10, 40, 40, 1)
    version = reopened._conn().execute("SELECT value FROM meta WHERE name='schema_version'")
    assert version.fetchone()[0] == str(SCHEMA_VERSION)
    reopened.put_object(_obj("a", "new", 6))
    reopened.delete_object("a", "k3")
    assert object_totals(reopened._conn()) == _counted(reopened) == (10, 42, 42, 0)
    assert reopened._conn().execute("SELECT count(*) FROM objects").fetchone()[0] == 10
    # A second open finds nothing to do and changes nothing.
    assert object_totals(SqliteIndex(path)._conn()) == (10, 42, 42, 0)


def _table_sql(path) -> str:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT sql FROM sqlite_master WHERE name='objects'").fetchone()[0]
    finally:
        db.close()
