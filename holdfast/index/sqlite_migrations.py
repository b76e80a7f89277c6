"""The SQLite index's schema, as a list of numbered migrations run at start.

The index records the number of the last migration applied (``meta.schema_version``). At
start each process takes the index's write lock (the flock every writer queues on, then
BEGIN IMMEDIATE), reads the number again inside that transaction and applies whatever is
missing, each migration in its own transaction with the new number: of several processes
starting at once exactly one migrates, the others find the work done. A crash mid-migration
leaves the previous version whole. An index migrated by a newer Holdfast (a number past the
end of this list) is refused rather than touched.

A new schema change is a new entry at the end; entries are never edited once released.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from holdfast.index.errors import SchemaTooNew
from holdfast.index.totals import TOTALS_SCHEMA, TOTALS_TRIGGERS, rebuild_totals

log = logging.getLogger("holdfast.index")


@dataclass(frozen=True)
class Migration:
    version: int
    summary: str
    apply: Callable[[sqlite3.Connection], None]  # runs inside the migration's transaction


def run_script(db: sqlite3.Connection, script: str) -> None:
    """Execute several statements inside the caller's transaction (``executescript`` would
    commit it first)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            if statement.strip(" \n;"):
                db.execute(statement)
            statement = ""
    if statement.strip(" \n;"):
        db.execute(statement)


def current_version(db: sqlite3.Connection) -> int:
    has_meta = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
    ).fetchone()
    if not has_meta:
        return 0
    row = db.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()
    return int(row[0]) if row else 0


def _base_tables(db: sqlite3.Connection) -> None:
    from holdfast.index.sqlite import BASE_SCHEMA

    run_script(db, BASE_SCHEMA)


def _rowid_objects_and_totals(db: sqlite3.Connection) -> None:
    """Objects became a rowid table (see sqlite.OBJECTS_TABLE); bucket_totals kept by
    triggers (holdfast/index/totals.py), counted once here."""
    from holdfast.index.sqlite import OBJECTS_TABLE

    row = db.execute(
        "SELECT sql FROM sqlite_master WHERE type='table' AND name='objects'"
    ).fetchone()
    if row is not None and "WITHOUT ROWID" in row[0].upper():
        started = time.monotonic()
        log.warning("index upgrade: rebuilding the objects table (one pass over it)")
        for trigger in TOTALS_TRIGGERS:
            db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        db.execute("DROP INDEX IF EXISTS objects_damaged")
        db.execute("ALTER TABLE objects RENAME TO objects_v1")
        db.execute(OBJECTS_TABLE)
        db.execute("INSERT INTO objects SELECT * FROM objects_v1")
        db.execute("DROP TABLE objects_v1")
        db.execute(
            "CREATE INDEX IF NOT EXISTS objects_damaged ON objects (bucket, key) WHERE state<>'ok'"
        )
        log.warning("index upgrade: objects table rebuilt in %.1f s", time.monotonic() - started)
    run_script(db, TOTALS_SCHEMA)
    log.info("index schema -> 2: counting objects per bucket once")
    rebuild_totals(db)


def _layout_tables(db: sqlite3.Connection) -> None:
    from holdfast.index.sqlite_layout import LAYOUT_SCHEMA

    run_script(db, LAYOUT_SCHEMA)


BUCKET_CONFIGS = """
CREATE TABLE IF NOT EXISTS bucket_configs (
    bucket TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (bucket, name)
) WITHOUT ROWID;
"""


def _tags_and_bucket_configs(db: sqlite3.Connection) -> None:
    """Object and upload tags (a nullable column: untagged rows, the common case, store
    nothing), and one table of per-bucket configuration documents (bucket tags today;
    versioning, object lock and lifecycle use it next)."""
    for table in ("objects", "uploads"):
        columns = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
        if "tags" not in columns:
            db.execute(f"ALTER TABLE {table} ADD COLUMN tags TEXT")
    run_script(db, BUCKET_CONFIGS)


VERSIONS = """
CREATE TABLE IF NOT EXISTS versions (
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    vseq INTEGER NOT NULL,
    vnull INTEGER NOT NULL,
    marker INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    last_modified REAL NOT NULL,
    content_type TEXT NOT NULL,
    headers TEXT NOT NULL,
    meta TEXT NOT NULL,
    checksum_algorithm TEXT,
    checksum_type TEXT,
    checksum_value TEXT,
    parts_count INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'ok',
    segments TEXT NOT NULL,
    inline BLOB,
    tags TEXT,
    PRIMARY KEY (bucket, key, vseq)
);
"""


