"""The SQLite index's versioned migrations (holdfast/index/sqlite_migrations.py): processes
starting at once migrate exactly once between them, the version is recorded, an index from
a newer Holdfast is refused, an index from before the migration list is brought up to date."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from holdfast.index.errors import SchemaTooNew
from holdfast.index.sqlite import SqliteIndex
from holdfast.index.sqlite_migrations import MIGRATIONS, SCHEMA_VERSION


def _open(path: str, barrier, out) -> None:
    barrier.wait()
    out.put(SqliteIndex(Path(path)).migrations_applied)


def test_processes_starting_at_once_migrate_exactly_once(tmp_path) -> None:
    ctx = multiprocessing.get_context("fork")
    path = str(tmp_path / "index.db")
    barrier, out = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_open, args=(path, barrier, out)) for _ in range(4)]
    for p in procs:
        p.start()
    applied = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    assert sorted(v for a in applied for v in a) == [m.version for m in MIGRATIONS]
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone() == (
        str(SCHEMA_VERSION),
    )


def test_an_index_from_a_newer_holdfast_is_refused(tmp_path) -> None:
    path = tmp_path / "index.db"
    SqliteIndex(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value=? WHERE name='schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(SchemaTooNew):
        SqliteIndex(path)


def test_a_version_2_index_without_later_tables_gets_them(tmp_path) -> None:
    """Before the migration list, a Holdfast at version 2 created tables it added later
    at every start; migration 3 makes sure they exist."""
    path = tmp_path / "index.db"
    SqliteIndex(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP TABLE repair_queue")
    db.execute("UPDATE meta SET value='2' WHERE name='schema_version'")
    db.close()
    index = SqliteIndex(path)
    # 4: layout; 5: tags; 6: versions; 7: back-end stores, a policy's spread by kind; 8: lock;
    # 9: the notification outbox; 10: transfer slots
    assert index.migrations_applied == [3, 4, 5, 6, 7, 8, 9, 10]
    assert index.repairs() == []
    assert SqliteIndex(path).migrations_applied == []


def test_a_version_6_index_gains_backend_stores_and_spread(tmp_path) -> None:
    """Migration 7 (issue #14): the ``stores`` table, and ``spread`` on bucket policies set
    before it (kept, with no spread)."""
    path = tmp_path / "index.db"
    SqliteIndex(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP TABLE stores")
    db.execute("DROP TABLE bucket_policies")
    db.execute(
        "CREATE TABLE bucket_policies (bucket TEXT PRIMARY KEY, copies INTEGER NOT NULL,"
        " min_copies INTEGER NOT NULL) WITHOUT ROWID"
    )
    db.execute("INSERT INTO bucket_policies VALUES ('b', 2, 1)")
    db.execute("UPDATE meta SET value='6' WHERE name='schema_version'")
    db.close()
    index = SqliteIndex(path)
    assert index.migrations_applied == [7, 8, 9, 10]
    assert index.bucket_policies() == {"b": (2, 1, "")}
    assert index.backend_stores() == []


def test_a_version_8_index_gains_the_notification_outbox(tmp_path) -> None:
    """Migration 9 (issue #15): the ``notify_outbox`` table, empty."""
    path = tmp_path / "index.db"
    SqliteIndex(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP TABLE notify_outbox")
    db.execute("UPDATE meta SET value='8' WHERE name='schema_version'")
    db.close()
    index = SqliteIndex(path)
    assert index.migrations_applied == [9, 10]
    assert index.due_notifications(10, 10) == []
    assert index.notification_summary() == {}


def test_a_version_9_index_gains_the_transfer_slots(tmp_path) -> None:
    """Migration 10 (issue #13): the ``transfer_slots`` table, empty, whose slots work."""
    path = tmp_path / "index.db"
    SqliteIndex(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP TABLE transfer_slots")
    db.execute("UPDATE meta SET value='9' WHERE name='schema_version'")
    db.close()
    index = SqliteIndex(path)
    assert index.migrations_applied == [10]
    assert index.transfer_slots() == []
    assert index.acquire_transfer_slot(1, "n1/1", "repair", "n1", "t", 30) == 0
    assert index.acquire_transfer_slot(1, "n1/1", "repair", "n1", "u", 30) is None
