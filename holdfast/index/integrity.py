"""The index's integrity tables: drives, per-bucket placement policies, the repair queue
(which is also each drive's hinted-handoff log) and the scrubber's walk.

Kept out of ``sqlite.py`` so the data paths there stay short; :class:`SqliteIndex` inherits
these methods and their tables are part of its SCHEMA. Like every index method they are
synchronous and short.

Why the repair queue is one table: a copy a drive is owed ("copy") and a delete it missed
("delete") are both "make drive X agree with the index about blob B". While X is down its
rows simply wait (that is the hinted-handoff log, and it costs no retries); when X is back
they are worked off, so X re-syncs exactly what it missed. A delete replaces a pending copy
of the same blob on the same drive, so a blob deleted while its drive was away can never
come back.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from holdfast.index.errors import Conflict
from holdfast.index.queries import PART_COLUMNS, blob_ids_in, part_from_row, queue_for_gc
from holdfast.index.records import (
    BackendRecord,
    ObjectRecord,
    PartRecord,
    RepairTask,
    Segment,
    move_copy_text,
)
from holdfast.index.rows import REPAIR_COLUMNS as _REPAIR_COLUMNS
from holdfast.index.rows import scan_record
from holdfast.index.rows import task_from_row as _task_from_row
from holdfast.index.totals import object_totals

T = TypeVar("T")

INTEGRITY_SCHEMA = """
-- The drives this node has adopted, by the uuid written in each drive's marker file. A drive
-- the index knows whose marker is gone is down (pulled), never silently re-adopted as blank.
CREATE TABLE IF NOT EXISTS drives (
    store_id TEXT PRIMARY KEY,
    uuid TEXT NOT NULL,
    path TEXT NOT NULL,
    added REAL NOT NULL
) WITHOUT ROWID;
-- Per-bucket placement (copies, write quorum); buckets without a row use the server's.
CREATE TABLE IF NOT EXISTS bucket_policies (
    bucket TEXT PRIMARY KEY,
    copies INTEGER NOT NULL,
    min_copies INTEGER NOT NULL
) WITHOUT ROWID;
-- Repairs owed, one row per (blob, drive): see holdfast/index/integrity.py.
CREATE TABLE IF NOT EXISTS repair_queue (
    blob_id TEXT NOT NULL,
    store_id TEXT NOT NULL,
    op TEXT NOT NULL,
    reason TEXT NOT NULL,
    segment TEXT,
    ref TEXT,
    size INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL,
    created REAL NOT NULL,
    last_error TEXT,
    PRIMARY KEY (blob_id, store_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS repair_due ON repair_queue (store_id, not_before);
-- Damaged objects, for status: a partial index holds only them, so it costs nothing while
-- every object is fine and finds them without a scan when some are not.
CREATE INDEX IF NOT EXISTS objects_damaged ON objects (bucket, key) WHERE state<>'ok';
"""


# Migration 7 (sqlite_migrations.py): back-end stores and the spread by kind of a policy.
BACKENDS_SCHEMA = """
-- Back-end stores (``holdfast store add``): an external S3 service, by name. ``settings`` is
-- JSON without credentials; ``secret`` holds them sealed with the master key (masterkey.py,
-- the associated data binding them to the store's name), never in plain text.
CREATE TABLE IF NOT EXISTS stores (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    store_id TEXT NOT NULL UNIQUE,
    settings TEXT NOT NULL,
    secret BLOB NOT NULL,
    added REAL NOT NULL
) WITHOUT ROWID;
"""


def add_spread_column(db: sqlite3.Connection) -> None:
    """Bucket policies gain their spread by kind (holdfast/placement/policy.py)."""
    columns = {r[1] for r in db.execute("PRAGMA table_info(bucket_policies)")}
    if "spread" not in columns:
        db.execute("ALTER TABLE bucket_policies ADD COLUMN spread TEXT NOT NULL DEFAULT ''")


_OBJECT_SCAN_COLUMNS = "bucket, key, etag, state, segments, inline, size"


def queue_repair_rows(db: sqlite3.Connection, tasks: Iterable[RepairTask]) -> int:
    """Insert repair rows inside the caller's transaction; returns how many are new.

    A "copy" never overrides an existing row (its backoff state is kept, and a pending
    "delete" must win). A "delete" overrides a pending "copy": the blob is dead."""
    now = time.time()
    added = 0
    for t in tasks:
        seg = json.dumps(t.segment.to_json()) if t.segment is not None else None
        if t.op == "delete":
            cur = db.execute(
                f"INSERT INTO repair_queue ({_REPAIR_COLUMNS}, size) "
                "VALUES (?,?,?,?,NULL,?,0,?,?,NULL,0) ON CONFLICT (blob_id, store_id) DO UPDATE "
                "SET op='delete', reason=excluded.reason, segment=NULL, size=0, attempts=0, "
                "not_before=excluded.not_before, last_error=NULL WHERE op<>'delete'",
                (t.blob_id, t.store_id, t.op, t.reason, t.ref, now, now),
            )
        else:
            cur = db.execute(
                f"INSERT OR IGNORE INTO repair_queue ({_REPAIR_COLUMNS}, size) "
                "VALUES (?,?,?,?,?,?,0,?,?,NULL,?)",
                (t.blob_id, t.store_id, t.op, t.reason, seg, t.ref, now, now, t.size),
            )
        added += cur.rowcount
    return added


def repair_summary(db: sqlite3.Connection) -> dict:
    """Queue depth per drive and op, bytes owed and the oldest row (status and metrics).
    A drive's rows while it is down are its hinted-handoff log."""
    per: dict[str, dict[str, dict[str, float]]] = {}
    for store_id, op, n, size, oldest in db.execute(
        "SELECT store_id, op, count(*), sum(size), min(created) FROM repair_queue "
        "GROUP BY store_id, op"
    ):
        per.setdefault(store_id, {})[op] = {"rows": n, "bytes": size, "oldest": oldest}
    return per


def damaged_objects(db: sqlite3.Connection, limit: int = 100) -> tuple[int, list[tuple[str, str]]]:
    """How many objects are marked damaged (no good copy of some byte), and the first
    ``limit`` of them (from the partial index objects_damaged: no scan)."""
    (count,) = db.execute("SELECT count(*) FROM objects WHERE state<>'ok'").fetchone()
    rows = db.execute(
        "SELECT bucket, key FROM objects WHERE state<>'ok' ORDER BY bucket, key LIMIT ?",
        (limit,),
    )
    return count, [(r[0], r[1]) for r in rows]


def deferred_copies(segments: Iterable[Segment]) -> list[RepairTask]:
    """Repair rows for the copies a write could not make (see Segment.deferred)."""
    return [
        RepairTask(s.blob_id, sid, "copy", "deferred", s) for s in segments for sid in s.deferred
    ]


class IntegrityIndex:
    """Mixed into SqliteIndex: every method runs on its connections and group commit."""

    _transact: Callable[..., Any]
    _conn: Callable[[], sqlite3.Connection]
    gc_grace: float

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read-only query function on this thread's connection (for callers that
        also run it on connections of their own, like the status refresher)."""
        return fn(self._conn())

    # -- drives -----------------------------------------------------------------------------

    def drives(self) -> dict[str, str]:
        """store id -> uuid of every drive this node has adopted."""
        return dict(self._conn().execute("SELECT store_id, uuid FROM drives"))

    def register_drive(self, store_id: str, path: str, adopt: Callable[[str], str]) -> str:
        """Adopt a drive the index does not know, in one transaction, so that worker
        processes starting together agree on one identity. ``adopt`` writes the marker."""

        def op(db: sqlite3.Connection) -> str:
            row = db.execute("SELECT uuid FROM drives WHERE store_id=?", (store_id,)).fetchone()
            if row is not None:
                return row[0]
            drive_uuid = adopt(uuid.uuid4().hex)
            db.execute(
                "INSERT INTO drives VALUES (?,?,?,?)", (store_id, drive_uuid, path, time.time())
            )
            return drive_uuid

        return self._transact(op)

    # -- placement policies -----------------------------------------------------------------

    def bucket_policies(self) -> dict[str, tuple[int, int, str]]:
        rows = self._conn().execute(
            "SELECT bucket, copies, min_copies, spread FROM bucket_policies"
        )
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def set_bucket_policy(
        self, bucket: str, copies: int | None, min_copies: int | None, spread: str = ""
    ) -> None:
        """Set (or, with ``copies`` None, clear) a bucket's placement policy."""

        def op(db: sqlite3.Connection) -> None:
            if copies is None:
                db.execute("DELETE FROM bucket_policies WHERE bucket=?", (bucket,))
            else:
                db.execute(
                    "INSERT OR REPLACE INTO bucket_policies VALUES (?,?,?,?)",
                    (bucket, copies, min_copies if min_copies is not None else 1, spread),
                )

        return self._transact(op)

    # -- back-end stores --------------------------------------------------------------------

    def backend_stores(self) -> list[BackendRecord]:
        rows = self._conn().execute(
            "SELECT name, kind, store_id, settings, secret, added FROM stores ORDER BY name"
        )
        return [BackendRecord(r[0], r[1], r[2], json.loads(r[3]), bytes(r[4]), r[5]) for r in rows]

    def add_backend_store(self, rec: BackendRecord, uuid_: str, location: str) -> None:
        """Record a back-end store and its identity together (one transaction): the store's
        row, and its ``drives`` row (store id -> the uuid its marker holds). Conflict when
        the name is taken."""

        def op(db: sqlite3.Connection) -> None:
            if db.execute("SELECT 1 FROM stores WHERE name=?", (rec.name,)).fetchone():
                raise Conflict(f"a store named {rec.name!r} exists")
            db.execute(
                "INSERT INTO stores VALUES (?,?,?,?,?,?)",
                (rec.name, rec.kind, rec.store_id, json.dumps(rec.settings), rec.secret, rec.added),
            )
            db.execute(
                "INSERT OR REPLACE INTO drives VALUES (?,?,?,?)",
                (rec.store_id, uuid_, location, rec.added),
            )

        self._transact(op)

    def set_backend_secret(self, name: str, secret: bytes) -> None:
        """Re-sealed credentials (master key rotation)."""
        self._transact(
            lambda db: db.execute("UPDATE stores SET secret=? WHERE name=?", (secret, name))
        )

    def remove_backend_store(self, name: str) -> bool:
        def op(db: sqlite3.Connection) -> bool:
            row = db.execute("SELECT store_id FROM stores WHERE name=?", (name,)).fetchone()
            if row is None:
                return False
            db.execute("DELETE FROM stores WHERE name=?", (name,))
            db.execute("DELETE FROM drives WHERE store_id=?", (row[0],))
            db.execute("DELETE FROM repair_queue WHERE store_id=?", (row[0],))
            return True

        return self._transact(op)

    # -- repair queue -----------------------------------------------------------------------

    def queue_repairs(self, tasks: Sequence[RepairTask]) -> int:
        if not tasks:
            return 0
        return self._transact(lambda db: queue_repair_rows(db, tasks))

    def due_repairs(
        self, stores: Iterable[str], limit: int, now: float | None = None
    ) -> list[RepairTask]:
        """Rows that may run now, oldest first, for the given drives only (the others are
        down or backing off: their rows wait without being touched)."""
        stores = list(stores)
        if not stores:
            return []
        now = time.time() if now is None else now
        marks = ",".join("?" * len(stores))
        rows = self._conn().execute(
            f"SELECT {_REPAIR_COLUMNS} FROM repair_queue WHERE store_id IN ({marks}) "
            "AND not_before<=? ORDER BY not_before LIMIT ?",
            (*stores, now, limit),
        )
        return [_task_from_row(r) for r in rows]

    def repairs(self, limit: int = 1000) -> list[RepairTask]:
        rows = self._conn().execute(
            f"SELECT {_REPAIR_COLUMNS} FROM repair_queue ORDER BY not_before LIMIT ?", (limit,)
        )
        return [_task_from_row(r) for r in rows]

    def finish_repair(self, task: RepairTask) -> bool:
        """Drop a done row (unless it changed meanwhile, e.g. a delete replaced a copy).
        Returns whether the blob is still live: if not, a copy just made is garbage and the
        caller removes it; both facts come from one transaction, so a concurrent delete
        cannot slip between them."""

        def op(db: sqlite3.Connection) -> bool:
            db.execute(
                "DELETE FROM repair_queue WHERE blob_id=? AND store_id=? AND op=?",
                (task.blob_id, task.store_id, task.op),
            )
            return (
                db.execute("SELECT 1 FROM live_blobs WHERE blob_id=?", (task.blob_id,)).fetchone()
                is not None
            )

        return self._transact(op)

    def defer_repair(self, task: RepairTask, not_before: float, error: str) -> None:
        def op(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE repair_queue SET attempts=attempts+1, not_before=?, last_error=? "
                "WHERE blob_id=? AND store_id=? AND op=?",
                (not_before, error[:500], task.blob_id, task.store_id, task.op),
            )

        return self._transact(op)

    def repair_summary(self) -> dict:
        return repair_summary(self._conn())

    def is_live(self, blob_id: str) -> bool:
        row = self._conn().execute("SELECT 1 FROM live_blobs WHERE blob_id=?", (blob_id,))
        return row.fetchone() is not None

    # -- the scrubber's walk ----------------------------------------------------------------

    def scan_objects(self, after: tuple[str, str] | None, limit: int) -> list[ObjectRecord]:
        """Objects in (bucket, key) order after ``after``: a walk that resumes anywhere
        without a scan from the start. Only the fields verification needs are filled."""
        where, args = ("WHERE (bucket, key) > (?, ?)", after) if after else ("", ())
        rows = self._conn().execute(
            f"SELECT {_OBJECT_SCAN_COLUMNS} FROM objects {where} ORDER BY bucket, key LIMIT ?",
            (*args, limit),
        )
        return [scan_record(r) for r in rows]

    def scan_versions(self, after: tuple[str, str, int] | None, limit: int) -> list[ObjectRecord]:
        """Noncurrent versions that hold data (not delete markers), in (bucket, key, vseq)
        order after ``after``: the scrubber's and fsck's second walk."""
        where, args = ("AND (bucket, key, vseq) > (?, ?, ?)", after) if after else ("", ())
        rows = self._conn().execute(
            f"SELECT {_OBJECT_SCAN_COLUMNS}, vseq FROM versions WHERE marker=0 {where} "
            "ORDER BY bucket, key, vseq LIMIT ?",
            (*args, limit),
        )
        return [scan_record(r) for r in rows]

    def scan_parts(self, after: tuple[str, int] | None, limit: int) -> list[PartRecord]:
        """Parts of unfinished multipart uploads, in (upload id, part number) order."""
        where, args = ("WHERE (upload_id, part_number) > (?, ?)", after) if after else ("", ())
        rows = self._conn().execute(
            f"SELECT {PART_COLUMNS} FROM parts {where} ORDER BY upload_id, part_number LIMIT ?",
            (*args, limit),
        )
        return [part_from_row(r) for r in rows]

    def totals(self) -> tuple[int, int]:
        """(objects and parts, bytes of all their copies): what a full verification reads,
        for the progress of a scrub pass or an fsck (objects from the kept totals; the parts
        of unfinished uploads are few and counted)."""
        db = self._conn()
        objects, _, object_bytes, _ = object_totals(db)
        parts, part_bytes = db.execute(
            "SELECT count(*), coalesce(sum(size * json_array_length(json_extract(segment, "
            "'$.st'))), 0) FROM parts"
        ).fetchone()
        return objects + parts, object_bytes + part_bytes

    def damaged_objects(self, limit: int = 100) -> tuple[int, list[tuple[str, str]]]:
        return damaged_objects(self._conn(), limit)

    def move_copy(
        self, bucket: str, key: str, vseq: int | None, blob_id: str, old: str, new: str
    ) -> bool:
        table, where, args = (
            ("objects", "bucket=? AND key=?", (bucket, key))
            if vseq is None
            else ("versions", "bucket=? AND key=? AND vseq=?", (bucket, key, vseq))
        )

        def op(db: sqlite3.Connection) -> bool:
            row = db.execute(f"SELECT segments FROM {table} WHERE {where}", args).fetchone()
            text = move_copy_text(row[0], blob_id, old, new) if row else None
            if text is None:
                return False
            cur = db.execute(
                f"UPDATE {table} SET segments=? WHERE {where} AND segments=?",
                (text, *args, row[0]),
            )
            return cur.rowcount > 0

        return self._transact(op)

    def set_state_if(self, bucket: str, key: str, etag: str, old: str, new: str) -> bool:
        """Change one object version's state only if it still is ``old`` (clearing a damage
        mark after a full verification must not undo a newer mark)."""

        def op(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "UPDATE objects SET state=? WHERE bucket=? AND key=? AND etag=? AND state=?",
                (new, bucket, key, etag, old),
            )
            return cur.rowcount > 0

        return self._transact(op)

    # -- fsck -------------------------------------------------------------------------------

    def integrity_check(self, quick: bool = False) -> list[str]:
        """SQLite's own check of the database file; ["ok"] when sound."""
        pragma = "quick_check" if quick else "integrity_check"
        return [r[0] for r in self._conn().execute(f"PRAGMA {pragma}")]

    def reference_problems(self) -> dict[str, list[str]]:
        """Blobs referenced by objects or parts but missing from live_blobs (the orphan
        sweeper would delete them!), and live_blobs rows nothing refers to (a leak)."""
        db = self._conn()
        db.execute("DROP TABLE IF EXISTS temp.referenced")
        db.execute("CREATE TEMP TABLE referenced (blob_id TEXT PRIMARY KEY) WITHOUT ROWID")
        try:
            db.execute(
                "INSERT OR IGNORE INTO temp.referenced SELECT json_extract(j.value, '$.id') "
                "FROM objects, json_each(objects.segments) j "
                "WHERE json_array_length(json_extract(j.value, '$.st')) > 0"
            )
            db.execute(  # noncurrent versions keep their blobs until they are deleted
                "INSERT OR IGNORE INTO temp.referenced SELECT json_extract(j.value, '$.id') "
                "FROM versions, json_each(versions.segments) j "
                "WHERE json_array_length(json_extract(j.value, '$.st')) > 0"
            )
            db.execute(
                "INSERT OR IGNORE INTO temp.referenced "
                "SELECT json_extract(segment, '$.id') FROM parts "
                "WHERE json_array_length(json_extract(segment, '$.st')) > 0"
            )
            unmarked = [
                r[0]
                for r in db.execute(
                    "SELECT blob_id FROM temp.referenced WHERE blob_id NOT IN "
                    "(SELECT blob_id FROM live_blobs)"
                )
            ]
            unreferenced = [
                r[0]
                for r in db.execute(
                    "SELECT blob_id FROM live_blobs WHERE blob_id NOT IN "
                    "(SELECT blob_id FROM temp.referenced)"
                )
            ]
        finally:
            db.execute("DROP TABLE IF EXISTS temp.referenced")
        return {"unmarked": unmarked, "unreferenced": unreferenced}

    def fix_references(self, unmarked: list[str], unreferenced: list[str]) -> None:
        """Mark referenced blobs live; hand unreferenced ones to the GC (after its grace)."""

        def op(db: sqlite3.Connection) -> None:
            db.executemany("INSERT OR IGNORE INTO live_blobs VALUES (?)", [(b,) for b in unmarked])
            due = time.time() + self.gc_grace
            stores = ",".join(r[0] for r in db.execute("SELECT store_id FROM drives"))
            for blob_id in unreferenced:
                queue_for_gc(db, blob_id, stores, due)

        return self._transact(op)

    def known_blobs(self, blob_ids: list[str]) -> set[str]:
        """Which of these blob ids the index knows at all: live, or queued for deletion."""
        db = self._conn()
        return blob_ids_in(db, "live_blobs", blob_ids) | blob_ids_in(db, "gc_queue", blob_ids)
