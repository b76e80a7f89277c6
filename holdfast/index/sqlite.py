"""The embedded index: SQLite in WAL mode, shared by every worker process of a node.

Why SQLite: it gives one-transaction commits that survive a power cut (WAL with
the log fsync'd after every commit), cross-process read-after-write
consistency, and it opens in milliseconds whatever the object count, so a restart never waits
on a scan. Keys are TEXT compared with the BINARY collation, which for UTF-8 is exactly S3's
binary key order.

Every method is synchronous and short. Nothing outside holdfast/index/ calls them: the
asynchronous engine (sqlite_engine.py) decides where each runs (the event loop for point
reads, its thread pool, or the group commit) so the loop never waits on a lock or an fsync.
Each thread gets its own connection.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from holdfast.index.errors import ConditionFailed, Conflict, Forbidden, NotEmpty, NotFound
from holdfast.index.integrity import (
    INTEGRITY_SCHEMA,
    IntegrityIndex,
    deferred_copies,
    queue_repair_rows,
)
from holdfast.index.listing import prefix_upper_bound
from holdfast.index.queries import PART_COLUMNS, part_from_row, queue_for_gc
from holdfast.index.records import (
    BucketRecord,
    BucketUsage,
    ListedEntry,
    ObjectRecord,
    PartRecord,
    RepairTask,
    Segment,
    UploadRecord,
    UserRecord,
    VersionEntry,
    VersionRef,
    lock_to_text,
    segments_from_text,
    segments_to_text,
    tags_to_text,
    with_new_copies,
)
from holdfast.index.rows import json_text as _json
from holdfast.index.rows import object_from_row as _object_from_row
from holdfast.index.rows import object_values
from holdfast.index.rows import upload_from_row as _upload_from_row
from holdfast.index.sqlite_layout import LAYOUT_SCHEMA, SqliteLayout
from holdfast.index.sqlite_migrations import SCHEMA_VERSION, migrate
from holdfast.index.sqlite_notify import SqliteNotify
from holdfast.index.sqlite_transfers import SqliteTransfers
from holdfast.index.totals import TOTALS_SCHEMA, bucket_usage, damaged_keys

T = TypeVar("T")
log = logging.getLogger("holdfast.index")

__all__ = [
    "SCHEMA_VERSION",
    "ConditionFailed",
    "Conflict",
    "Forbidden",
    "NotEmpty",
    "NotFound",
    "SqliteIndex",
    "prefix_upper_bound",
]

# Under a steady stream of commits a PASSIVE checkpoint never catches the end of the log (new
# frames land while it copies), so SQLite never starts the log again from the top and it grows
# without bound: 230 MB in 8 s of small PUTs, all of it replayed on the next open after a
# crash. Past this size the checkpointer stops writers for a moment and restarts the log.
WAL_RESTART_BYTES = 32 * 1024 * 1024
# How long that restart waits for readers still on the old log before trying again later.
WAL_RESTART_WAIT_MS = 200

# A rowid table with a unique (bucket, key) index, not a WITHOUT ROWID table keyed by
# (bucket, key): small objects keep up to 64 KiB of bytes in their row, and a WITHOUT ROWID
# b-tree carries whole rows in its interior pages, so its fan-out collapsed and a point
# lookup at a million 4 KiB objects took 26 us against 11 us this way (measured; see
# docs/performance.md). Lookups and listings walk the narrow index, then fetch one row.
OBJECTS_TABLE = """
CREATE TABLE IF NOT EXISTS objects (
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
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
    inline BLOB,  -- small objects: the bytes themselves, committed with their metadata
    UNIQUE (bucket, key)
)
"""

BASE_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    access_key TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    secret_key TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS buckets (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created REAL NOT NULL,
    region TEXT NOT NULL
);
"""
    + OBJECTS_TABLE
    + """;
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    owner TEXT NOT NULL,
    initiated REAL NOT NULL,
    content_type TEXT NOT NULL,
    headers TEXT NOT NULL,
    meta TEXT NOT NULL,
    checksum_algorithm TEXT,
    checksum_type TEXT
);
CREATE INDEX IF NOT EXISTS uploads_by_key ON uploads (bucket, key, initiated);
CREATE TABLE IF NOT EXISTS parts (
    upload_id TEXT NOT NULL,
    part_number INTEGER NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    md5 BLOB NOT NULL,
    checksum BLOB,
    last_modified REAL NOT NULL,
    segment TEXT NOT NULL,
    PRIMARY KEY (upload_id, part_number)
) WITHOUT ROWID;
-- Every blob that committed metadata refers to. A blob file not in here is garbage once it is
-- old enough; the orphan sweeper relies on it.
CREATE TABLE IF NOT EXISTS live_blobs (blob_id TEXT PRIMARY KEY) WITHOUT ROWID;
-- Blobs no longer referenced, deleted by the GC worker once not_before has passed (the grace
-- lets a GET that already looked up the old row finish opening its file).
CREATE TABLE IF NOT EXISTS gc_queue (
    blob_id TEXT PRIMARY KEY,
    stores TEXT NOT NULL,
    not_before REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS gc_due ON gc_queue (not_before);
"""
)
# Drives, per-bucket placement policies and the repair queue (holdfast/index/integrity.py).
BASE_SCHEMA += INTEGRITY_SCHEMA
# The whole schema as the migrations (holdfast/index/sqlite_migrations.py) leave it.
SCHEMA = BASE_SCHEMA + TOTALS_SCHEMA + LAYOUT_SCHEMA


_OBJECT_COLUMNS = (
    "bucket, key, size, etag, last_modified, content_type, headers, meta, checksum_algorithm, "
    "checksum_type, checksum_value, parts_count, state, segments, inline, tags, vseq, vnull, "
    "objlock"
)
_UPLOAD_COLUMNS = (
    "upload_id, bucket, key, owner, initiated, content_type, headers, meta, "
    "checksum_algorithm, checksum_type, tags"
)
# The same columns qualified for the GET/HEAD join with buckets (built once, not per request).
_JOINED_OBJECT_COLUMNS = ", ".join(f"o.{c.strip()}" for c in _OBJECT_COLUMNS.split(","))
_GET_OBJECT_IN = (
    f"SELECT b.owner, {_JOINED_OBJECT_COLUMNS} FROM buckets b LEFT JOIN objects o "
    "ON o.bucket = b.name AND o.key = ? WHERE b.name = ?"
)