def _versions(db: sqlite3.Connection) -> None:
    """Object versions. ``objects`` keeps exactly the current version of each key that has
    one (ListObjects and GET read only it, as fast as before); noncurrent versions and
    delete markers live in ``versions``. vseq orders a key's versions by commit (0 for
    versions written before the bucket was versioned); vnull marks the "null" version."""
    columns = {r[1] for r in db.execute("PRAGMA table_info(objects)")}
    if "vseq" not in columns:
        db.execute("ALTER TABLE objects ADD COLUMN vseq INTEGER NOT NULL DEFAULT 0")
        db.execute("ALTER TABLE objects ADD COLUMN vnull INTEGER NOT NULL DEFAULT 1")
    run_script(db, VERSIONS)


def _backend_stores(db: sqlite3.Connection) -> None:
    from holdfast.index.integrity import BACKENDS_SCHEMA, add_spread_column

    run_script(db, BACKENDS_SCHEMA)
    add_spread_column(db)


def _version_locks(db: sqlite3.Connection) -> None:
    """Object lock: a version's retention and legal hold, one nullable JSON column on
    ``objects`` and ``versions`` (NULL, the common case, for a version nothing locks)."""
    for table in ("objects", "versions"):
        columns = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
        if "objlock" not in columns:
            db.execute(f"ALTER TABLE {table} ADD COLUMN objlock TEXT")


def _notify_outbox(db: sqlite3.Connection) -> None:
    from holdfast.index.sqlite_notify import OUTBOX_SCHEMA

    run_script(db, OUTBOX_SCHEMA)


def _transfer_slots(db: sqlite3.Connection) -> None:
    from holdfast.index.sqlite_transfers import TRANSFER_SLOTS_SCHEMA

    run_script(db, TRANSFER_SLOTS_SCHEMA)


MIGRATIONS: list[Migration] = [
    Migration(
        1, "users, buckets, objects, uploads, parts, blobs, gc and repair queues", _base_tables
    ),
    Migration(
        2, "objects as a rowid table; per-bucket totals kept by triggers", _rowid_objects_and_totals
    ),
    # Holdfast before the migration list created tables it added later at every start,
    # without a new version number: make sure a version-2 index has all of them.
    Migration(
        3, "tables added without a version number before migrations were listed", _base_tables
    ),
    Migration(
        4, "the cluster layout: applied versions (with audit) and the staged one", _layout_tables
    ),
    Migration(5, "object and upload tags; bucket configurations", _tags_and_bucket_configs),
    Migration(6, "object versions", _versions),
    Migration(
        7, "back-end stores (issue #14); bucket policies gain a spread by kind", _backend_stores
    ),
    Migration(8, "object lock: retention and legal hold of versions", _version_locks),
    Migration(9, "event notifications: the outbox of events owed to targets", _notify_outbox),
    Migration(
        10, "the cluster's cap on concurrent transfers: leased slots (issue #13)", _transfer_slots
    ),
]

SCHEMA_VERSION = MIGRATIONS[-1].version


def migrate(db: sqlite3.Connection, lock: Callable[[], object]) -> list[int]:
    """Apply the missing migrations; the versions applied (empty when up to date). ``lock``
    is the index's cross-process write lock (a context manager factory)."""
    applied: list[int] = []
    if current_version(db) == SCHEMA_VERSION:  # the common case: no lock, no transaction
        return applied
    with lock():  # type: ignore[attr-defined]
        for migration in MIGRATIONS:
            db.execute("BEGIN IMMEDIATE")
            try:
                version = current_version(db)
                if version > SCHEMA_VERSION:
                    raise SchemaTooNew(
                        f"the index is at schema version {version}, this Holdfast knows up to "
                        f"{SCHEMA_VERSION}: run the newer Holdfast that migrated it"
                    )
                if version >= migration.version:
                    db.execute("ROLLBACK")
                    continue
                log.info("index migration %d: %s", migration.version, migration.summary)
                migration.apply(db)
                db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                    (str(migration.version),),
                )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            applied.append(migration.version)
    return applied