class _Pending:
    """One write waiting for a group commit."""

    def __init__(self, op: Callable[[sqlite3.Connection], object], with_future: bool = True):
        self.op = op
        self.future: Future = Future() if with_future else None  # type: ignore[assignment]
        self.result: object = None
        self.error: BaseException | None = None

    def run_in_savepoint(self, db: sqlite3.Connection) -> None:
        db.execute("SAVEPOINT op")
        try:
            self.result = self.op(db)
        except Exception as e:
            db.execute("ROLLBACK TO op")
            self.error = e
        db.execute("RELEASE op")

    def fail(self, error: BaseException) -> None:
        self.error, self.result = error, None

    def settle(self) -> None:
        if self.error is not None:
            self.future.set_exception(self.error)
        else:
            self.future.set_result(self.result)


def _outcome(item: _Pending) -> tuple[bool, object]:
    return (False, item.error) if item.error is not None else (True, item.result)


class SqliteIndex(IntegrityIndex, SqliteLayout, SqliteNotify, SqliteTransfers):
    def __init__(self, path: Path, gc_grace_seconds: float = 30.0) -> None:
        self.path = path
        self.gc_grace = gc_grace_seconds
        self._local = threading.local()
        self._writes: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._committer: threading.Thread | None = None
        self._queue_lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._checkpointer: threading.Thread | None = None
        path.parent.mkdir(parents=True, exist_ok=True)
        self.migrations_applied = migrate(self._conn(), self._migration_lock)
        if self.migrations_applied:
            self._sync_wal()
            # A rebuilt table leaves the whole table in the WAL: fold it in now.
            self.checkpoint("TRUNCATE")

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        with self._commit_lock, self._file_lock():
            yield

    # -- connections -------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL: COMMIT writes the WAL but does not fsync it; every write path fsyncs the
            # WAL itself right after (_sync_wal), outside the cross-process write lock, so one
            # process's fsync overlaps the next process's commit. Nothing is acknowledged
            # before that fsync; see _commit_batch.
            conn.execute("PRAGMA synchronous=NORMAL")
            # The event loop's own connection (point reads, see Node.lookup) must never
            # stall the loop: it gives up fast and the caller retries in the pool.
            on_loop = threading.current_thread() is threading.main_thread()
            conn.execute(f"PRAGMA busy_timeout={100 if on_loop else 30000}")
            conn.execute("PRAGMA cache_size=-65536")
            # Checkpoints run in a background thread (start_checkpointer), never inside a
            # client's commit: an automatic checkpoint stalls the writer that triggers it.
            conn.execute("PRAGMA wal_autocheckpoint=0")
            # A log that grew past the restart size during a burst is cut back on its reset.
            conn.execute(f"PRAGMA journal_size_limit={2 * WAL_RESTART_BYTES}")
            self._local.conn = conn
        return conn

    def _transact(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``op`` in a write transaction on the committer thread, group-committed with
        every other write of this process that is waiting. Each op runs in its own
        savepoint, so one op's failure undoes only that op. Inside :meth:`defer` this
        returns the future instead of waiting for it."""
        captured = getattr(self._local, "capture", None)
        if captured is not None:
            captured.append(op)
            return None  # type: ignore[return-value]
        future = self._submit(op)
        if getattr(self._local, "defer", False):
            return future  # type: ignore[return-value]
        return future.result()

    def defer(self, method: Callable[..., T], *args, **kwargs) -> Future:
        """Call a write method without blocking: returns the future of its transaction, so
        the event loop can await it directly instead of parking a pool thread on it (each
        thread handoff is a context switch, and those dominated small PUTs)."""
        self._local.defer = True
        try:
            return method(*args, **kwargs)  # type: ignore[return-value]
        finally:
            self._local.defer = False

    def commit_calls(
        self, calls: Sequence[tuple[Callable[..., object], tuple]]
    ) -> list[tuple[bool, object]]:
        """Run write methods together in one transaction on the calling thread (one WAL
        fsync), each in its own savepoint: ``[(ok, result or exception)]`` in order. For a
        caller that does its own batching (the node's committer, holdfast/index/committer.py);
        every method here must make exactly one :meth:`_transact` call."""
        outcomes: list[tuple[bool, object] | None] = []
        batch: list[_Pending] = []
        for method, args in calls:
            self._local.capture = ops = []
            try:
                method(*args)
            except Exception as e:  # refused before it reached the index
                outcomes.append((False, e))
                continue
            finally:
                self._local.capture = None
            batch.append(_Pending(ops[0], with_future=False))
            outcomes.append(None)
        if batch:
            self._commit_batch(batch)
        pending = iter(batch)
        return [outcome if outcome is not None else _outcome(next(pending)) for outcome in outcomes]

    def _submit(self, op: Callable[[sqlite3.Connection], object]) -> Future:
        item = _Pending(op)
        if self._committer is None:
            with self._queue_lock:
                if self._committer is None:
                    self._committer = threading.Thread(
                        target=self._commit_loop, name="holdfast-commit", daemon=True
                    )
                    self._committer.start()
        self._writes.put(item)
        return item.future

    def _commit_loop(self) -> None:
        """One thread commits everything this process writes: whatever queued up while the
        previous transaction was being fsync'd goes into the next one."""
        while True:
            batch = [self._writes.get()]
            while len(batch) < 512:
                try:
                    batch.append(self._writes.get_nowait())
                except queue.Empty:
                    break
            # A write whose caller gave up (its awaiting task was cancelled, which cancels
            # the future) is dropped before it runs; once running, it can no longer be
            # cancelled, so settling it below cannot fail and stop this thread.
            batch = [item for item in batch if item.future.set_running_or_notify_cancel()]
            if not batch:
                continue
            self._commit_batch(batch)
            for item in batch:
                item.settle()

    def _commit_batch(self, batch: list[_Pending]) -> None:
        try:
            with self._write() as db:
                for item in batch:
                    item.run_in_savepoint(db)
        except BaseException as e:
            for item in batch:
                item.fail(e)

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        """Writers of all worker processes queue on an flock, which wakes the next one the
        moment the lock is free, instead of SQLite's busy handler, which sleeps in steps."""
        fd = self._lock_fd()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _lock_fd(self) -> int:
        fd = getattr(self._local, "lock_fd", None)
        if fd is None:
            fd = os.open(str(self.path) + ".writelock", os.O_RDWR | os.O_CREAT, 0o600)
            self._local.lock_fd = fd
        return fd

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken with BEGIN IMMEDIATE so that two processes never
        deadlock upgrading read locks; committed (one WAL fsync) or rolled back whole. This
        process's transactions go one at a time (``_commit_lock``), other processes' queue on
        the file lock."""
        db = self._conn()
        with self._commit_lock, self._file_lock():
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        # Durable before anyone is told: WAL frames are a checksummed chain replayed only as
        # a prefix, so this sync also covers any earlier commit of another process still
        # waiting for its own. Outside the file lock: the next writer commits meanwhile.
        self._sync_wal()

    def _sync_wal(self) -> None:
        """fsync the WAL file (re-opened if SQLite replaced it)."""
        wal = f"{self.path}-wal"
        fd = getattr(self._local, "wal_fd", None)
        try:
            if fd is not None and os.fstat(fd).st_ino != os.stat(wal).st_ino:
                os.close(fd)
                fd = None
            if fd is None:
                fd = os.open(wal, os.O_RDONLY)
                self._local.wal_fd = fd
        except FileNotFoundError:
            return  # no WAL: nothing pending (SQLite checkpointed and removed it)
        # fdatasync, as SQLite itself uses: it still flushes a change of the log's size, and
        # skips the separate inode write for its timestamps (a third of each sync here).
        os.fdatasync(fd)

    def start_checkpointer(self, interval: float = 0.5) -> None:
        """Copy the WAL back into the database file in the background (PASSIVE: it never
        blocks writers or readers; a busy checkpoint simply waits for the next round)."""
        if self._checkpointer is not None:
            return
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, args=(interval,), name="holdfast-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def _checkpoint_loop(self, interval: float) -> None:
        conn = sqlite3.connect(self.path, timeout=0, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=0")
        frame_bytes = conn.execute("PRAGMA page_size").fetchone()[0] + 24
        restarted_at = -1  # the log's length when this thread last restarted it
        while True:
            time.sleep(interval)
            try:
                _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                # The log's content, not its file (which keeps its size after a restart). An
                # unchanged length means nothing was written since the last restart: the
                # next writer starts from the top anyway, and restarting again every round
                # would only make readers wait on the restart's locks.
                if frames * frame_bytes > WAL_RESTART_BYTES and frames != restarted_at:
                    self._restart_wal(conn)
                    restarted_at = frames
            except sqlite3.Error as e:  # busy or briefly unavailable: next round
                log.debug("checkpoint skipped: %s", e)

    def _restart_wal(self, conn: sqlite3.Connection) -> None:
        """Copy the rest of the log and have the next commit write it from the top again
        (RESTART). Writers of every process queue on the file lock meanwhile, so the pause
        is the copy of what the last PASSIVE round left (at most one interval of writes),
        not SQLite's busy handler; readers still on the old log are waited for briefly."""
        with self._file_lock():
            conn.execute(f"PRAGMA busy_timeout={WAL_RESTART_WAIT_MS}")
            try:
                busy, _, _ = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
            finally:
                conn.execute("PRAGMA busy_timeout=0")
        if busy:
            log.debug("log restart postponed: a reader is still on the old log")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- users -------------------------------------------------------------------------------

    def add_user(self, user: UserRecord) -> None:
        try:

            def op(db: sqlite3.Connection):
                db.execute(
                    "INSERT INTO users VALUES (?,?,?,?,?)",
                    (user.access_key, user.name, user.secret_key, int(user.disabled), user.created),
                )

            return self._transact(op)
        except sqlite3.IntegrityError as e:
            raise Conflict(f"user {user.name!r} exists") from e

    def get_user_by_key(self, access_key: str) -> UserRecord | None:
        row = (
            self._conn()
            .execute(
                "SELECT name, access_key, secret_key, disabled, created FROM users WHERE access_key=?",
                (access_key,),
            )
            .fetchone()
        )
        return UserRecord(row[0], row[1], row[2], bool(row[3]), row[4]) if row else None

    def list_users(self) -> list[UserRecord]:
        rows = self._conn().execute(
            "SELECT name, access_key, secret_key, disabled, created FROM users ORDER BY name"
        )
        return [UserRecord(r[0], r[1], r[2], bool(r[3]), r[4]) for r in rows]

    def replace_user_secret(self, access_key: str, old: str, new: str) -> bool:
        """Store ``new`` as the user's secret text if it is still ``old`` (the service layer
        seals secrets; this stores opaque text). False if the row changed or is gone."""

        def op(db: sqlite3.Connection):
            # The old text must not linger in the page's free space (checkpoint TRUNCATE
            # afterwards clears the WAL): it may be a plain-text secret being sealed.
            db.execute("PRAGMA secure_delete=ON")
            cur = db.execute(
                "UPDATE users SET secret_key=? WHERE access_key=? AND secret_key=?",
                (new, access_key, old),
            )
            return cur.rowcount == 1

        return self._transact(op)

    def set_user_disabled(self, name: str, disabled: bool) -> bool:
        """False if there is no such user."""

        def op(db: sqlite3.Connection):
            cur = db.execute("UPDATE users SET disabled=? WHERE name=?", (int(disabled), name))
            return cur.rowcount == 1

        return self._transact(op)

    def delete_user(self, name: str) -> bool:
        """Refuses (NotEmpty, with the bucket names) while the user owns buckets, so removing
        a user can never orphan data; False if there is no such user."""

        def op(db: sqlite3.Connection):
            owned = [r[0] for r in db.execute("SELECT name FROM buckets WHERE owner=?", (name,))]
            if owned:
                raise NotEmpty(", ".join(owned))
            return db.execute("DELETE FROM users WHERE name=?", (name,)).rowcount == 1

        return self._transact(op)

    # -- buckets -----------------------------------------------------------------------------

    def create_bucket(self, bucket: BucketRecord) -> None:
        try:

            def op(db: sqlite3.Connection):
                db.execute(
                    "INSERT INTO buckets VALUES (?,?,?,?)",
                    (bucket.name, bucket.owner, bucket.created, bucket.region),
                )

            return self._transact(op)
        except sqlite3.IntegrityError as e:
            raise Conflict(bucket.name) from e

    def get_bucket(self, name: str) -> BucketRecord | None:
        row = (
            self._conn()
            .execute("SELECT name, owner, created, region FROM buckets WHERE name=?", (name,))
            .fetchone()
        )
        return BucketRecord(*row) if row else None

    def list_buckets(self, owner: str) -> list[BucketRecord]:
        rows = self._conn().execute(
            "SELECT name, owner, created, region FROM buckets WHERE owner=? ORDER BY name",
            (owner,),
        )
        return [BucketRecord(*r) for r in rows]

    def bucket_usage(self, owner: str | None = None) -> list[BucketUsage]:
        """Buckets (``owner``'s, or every one) with their object count and sizes."""
        return [
            BucketUsage(BucketRecord(*r[:4]), *r[4:]) for r in bucket_usage(self._conn(), owner)
        ]

    def damaged_keys(self, bucket: str, first: str, last: str) -> set[str]:
        """Keys between ``first`` and ``last`` whose objects are marked damaged."""
        return damaged_keys(self._conn(), bucket, first, last)

    def delete_bucket(self, name: str) -> None:
        """Refuses while objects remain; unfinished uploads are aborted with the bucket."""

        def op(db: sqlite3.Connection):
            if db.execute("SELECT 1 FROM objects WHERE bucket=? LIMIT 1", (name,)).fetchone():
                raise NotEmpty(name)
            if db.execute("SELECT 1 FROM versions WHERE bucket=? LIMIT 1", (name,)).fetchone():
                raise NotEmpty(name)
            uploads = [
                r[0] for r in db.execute("SELECT upload_id FROM uploads WHERE bucket=?", (name,))
            ]
            for upload_id in uploads:
                self._drop_upload(db, upload_id, keep=())
            db.execute("DELETE FROM bucket_configs WHERE bucket=?", (name,))
            if db.execute("DELETE FROM buckets WHERE name=?", (name,)).rowcount == 0:
                raise NotFound(name)

        return self._transact(op)

    # -- objects -----------------------------------------------------------------------------

    def get_object(self, bucket: str, key: str) -> ObjectRecord | None:
        row = (
            self._conn()
            .execute(
                f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE bucket=? AND key=?", (bucket, key)
            )
            .fetchone()
        )
        return None if row is None else _object_from_row(row)

    def get_object_in(self, bucket: str, key: str) -> tuple[str | None, ObjectRecord | None]:
        """(bucket owner, object) in one read: the owner is None when the bucket does not
        exist, the object None when the key does not. One statement, not two, because this
        is every GET and HEAD."""
        row = self._conn().execute(_GET_OBJECT_IN, (key, bucket)).fetchone()
        if row is None:
            return None, None
        return row[0], (None if row[1] is None else _object_from_row(row[1:]))

    def put_object(
        self,
        obj: ObjectRecord,
        if_absent: bool = False,
        if_etag: str | None = None,
        owner: str | None = None,
    ) -> None:
        """Make ``obj`` the visible version in one transaction; the replaced version's blobs
        go to the GC queue in the same transaction, so nothing can leak or be freed early.
        Conditions (If-None-Match: *, If-Match) and, given ``owner``, the bucket's existence
        and ownership are checked inside that transaction, so neither a racing conditional
        write nor a concurrent DeleteBucket can slip in between check and commit."""

        def op(db: sqlite3.Connection):
            if owner is not None:
                _check_bucket_owner(db, obj.bucket, owner)
            return self._put_object_op(db, obj, if_absent, if_etag)

        return self._transact(op)

    def _put_object_op(
        self, db: sqlite3.Connection, obj: ObjectRecord, if_absent: bool, if_etag: str | None
    ) -> VersionRef | None:
        if if_absent or if_etag is not None:
            row = db.execute(
                "SELECT etag FROM objects WHERE bucket=? AND key=?", (obj.bucket, obj.key)
            ).fetchone()
            if if_absent and row is not None:
                raise ConditionFailed(missing=False)
            if if_etag is not None and (row is None or row[0].strip('"') != if_etag):
                raise ConditionFailed(missing=row is None)
        ref = self._make_room(db, obj.bucket, obj.key, marker=False)
        if ref is not None:
            obj.vseq, obj.vnull = ref.seq, ref.null
        self._insert_object(db, obj)
        self._mark_live(db, obj.segments)
        self._notify_created(db, obj)
        return ref

    # -- versions ------------------------------------------------------------------------------

    def _versioning(self, db: sqlite3.Connection, bucket: str) -> str | None:
        row = db.execute(
            "SELECT value FROM bucket_configs WHERE bucket=? AND name='versioning'", (bucket,)
        ).fetchone()
        return None if row is None else row[0]

    def _next_seq(self, db: sqlite3.Connection) -> int:
        """The next version number: one writer at a time commits, so this order is the
        commit order."""
        row = db.execute(
            "UPDATE meta SET value=CAST(value AS INTEGER)+1 WHERE name='version_seq' "
            "RETURNING value"
        ).fetchone()
        if row is None:
            db.execute("INSERT INTO meta VALUES ('version_seq', '1')")
            return 1
        return int(row[0])

    def _make_room(
        self, db: sqlite3.Connection, bucket: str, key: str, marker: bool
    ) -> VersionRef | None:
        """Before a new current version (or delete marker) of ``key``: in a bucket never
        versioned, retire the current version (None); otherwise keep it as a noncurrent
        version, replace the "null" version if the bucket is suspended, and give the new
        version its number."""
        state = self._versioning(db, bucket)
        if state is None:
            if not marker:
                self._retire_object(db, bucket, key)
            return None
        if state != "Enabled":
            self._drop_null(db, bucket, key)
        db.execute(
            f"INSERT INTO versions ({_OBJECT_COLUMNS}) SELECT {_OBJECT_COLUMNS} FROM objects "
            "WHERE bucket=? AND key=?",
            (bucket, key),
        )
        db.execute("DELETE FROM objects WHERE bucket=? AND key=?", (bucket, key))
        return VersionRef(self._next_seq(db), state != "Enabled", marker)

    def _drop_null(self, db: sqlite3.Connection, bucket: str, key: str) -> None:
        for table in ("objects", "versions"):
            for (segments,) in db.execute(
                f"SELECT segments FROM {table} WHERE bucket=? AND key=? AND vnull=1", (bucket, key)
            ).fetchall():
                self._queue_gc(db, segments_from_text(segments))
            db.execute(f"DELETE FROM {table} WHERE bucket=? AND key=? AND vnull=1", (bucket, key))

    def _delete_current(self, db: sqlite3.Connection, bucket: str, key: str) -> bool | VersionRef:
        ref = self._make_room(db, bucket, key, marker=True)
        if ref is None:
            return self._retire_object(db, bucket, key)
        db.execute(
            "INSERT INTO versions (bucket, key, vseq, vnull, marker, size, etag, last_modified, "
            "content_type, headers, meta, segments) VALUES (?,?,?,?,1,0,'',?,'','{}','{}','[]')",
            (bucket, key, ref.seq, int(ref.null), time.time()),
        )
        return ref

    def get_version(self, bucket: str, key: str, seq: int | None) -> ObjectRecord | None:
        cond, args = _version_cond(bucket, key, seq)
        db = self._conn()
        row = db.execute(f"SELECT {_OBJECT_COLUMNS}, 0 FROM objects WHERE {cond}", args).fetchone()
        if row is None:
            row = db.execute(
                f"SELECT {_OBJECT_COLUMNS}, marker FROM versions WHERE {cond}", args
            ).fetchone()
        return None if row is None else _object_from_row(row)

    def current_marker(self, bucket: str, key: str) -> ObjectRecord | None:
        """The delete marker that is the key's newest version, if it is one."""
        db = self._conn()
        if db.execute("SELECT 1 FROM objects WHERE bucket=? AND key=?", (bucket, key)).fetchone():
            return None
        row = db.execute(
            f"SELECT {_OBJECT_COLUMNS}, marker FROM versions WHERE bucket=? AND key=? "
            "ORDER BY vseq DESC LIMIT 1",
            (bucket, key),
        ).fetchone()
        return None if row is None or not row[-1] else _object_from_row(row)

    def delete_version(
        self,
        bucket: str,
        key: str,
        seq: int | None,
        check: Callable[[ObjectRecord], None] | None = None,
    ) -> ObjectRecord | None:
        """Remove one version for good (its blobs to the GC); removing the current version
        makes the newest remaining one current (a delete marker stays in the history, and
        the key then has no current object). ``check`` may refuse (object lock) by raising,
        inside the transaction. None if there is no such version."""

        def op(db: sqlite3.Connection):
            cond, args = _version_cond(bucket, key, seq)
            row = db.execute(
                f"SELECT {_OBJECT_COLUMNS}, 0 FROM objects WHERE {cond}", args
            ).fetchone()
            table = "objects"
            if row is None:
                row = db.execute(
                    f"SELECT {_OBJECT_COLUMNS}, marker FROM versions WHERE {cond}", args
                ).fetchone()
                table = "versions"
            if row is None:
                return None
            found = _object_from_row(row)
            if check is not None:
                check(found)
            self._queue_gc(db, found.segments)
            db.execute(f"DELETE FROM {table} WHERE {cond}", args)
            self._notify_removed(db, bucket, [key], [found])
            current = db.execute(
                "SELECT 1 FROM objects WHERE bucket=? AND key=?", (bucket, key)
            ).fetchone()
            if current is None:  # the newest remaining version becomes current
                newest = db.execute(
                    "SELECT vseq, marker FROM versions WHERE bucket=? AND key=? "
                    "ORDER BY vseq DESC LIMIT 1",
                    (bucket, key),
                ).fetchone()
                if newest is not None and not newest[1]:
                    db.execute(
                        f"INSERT INTO objects ({_OBJECT_COLUMNS}) SELECT {_OBJECT_COLUMNS} "
                        "FROM versions WHERE bucket=? AND key=? AND vseq=?",
                        (bucket, key, newest[0]),
                    )
                    db.execute(
                        "DELETE FROM versions WHERE bucket=? AND key=? AND vseq=?",
                        (bucket, key, newest[0]),
                    )
            return found

        return self._transact(op)

    def list_versions(
        self, bucket: str, prefix: str, after: tuple[str, int] | None, limit: int
    ) -> list[VersionEntry]:
        """Versions and delete markers in (key ascending, newest first) order, strictly
        after ``after`` = (key, vseq)."""
        clauses, args = _bucket_prefix_clauses(bucket, prefix)
        if after is not None:
            clauses.append("(key>? OR (key=? AND vseq<?))")
            args += [after[0], after[0], after[1]]
        where = " AND ".join(clauses)
        latest_marker = (
            "(marker=1 AND NOT EXISTS (SELECT 1 FROM objects o WHERE o.bucket=v.bucket AND "
            "o.key=v.key) AND vseq=(SELECT max(vseq) FROM versions w WHERE w.bucket=v.bucket "
            "AND w.key=v.key))"
        )
        rows = self._conn().execute(
            f"SELECT key, vseq, vnull, 0, size, etag, last_modified, 1 FROM objects WHERE {where} "
            f"UNION ALL SELECT key, vseq, vnull, marker, size, etag, last_modified, "
            f"{latest_marker} FROM versions v WHERE {where} ORDER BY 1, 2 DESC LIMIT ?",
            [*args, *args, limit],
        )
        return [
            VersionEntry(r[0], r[1], bool(r[2]), bool(r[3]), r[4], r[5], r[6], bool(r[7]))
            for r in rows
        ]

    def _insert_object(self, db: sqlite3.Connection, obj: ObjectRecord) -> None:
        db.execute(
            f"INSERT INTO objects ({_OBJECT_COLUMNS}) VALUES ({','.join('?' * 19)})",
            object_values(obj),
        )

    def _mark_live(self, db: sqlite3.Connection, segments: list[Segment]) -> None:
        db.executemany(
            "INSERT OR IGNORE INTO live_blobs VALUES (?)",
            [(s.blob_id,) for s in segments if s.stores],
        )
        if any(s.deferred for s in segments):  # copies the write could not make: owed
            queue_repair_rows(db, deferred_copies(segments))

    def _queue_gc(self, db: sqlite3.Connection, segments: Iterable[Segment]) -> None:
        due = time.time() + self.gc_grace
        for s in segments:
            if s.stores:  # inline data goes with its row
                queue_for_gc(db, s.blob_id, ",".join(s.stores), due)

    def _retire_object(self, db: sqlite3.Connection, bucket: str, key: str) -> bool:
        row = db.execute(
            "SELECT segments FROM objects WHERE bucket=? AND key=?", (bucket, key)
        ).fetchone()
        if row is None:
            return False
        self._queue_gc(db, segments_from_text(row[0]))
        db.execute("DELETE FROM objects WHERE bucket=? AND key=?", (bucket, key))
        return True

    def import_objects(self, objects: Iterable[ObjectRecord], batch: int = 10_000) -> int:
        """Bulk-load new objects (keys not present yet), ``batch`` per transaction: for
        migrations and for building large benchmark indexes without going through HTTP."""
        count = 0
        pending: list[ObjectRecord] = []

        def flush() -> None:
            with self._write() as db:
                for obj in pending:
                    self._insert_object(db, obj)
                    self._mark_live(db, obj.segments)
            pending.clear()

        for obj in objects:
            pending.append(obj)
            count += 1
            if len(pending) >= batch:
                flush()
        if pending:
            flush()
        # A bulk load leaves the whole load in the WAL; fold it into the database now, or
        # every reader of the next server would search a WAL index of millions of frames
        # while the background checkpointer slowly catches up.
        self.checkpoint("TRUNCATE")
        return count

    def checkpoint(self, mode: str = "PASSIVE") -> None:
        if mode not in ("PASSIVE", "FULL", "RESTART", "TRUNCATE"):
            raise ValueError(mode)
        self._conn().execute(f"PRAGMA wal_checkpoint({mode})").fetchone()

    def delete_object(self, bucket: str, key: str) -> bool | VersionRef:
        def op(db: sqlite3.Connection):
            result = self._delete_current(db, bucket, key)
            self._notify_removed(db, bucket, [key], [result])
            return result

        return self._transact(op)

    def delete_objects(self, bucket: str, keys: list[str]) -> None:
        """One transaction for a whole DeleteObjects batch: one fsync, not a thousand."""

        def op(db: sqlite3.Connection):
            results = [self._delete_current(db, bucket, key) for key in keys]
            self._notify_removed(db, bucket, keys, results)
            return results

        return self._transact(op)

    def set_version_lock(
        self,
        bucket: str,
        key: str,
        seq: int | None,
        change: Callable[[ObjectRecord], tuple[str | None, float | None, bool]],
    ) -> ObjectRecord | None:
        """Set one version's retention and legal hold to ``change(version)``, which may refuse
        by raising, inside the transaction; the version as it was, or None if there is none."""

        def op(db: sqlite3.Connection):
            cond, args = _version_cond(bucket, key, seq)
            for table, marker in (("objects", "0"), ("versions", "marker")):
                row = db.execute(
                    f"SELECT {_OBJECT_COLUMNS}, {marker} FROM {table} WHERE {cond}", args
                ).fetchone()
                if row is not None:
                    found = _object_from_row(row)
                    text = lock_to_text(*change(found))
                    db.execute(f"UPDATE {table} SET objlock=? WHERE {cond}", [text, *args])
                    return found
            return None

        return self._transact(op)

    def add_copies(self, bucket: str, key: str, etag: str, extra: dict[str, list[str]]) -> int:
        """Add stores to the current version's segments (blob id -> store ids) and queue
        the copies they are owed, in one transaction; only while the object is still the
        one with ``etag``. Returns how many copies were queued."""

        def op(db: sqlite3.Connection) -> int:
            row = db.execute(
                "SELECT segments FROM objects WHERE bucket=? AND key=? AND etag=?",
                (bucket, key, etag),
            ).fetchone()
            if row is None:
                return 0
            segments, tasks = with_new_copies(segments_from_text(row[0]), extra, f"{bucket}/{key}")
            if not tasks:
                return 0
            db.execute(
                "UPDATE objects SET segments=? WHERE bucket=? AND key=?",
                (segments_to_text(segments), bucket, key),
            )
            queue_repair_rows(db, tasks)
            return len(tasks)

        return self._transact(op)

    def set_object_headers(
        self,
        bucket: str,
        key: str,
        seq: int | None,
        change: Callable[[dict[str, str]], dict[str, str]],
        current: bool = False,
    ) -> ObjectRecord | None:
        """See Index.set_object_headers."""

        def op(db: sqlite3.Connection):
            if current:
                cond, args = "bucket=? AND key=?", [bucket, key]
                tables = (("objects", "0"),)
            else:
                cond, args = _version_cond(bucket, key, seq)
                tables = (("objects", "0"), ("versions", "marker"))
            for table, marker in tables:
                row = db.execute(
                    f"SELECT {_OBJECT_COLUMNS}, {marker} FROM {table} WHERE {cond}", args
                ).fetchone()
                if row is not None:
                    found = _object_from_row(row)
                    if found.delete_marker:
                        return None
                    text = _json(change(dict(found.headers)))
                    db.execute(f"UPDATE {table} SET headers=? WHERE {cond}", [text, *args])
                    return found
            return None

        return self._transact(op)

    def set_version_tags(
        self,
        bucket: str,
        key: str,
        seq: int | None,
        tags: list[tuple[str, str]],
        check: Callable[[ObjectRecord], None],
    ) -> ObjectRecord | None:
        """Replace one version's tags after ``check(version)``, in one transaction."""

        def op(db: sqlite3.Connection):
            cond, args = _version_cond(bucket, key, seq)
            for table, marker in (("objects", "0"), ("versions", "marker")):
                row = db.execute(
                    f"SELECT {_OBJECT_COLUMNS}, {marker} FROM {table} WHERE {cond}", args
                ).fetchone()
                if row is not None:
                    found = _object_from_row(row)
                    check(found)
                    db.execute(
                        f"UPDATE {table} SET tags=? WHERE {cond}", [tags_to_text(tags), *args]
                    )
                    return found
            return None

        return self._transact(op)

    def set_object_tags(self, bucket: str, key: str, tags: list[tuple[str, str]]) -> bool:
        """Replace the current version's tags; False if there is no such key."""

        def op(db: sqlite3.Connection):
            cur = db.execute(
                "UPDATE objects SET tags=? WHERE bucket=? AND key=?",
                (tags_to_text(tags), bucket, key),
            )
            return cur.rowcount > 0

        return self._transact(op)

    def get_bucket_config(self, bucket: str, name: str) -> str | None:
        row = (
            self._conn()
            .execute("SELECT value FROM bucket_configs WHERE bucket=? AND name=?", (bucket, name))
            .fetchone()
        )
        return None if row is None else row[0]

    def get_bucket_access(
        self, bucket: str, names: tuple[str, ...]
    ) -> tuple[BucketRecord | None, dict[str, str]]:
        marks = ",".join("?" * len(names)) or "NULL"
        rows = (
            self._conn()
            .execute(
                "SELECT b.name, b.owner, b.created, b.region, c.name, c.value FROM buckets b "
                f"LEFT JOIN bucket_configs c ON c.bucket=b.name AND c.name IN ({marks}) "
                "WHERE b.name=?",
                (*names, bucket),
            )
            .fetchall()
        )
        if not rows:
            return None, {}
        return BucketRecord(*rows[0][:4]), {r[4]: r[5] for r in rows if r[4] is not None}

    def get_object_access(
        self, bucket: str, names: tuple[str, ...], key: str
    ) -> tuple[BucketRecord | None, dict[str, str], ObjectRecord | None]:
        """Two in-process reads on one connection: no round trip to save here."""
        record, docs = self.get_bucket_access(bucket, names)
        if record is None:
            return None, {}, None
        return record, docs, self.get_object(bucket, key)

    def set_bucket_config(self, bucket: str, name: str, value: str | None) -> bool:
        """Set (or with None remove) one configuration document of a bucket; False if the
        bucket does not exist (checked in the same transaction)."""

        def op(db: sqlite3.Connection):
            if not db.execute("SELECT 1 FROM buckets WHERE name=?", (bucket,)).fetchone():
                return False
            if value is None:
                db.execute("DELETE FROM bucket_configs WHERE bucket=? AND name=?", (bucket, name))
            else:
                db.execute(
                    "INSERT OR REPLACE INTO bucket_configs VALUES (?,?,?)", (bucket, name, value)
                )
            return True

        return self._transact(op)

    def mark_object_state(self, bucket: str, key: str, etag: str, state: str) -> None:
        """Only the version that was read gets marked, never a newer one written meanwhile."""

        def op(db: sqlite3.Connection):
            db.execute(
                "UPDATE objects SET state=? WHERE bucket=? AND key=? AND etag=?",
                (state, bucket, key, etag),
            )

        return self._transact(op)

    def list_keys(
        self, bucket: str, prefix: str, start: str | None, inclusive: bool, limit: int
    ) -> list[ListedEntry]:
        """Keys within ``prefix`` in binary order, from ``start`` (strictly after it unless
        ``inclusive``)."""
        clauses, args = _bucket_prefix_clauses(bucket, prefix)
        if start is not None:
            clauses.append("key>=?" if inclusive else "key>?")
            args.append(start)
        args.append(limit)
        rows = self._conn().execute(
            "SELECT key, size, etag, last_modified, checksum_algorithm, checksum_type "
            f"FROM objects WHERE {' AND '.join(clauses)} ORDER BY key LIMIT ?",
            args,
        )
        return list(map(ListedEntry._make, rows))

    # -- multipart ---------------------------------------------------------------------------

    def create_upload(self, up: UploadRecord) -> None:
        def op(db: sqlite3.Connection):
            db.execute(
                f"INSERT INTO uploads ({_UPLOAD_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    up.upload_id,
                    up.bucket,
                    up.key,
                    up.owner,
                    up.initiated,
                    up.content_type,
                    _json(up.headers),
                    _json(up.meta),
                    up.checksum_algorithm,
                    up.checksum_type,
                    tags_to_text(up.tags),
                ),
            )

        return self._transact(op)

    def get_upload(self, upload_id: str) -> UploadRecord | None:
        row = (
            self._conn()
            .execute(
                f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE upload_id=?",
                (upload_id,),
            )
            .fetchone()
        )
        return _upload_from_row(row) if row else None

    def list_uploads(
        self,
        bucket: str,
        prefix: str,
        key_marker: str | None,
        upload_id_marker: str | None,
        limit: int,
    ) -> list[UploadRecord]:
        clauses, args = _bucket_prefix_clauses(bucket, prefix)
        if key_marker is not None:
            if upload_id_marker:
                clauses.append(
                    "(key>? OR (key=? AND (initiated, upload_id) > "
                    "(SELECT initiated, upload_id FROM uploads WHERE upload_id=?)))"
                )
                args += [key_marker, key_marker, upload_id_marker]
            else:
                clauses.append("key>?")
                args.append(key_marker)
        args.append(limit)
        rows = self._conn().execute(
            f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE {' AND '.join(clauses)} "
            "ORDER BY key, initiated, upload_id LIMIT ?",
            args,
        )
        return [_upload_from_row(r) for r in rows]

    def put_part(self, part: PartRecord) -> bool:
        """Record a part, replacing an earlier upload of the same number. False if the
        upload is gone (aborted or completed meanwhile): the caller then frees the blob."""

        def op(db: sqlite3.Connection):
            if not db.execute(
                "SELECT 1 FROM uploads WHERE upload_id=?", (part.upload_id,)
            ).fetchone():
                return False
            old = db.execute(
                "SELECT segment FROM parts WHERE upload_id=? AND part_number=?",
                (part.upload_id, part.part_number),
            ).fetchone()
            if old:
                self._queue_gc(db, [Segment.from_json(json.loads(old[0]))])
            db.execute(
                "INSERT OR REPLACE INTO parts VALUES (?,?,?,?,?,?,?,?)",
                (
                    part.upload_id,
                    part.part_number,
                    part.size,
                    part.etag,
                    part.md5,
                    part.checksum,
                    part.last_modified,
                    json.dumps(part.segment.to_json()),
                ),
            )
            self._mark_live(db, [part.segment])
            return True

        return self._transact(op)

    def list_parts(self, upload_id: str, after: int = 0, limit: int = 10_000) -> list[PartRecord]:
        rows = self._conn().execute(
            f"SELECT {PART_COLUMNS} FROM parts WHERE upload_id=? AND part_number>? "
            "ORDER BY part_number LIMIT ?",
            (upload_id, after, limit),
        )
        return [part_from_row(r) for r in rows]

    def complete_upload(self, upload_id: str, obj: ObjectRecord) -> bool:
        """Atomically: the object appears, the upload disappears, unused parts are freed.
        False if the upload vanished meanwhile (a concurrent complete or abort won)."""

        def op(db: sqlite3.Connection):
            if not db.execute("SELECT 1 FROM uploads WHERE upload_id=?", (upload_id,)).fetchone():
                return False
            self._drop_upload(db, upload_id, keep={s.blob_id for s in obj.segments})
            ref = self._make_room(db, obj.bucket, obj.key, marker=False)
            if ref is not None:
                obj.vseq, obj.vnull = ref.seq, ref.null
            self._insert_object(db, obj)
            self._mark_live(db, obj.segments)
            self._notify_created(db, obj, "CompleteMultipartUpload")
            return ref or True

        return self._transact(op)

    def abort_upload(self, upload_id: str) -> bool:
        def op(db: sqlite3.Connection):
            if not db.execute("SELECT 1 FROM uploads WHERE upload_id=?", (upload_id,)).fetchone():
                return False
            self._drop_upload(db, upload_id, keep=())
            return True

        return self._transact(op)

    def _drop_upload(self, db: sqlite3.Connection, upload_id: str, keep: Iterable[str]) -> None:
        keep = set(keep)
        segs = [
            Segment.from_json(json.loads(r[0]))
            for r in db.execute("SELECT segment FROM parts WHERE upload_id=?", (upload_id,))
        ]
        self._queue_gc(db, [s for s in segs if s.blob_id not in keep])
        db.execute("DELETE FROM parts WHERE upload_id=?", (upload_id,))
        db.execute("DELETE FROM uploads WHERE upload_id=?", (upload_id,))

    # -- garbage -----------------------------------------------------------------------------

    def due_garbage(self, limit: int, now: float | None = None) -> list[tuple[str, list[str]]]:
        now = time.time() if now is None else now
        rows = self._conn().execute(
            "SELECT blob_id, stores FROM gc_queue WHERE not_before<=? ORDER BY not_before LIMIT ?",
            (now, limit),
        )
        return [(r[0], [s for s in r[1].split(",") if s]) for r in rows]

    def forget_garbage(self, blob_ids: list[str], missed: Sequence[RepairTask] = ()) -> None:
        """Drop collected garbage; ``missed`` are the deletes a down drive could not do,
        kept as its hinted-handoff log (in the same transaction, so none is lost)."""

        def op(db: sqlite3.Connection):
            db.executemany("DELETE FROM gc_queue WHERE blob_id=?", [(b,) for b in blob_ids])
            queue_repair_rows(db, missed)

        return self._transact(op)

    def get_meta(self, name: str) -> str | None:
        row = self._conn().execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return row[0] if row else None

    def set_meta(self, name: str, value: str) -> None:
        def op(db: sqlite3.Connection):
            db.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", (name, value))

        return self._transact(op)


def _check_bucket_owner(db: sqlite3.Connection, bucket: str, owner: str) -> None:
    row = db.execute("SELECT owner FROM buckets WHERE name=?", (bucket,)).fetchone()
    if row is None:
        raise NotFound(bucket)
    if row[0] != owner:
        raise Forbidden(bucket)


def _version_cond(bucket: str, key: str, seq: int | None) -> tuple[str, list[object]]:
    """One version of a key: by number, or (None) the "null" version."""
    if seq is None:
        return "bucket=? AND key=? AND vnull=1", [bucket, key]
    return "bucket=? AND key=? AND vseq=? AND vnull=0", [bucket, key, seq]


def _bucket_prefix_clauses(bucket: str, prefix: str) -> tuple[list[str], list[object]]:
    """WHERE clauses for "in ``bucket``, key starting with ``prefix``" as a key range, so
    SQLite seeks instead of scanning."""
    clauses = ["bucket=?"]
    args: list[object] = [bucket]
    if prefix:
        clauses.append("key>=?")
        args.append(prefix)
        upper = prefix_upper_bound(prefix)
        if upper is not None:
            clauses.append("key<?")
            args.append(upper)
    return clauses, args
