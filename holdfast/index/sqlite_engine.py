"""The SQLite engine behind the asynchronous :class:`~holdfast.index.base.Index` interface.

The synchronous index (holdfast/index/sqlite.py) does the SQL; this adapter decides where
each call runs, keeping the tricks that made small requests fast (docs/performance.md):

* Point reads (GET, HEAD, a bucket, an upload, a user) and flat listing pages run right on
  the event loop: a WAL read of a few cached pages costs less than the two context switches
  of a thread hop. The loop's connection gives up after 100 ms when the index is locked, and
  the read is then retried in the engine's thread pool.
* Writes go to a group commit without holding a thread: PUT and DELETE to the node's
  committer process when the supervisor runs one (holdfast/index/committer.py), everything
  else (or everything while the committer is unreachable) to this process's own committer
  thread, whose future the event loop awaits directly.
* Everything else runs in the engine's own thread pool.

SQLite errors never leave this module: a full drive is IndexFull, a locked, busy or broken
index IndexUnavailable (holdfast/index/errors.py).
"""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from holdfast.index import errors
from holdfast.index.base import Index, Lease
from holdfast.index.committer import (
    COMMITTER_ENV,
    REMOTE_METHODS,
    CommitterClient,
    CommitterUnavailable,
    socket_name,
)
from holdfast.index.integrity import damaged_objects
from holdfast.index.listing import ListPage, build_page
from holdfast.index.records import (
    BackendRecord,
    BucketRecord,
    BucketUsage,
    LayoutRecord,
    ListedEntry,
    NotifyEvent,
    ObjectRecord,
    PartRecord,
    RepairTask,
    StagedLayout,
    TransferSlot,
    UploadRecord,
    UserRecord,
    VersionEntry,
    VersionRef,
)
from holdfast.index.sqlite import SqliteIndex
from holdfast.index.sqlite_migrations import current_version
from holdfast.index.totals import object_totals
from holdfast.leader_lock import try_lock
from holdfast.workers.counters import count

if TYPE_CHECKING:
    from holdfast.config import Config

T = TypeVar("T")

INDEX_DIR = "index"
INDEX_FILE = "holdfast.db"
POOL_THREADS = 16


def index_path(config: Config) -> Path:
    """Where the embedded index of a node lives (its first data directory)."""
    return config.primary_dir / INDEX_DIR / INDEX_FILE


def run_node_committer(config: Config) -> None:
    """The body of the node's committer process (holdfast/server.py starts it)."""
    from holdfast.index.committer import run_committer

    run_committer(index_path(config), config.gc_grace_seconds)


def translate(e: sqlite3.Error) -> errors.IndexError_:
    """The engine-neutral error for a SQLite one."""
    text = str(e)
    if isinstance(e, sqlite3.OperationalError) and "full" in text:  # SQLITE_FULL
        return errors.IndexFull(f"the index's drive is full: {text}")
    if isinstance(e, sqlite3.IntegrityError):
        return errors.Conflict(text)
    return errors.IndexUnavailable(f"index: {text}")


class FlockLease(Lease):
    """A job's lease as an flock on a file next to the index: the kernel drops it when the
    holding process dies, so another process takes over without any timeout."""

    def __init__(self, job: str, fd: int) -> None:
        self.job = job
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    async def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class SqliteEngine(Index):
    engine = "sqlite"

    def __init__(
        self,
        path: Path,
        gc_grace_seconds: float = 30.0,
        use_committer: bool = False,
        checkpointer: bool = True,
        pool_threads: int = POOL_THREADS,
    ) -> None:
        self.path = Path(path)
        self.gc_grace = gc_grace_seconds
        self._use_committer = use_committer
        self._checkpointer = checkpointer
        self.pool = ThreadPoolExecutor(pool_threads, thread_name_prefix="holdfast-index")
        # Status checks get a thread of their own, so a pool full of waiting queries cannot
        # hold them up; one check at a time (a hung one is not started again).
        self._status_pool = ThreadPoolExecutor(1, thread_name_prefix="holdfast-index-status")
        self._status_future: Future | None = None
        self._status_started = 0.0
        self._core: SqliteIndex | None = None
        self.committer: CommitterClient | None = None

    @classmethod
    def from_config(cls, config: Config, role: str = "worker") -> SqliteEngine:
        worker = role == "worker"
        return cls(
            index_path(config),
            gc_grace_seconds=config.gc_grace_seconds,
            use_committer=worker and os.environ.get(COMMITTER_ENV) == "1",
            checkpointer=worker,
        )

    @property
    def core(self) -> SqliteIndex:
        """The synchronous index (for holdfast/index/ internals and its unit tests)."""
        if self._core is None:
            raise errors.IndexUnavailable("the index was not started")
        return self._core

    def absent(self) -> str | None:
        return None if self.path.exists() else f"no index at {self.path}"

    def describe(self) -> dict:
        return {"engine": self.engine, "path": str(self.path)}

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._core is not None:
            return
        try:
            # On the loop's thread: the index opens (and migrates) in milliseconds, and its
            # first connection is then the loop's own, the one point reads use.
            self._core = SqliteIndex(self.path, gc_grace_seconds=self.gc_grace)
        except sqlite3.Error as e:
            raise translate(e) from e
        if self._checkpointer:
            self._core.start_checkpointer()
        if self._use_committer:
            self.committer = CommitterClient(socket_name(self.path))

    async def close(self) -> None:
        if self.committer is not None:
            self.committer.close()
            self.committer = None
        self.pool.shutdown(wait=False, cancel_futures=True)
        self._status_pool.shutdown(wait=False, cancel_futures=True)
        if self._core is not None:
            self._core.close()

    async def purge_history(self) -> None:
        """Fold the WAL into the database and truncate it (the old rows' text with it)."""
        await self._pool(self.core.checkpoint, "TRUNCATE")

    async def schema_version(self) -> int:
        return await self._pool(lambda: current_version(self.core._conn()))

    # -- where calls run ---------------------------------------------------------------------

    async def _pool(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.pool, functools.partial(fn, *args))
        except sqlite3.Error as e:
            raise translate(e) from e

    async def _lookup(self, fn: Callable[..., T], *args: Any) -> T:
        """A point read on the event loop; a busy or locked index retries in the pool."""
        try:
            return fn(*args)
        except sqlite3.OperationalError:
            return await self._pool(fn, *args)
        except sqlite3.Error as e:
            raise translate(e) from e

    async def _write(self, method: Callable[..., T], *args: Any) -> T:
        """A write method of the core, group-committed without holding a thread."""
        if self.committer is not None and method.__name__ in REMOTE_METHODS:
            try:
                return await self.committer.call(method.__name__, *args)
            except CommitterUnavailable:
                count("INDEX_WRITES", 1, "local")
            except sqlite3.Error as e:
                raise translate(e) from e
        try:
            return await asyncio.wrap_future(self.core.defer(method, *args))
        except sqlite3.Error as e:
            raise translate(e) from e

    # -- users -------------------------------------------------------------------------------

    async def add_user(self, user: UserRecord) -> None:
        await self._pool(self.core.add_user, user)

    async def get_user_by_key(self, access_key: str) -> UserRecord | None:
        return await self._lookup(self.core.get_user_by_key, access_key)

    async def list_users(self) -> list[UserRecord]:
        return await self._pool(self.core.list_users)

    async def replace_user_secret(self, access_key: str, old: str, new: str) -> bool:
        return await self._write(self.core.replace_user_secret, access_key, old, new)

    async def set_user_disabled(self, name: str, disabled: bool) -> bool:
        return await self._write(self.core.set_user_disabled, name, disabled)

    async def delete_user(self, name: str) -> bool:
        return await self._write(self.core.delete_user, name)

    # -- buckets -----------------------------------------------------------------------------

    async def create_bucket(self, bucket: BucketRecord) -> None:
        await self._pool(self.core.create_bucket, bucket)

    async def get_bucket(self, name: str) -> BucketRecord | None:
        return await self._lookup(self.core.get_bucket, name)

    async def list_buckets(self, owner: str) -> list[BucketRecord]:
        return await self._pool(self.core.list_buckets, owner)

    async def bucket_usage(self, owner: str | None = None) -> list[BucketUsage]:
        return await self._pool(self.core.bucket_usage, owner)

    async def damaged_keys(self, bucket: str, first: str, last: str) -> set[str]:
        return await self._pool(self.core.damaged_keys, bucket, first, last)

    async def delete_bucket(self, name: str) -> None:
        await self._write(self.core.delete_bucket, name)

    # -- objects -----------------------------------------------------------------------------

    async def get_object(self, bucket: str, key: str) -> ObjectRecord | None:
        return await self._lookup(self.core.get_object, bucket, key)

    async def get_object_in(self, bucket: str, key: str) -> tuple[str | None, ObjectRecord | None]:
        return await self._lookup(self.core.get_object_in, bucket, key)

    async def put_object(
        self,
        obj: ObjectRecord,
        if_absent: bool = False,
        if_etag: str | None = None,
        owner: str | None = None,
    ) -> VersionRef | None:
        return await self._write(self.core.put_object, obj, if_absent, if_etag, owner)

    async def delete_object(self, bucket: str, key: str) -> bool | VersionRef:
        return await self._write(self.core.delete_object, bucket, key)

    async def delete_objects(self, bucket: str, keys: list[str]) -> list[bool | VersionRef]:
        return await self._write(self.core.delete_objects, bucket, keys)

    async def get_version(self, bucket: str, key: str, seq: int | None) -> ObjectRecord | None:
        return await self._lookup(self.core.get_version, bucket, key, seq)

    async def current_marker(self, bucket: str, key: str) -> ObjectRecord | None:
        return await self._lookup(self.core.current_marker, bucket, key)

    async def delete_version(
        self,
        bucket: str,
        key: str,
        seq: int | None,
        check: Callable[[ObjectRecord], None] | None = None,
    ) -> ObjectRecord | None:
        return await self._write(self.core.delete_version, bucket, key, seq, check)

    async def list_versions(
        self, bucket: str, prefix: str, after: tuple[str, int] | None, limit: int
    ) -> list[VersionEntry]:
        return await self._pool(self.core.list_versions, bucket, prefix, after, limit)

    async def set_version_lock(
        self,
        bucket: str,
        key: str,
        seq: int | None,
        change: Callable[[ObjectRecord], tuple[str | None, float | None, bool]],
    ) -> ObjectRecord | None:
        return await self._write(self.core.set_version_lock, bucket, key, seq, change)

    async def add_copies(
        self, bucket: str, key: str, etag: str, extra: dict[str, list[str]]
    ) -> int:
        return await self._write(self.core.add_copies, bucket, key, etag, extra)

    async def set_object_headers(
        self,
        bucket: str,
        key: str,
        seq: int | None,
        change: Callable[[dict[str, str]], dict[str, str]],
        current: bool = False,
    ) -> ObjectRecord | None:
        return await self._write(self.core.set_object_headers, bucket, key, seq, change, current)

    async def set_version_tags(
        self,
        bucket: str,
        key: str,
        seq: int | None,
        tags: list[tuple[str, str]],
        check: Callable[[ObjectRecord], None],
    ) -> ObjectRecord | None:
        return await self._write(self.core.set_version_tags, bucket, key, seq, tags, check)

    async def set_object_tags(self, bucket: str, key: str, tags: list[tuple[str, str]]) -> bool:
        return await self._write(self.core.set_object_tags, bucket, key, tags)

    async def mark_object_state(self, bucket: str, key: str, etag: str, state: str) -> None:
        await self._write(self.core.mark_object_state, bucket, key, etag, state)

    async def set_state_if(self, bucket: str, key: str, etag: str, old: str, new: str) -> bool:
        return await self._write(self.core.set_state_if, bucket, key, etag, old, new)

    async def move_copy(
        self, bucket: str, key: str, vseq: int | None, blob_id: str, old: str, new: str
    ) -> bool:
        return await self._write(self.core.move_copy, bucket, key, vseq, blob_id, old, new)

    async def list_keys(
        self, bucket: str, prefix: str, start: str | None, inclusive: bool, limit: int
    ) -> list[ListedEntry]:
        return await self._lookup(self.core.list_keys, bucket, prefix, start, inclusive, limit)

    async def list_page(
        self, bucket: str, prefix: str, delimiter: str, after: str | None, max_keys: int
    ) -> ListPage:
        # Without a delimiter a page is one query of at most max_keys + 1 rows (~1 ms for
        # 1,000), cheaper on the event loop than in the pool: the thread hop cost more CPU
        # than the query (1.9 vs 1.0 ms a page, measured). With a delimiter a page can take
        # one query per common prefix, so it stays off the loop.
        read = self._pool if delimiter else self._lookup
        return await read(
            build_page, self.core.list_keys, bucket, prefix, delimiter, after, max_keys
        )

    async def import_objects(self, objects: Iterable[ObjectRecord], batch: int = 10_000) -> int:
        return await self._pool(self.core.import_objects, objects, batch)

    # -- multipart uploads -------------------------------------------------------------------

    async def create_upload(self, up: UploadRecord) -> None:
        await self._write(self.core.create_upload, up)

    async def get_upload(self, upload_id: str) -> UploadRecord | None:
        return await self._lookup(self.core.get_upload, upload_id)

    async def list_uploads(
        self,
        bucket: str,
        prefix: str,
        key_marker: str | None,
        upload_id_marker: str | None,
        limit: int,
    ) -> list[UploadRecord]:
        return await self._pool(
            self.core.list_uploads, bucket, prefix, key_marker, upload_id_marker, limit
        )

    async def put_part(self, part: PartRecord) -> bool:
        return await self._write(self.core.put_part, part)

    async def list_parts(
        self, upload_id: str, after: int = 0, limit: int = 10_000
    ) -> list[PartRecord]:
        return await self._pool(self.core.list_parts, upload_id, after, limit)

    async def complete_upload(self, upload_id: str, obj: ObjectRecord) -> bool | VersionRef:
        return await self._write(self.core.complete_upload, upload_id, obj)

    async def abort_upload(self, upload_id: str) -> bool:
        return await self._write(self.core.abort_upload, upload_id)

    async def scan_parts(self, after: tuple[str, int] | None, limit: int) -> list[PartRecord]:
        return await self._pool(self.core.scan_parts, after, limit)

    # -- garbage -----------------------------------------------------------------------------

    async def due_garbage(
        self, limit: int, now: float | None = None
    ) -> list[tuple[str, list[str]]]:
        return await self._pool(self.core.due_garbage, limit, now)

    async def forget_garbage(self, blob_ids: list[str], missed: Sequence[RepairTask] = ()) -> None:
        await self._write(self.core.forget_garbage, blob_ids, missed)

    async def is_live(self, blob_id: str) -> bool:
        return await self._pool(self.core.is_live, blob_id)

    async def known_blobs(self, blob_ids: list[str]) -> set[str]:
        return await self._pool(self.core.known_blobs, blob_ids)

    async def reference_problems(self) -> dict[str, list[str]]:
        return await self._pool(self.core.reference_problems)

    async def fix_references(self, unmarked: list[str], unreferenced: list[str]) -> None:
        await self._write(self.core.fix_references, unmarked, unreferenced)

    # -- repair queue ------------------------------------------------------------------------

    async def queue_repairs(self, tasks: Sequence[RepairTask]) -> int:
        if not tasks:
            return 0
        return await self._write(self.core.queue_repairs, tasks)

    async def due_repairs(
        self, stores: Iterable[str], limit: int, now: float | None = None
    ) -> list[RepairTask]:
        return await self._pool(self.core.due_repairs, list(stores), limit, now)

    async def repairs(self, limit: int = 1000) -> list[RepairTask]:
        return await self._pool(self.core.repairs, limit)

    async def finish_repair(self, task: RepairTask) -> bool:
        return await self._write(self.core.finish_repair, task)

    async def defer_repair(self, task: RepairTask, not_before: float, error: str) -> None:
        await self._write(self.core.defer_repair, task, not_before, error)

    async def repair_summary(self) -> dict:
        return await self._pool(self.core.repair_summary)

    # -- integrity, totals, status -----------------------------------------------------------

    async def scan_versions(
        self, after: tuple[str, str, int] | None, limit: int
    ) -> list[ObjectRecord]:
        return await self._pool(self.core.scan_versions, after, limit)

    async def scan_objects(self, after: tuple[str, str] | None, limit: int) -> list[ObjectRecord]:
        return await self._pool(self.core.scan_objects, after, limit)

    async def totals(self) -> tuple[int, int]:
        return await self._pool(self.core.totals)

    async def damaged_objects(self, limit: int = 100) -> tuple[int, list[tuple[str, str]]]:
        return await self._pool(self.core.damaged_objects, limit)

    async def integrity_check(self, quick: bool = False) -> list[str]:
        return await self._pool(self.core.integrity_check, quick)

    async def probe(self, timeout: float) -> dict:
        ok, value = await self._status_call(timeout, _probe, self.path, timeout)
        if not ok:
            return {"readable": False, "writable": False, "error": value}
        return value

    async def status_counts(self, timeout: float, examples: int = 5) -> dict:
        ok, value = await self._status_call(timeout, _counts, self.path, timeout, examples)
        if not ok:
            raise errors.IndexUnavailable(value)
        return value

    async def _status_call(self, timeout: float, fn: Callable[..., Any], *args: Any) -> tuple:
        """(True, result) or (False, why not): at most ``timeout``, one check at a time on
        a fresh connection whose queries are interrupted at the deadline."""
        running = self._status_future
        if running is not None and not running.done():
            return (
                False,
                f"check still running after {time.monotonic() - self._status_started:.0f}s",
            )
        self._status_started = time.monotonic()
        self._status_future = future = self._status_pool.submit(fn, *args)
        try:
            result = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout)
        except TimeoutError:
            return False, f"no answer within {timeout:g}s"
        except errors.IndexError_ as e:
            return False, str(e)
        except Exception as e:
            return False, f"{type(e).__name__}: {e}"
        return True, result

    # -- drives and placement ----------------------------------------------------------------

    async def drives(self) -> dict[str, str]:
        return await self._pool(self.core.drives)

    async def register_drive(self, store_id: str, path: str, adopt: Callable[[str], str]) -> str:
        return await self._pool(self.core.register_drive, store_id, path, adopt)

    async def bucket_policies(self) -> dict[str, tuple[int, int, str]]:
        return await self._pool(self.core.bucket_policies)

    async def set_bucket_policy(
        self, bucket: str, copies: int | None, min_copies: int | None, spread: str = ""
    ) -> None:
        await self._write(self.core.set_bucket_policy, bucket, copies, min_copies, spread)

    # -- back-end stores ---------------------------------------------------------------------

    async def backend_stores(self) -> list[BackendRecord]:
        return await self._pool(self.core.backend_stores)

    async def add_backend_store(self, rec: BackendRecord, uuid_: str, location: str) -> None:
        await self._pool(self.core.add_backend_store, rec, uuid_, location)

    async def set_backend_secret(self, name: str, secret: bytes) -> None:
        await self._pool(self.core.set_backend_secret, name, secret)

    async def remove_backend_store(self, name: str) -> bool:
        return await self._pool(self.core.remove_backend_store, name)

    async def get_bucket_config(self, bucket: str, name: str) -> str | None:
        return await self._lookup(self.core.get_bucket_config, bucket, name)

    async def get_bucket_access(
        self, bucket: str, names: tuple[str, ...]
    ) -> tuple[BucketRecord | None, dict[str, str]]:
        return await self._lookup(self.core.get_bucket_access, bucket, names)

    async def get_object_access(
        self, bucket: str, names: tuple[str, ...], key: str
    ) -> tuple[BucketRecord | None, dict[str, str], ObjectRecord | None]:
        return await self._lookup(self.core.get_object_access, bucket, names, key)

    async def set_bucket_config(self, bucket: str, name: str, value: str | None) -> bool:
        return await self._write(self.core.set_bucket_config, bucket, name, value)

    # -- meta --------------------------------------------------------------------------------

    async def due_notifications(
        self, streams: int, per_stream: int, now: float | None = None
    ) -> list[list[NotifyEvent]]:
        return await self._pool(self.core.due_notifications, streams, per_stream, now)

    async def finish_notifications(self, ids: list[int]) -> None:
        await self._write(self.core.finish_notifications, ids)

    async def defer_notification(
        self, event_id: int, not_before: float, error: str, dead: bool
    ) -> None:
        await self._write(self.core.defer_notification, event_id, not_before, error, dead)

    async def retry_dead_notifications(self, target: str | None = None) -> int:
        return await self._write(self.core.retry_dead_notifications, target)

    async def notification_summary(self) -> dict:
        return await self._pool(self.core.notification_summary)

    async def dead_notifications(self, limit: int = 100) -> list[NotifyEvent]:
        return await self._pool(self.core.dead_notifications, limit)

    async def scan_sealed(
        self, table: str, after: tuple[str, str, int] | None, limit: int, marker: str
    ) -> list[tuple[str, str, int, str]]:
        return await self._pool(self.core.scan_sealed, table, after, limit, marker)

    async def replace_header(
        self, bucket: str, key: str, vseq: int, name: str, old: str, new: str
    ) -> bool:
        return await self._write(self.core.replace_header, bucket, key, vseq, name, old, new)

    async def replace_upload_header(self, upload_id: str, name: str, old: str, new: str) -> bool:
        return await self._write(self.core.replace_upload_header, upload_id, name, old, new)

    async def get_meta(self, name: str) -> str | None:
        return await self._pool(self.core.get_meta, name)

    async def set_meta(self, name: str, value: str) -> None:
        await self._write(self.core.set_meta, name, value)

    # -- the cluster layout ------------------------------------------------------------------

    async def layout_version(self) -> int:
        return await self._pool(self.core.layout_version)

    async def get_layout(self) -> LayoutRecord | None:
        return await self._pool(self.core.get_layout)

    async def get_staged_layout(self) -> StagedLayout | None:
        return await self._pool(self.core.get_staged_layout)

    async def stage_layout(self, staged: StagedLayout | None) -> None:
        await self._write(self.core.stage_layout, staged)

    async def apply_layout(
        self, expect_version: int, layout: LayoutRecord, drop_staged: bool = True
    ) -> int:
        return await self._write(self.core.apply_layout, expect_version, layout, drop_staged)

    async def layout_history(self, limit: int = 50) -> list[LayoutRecord]:
        return await self._pool(self.core.layout_history, limit)

    # -- transfer slots ----------------------------------------------------------------------

    async def acquire_transfer_slot(
        self, cap: int, holder: str, kind: str, target: str, token: str, ttl: float
    ) -> int | None:
        return await self._write(
            self.core.acquire_transfer_slot, cap, holder, kind, target, token, ttl
        )

    async def renew_transfer_slot(self, slot: int, token: str, ttl: float) -> bool:
        return await self._write(self.core.renew_transfer_slot, slot, token, ttl)

    async def release_transfer_slot(self, slot: int, token: str) -> None:
        await self._write(self.core.release_transfer_slot, slot, token)

    async def transfer_slots(self) -> list[TransferSlot]:
        return await self._pool(self.core.transfer_slots)

    # -- once per node (a SQLite index is one node's: that is the cluster) --------------------

    async def try_lead(self, job: str) -> Lease | None:
        if not job.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"job names are letters, digits, - and _: {job!r}")
        fd = try_lock(self.path.parent / f"{job}.lock")
        return FlockLease(job, fd) if fd is not None else None


# -- status checks (blocking; each runs in the engine's status thread) -------------------------


def _connect_with_deadline(path: Path, deadline: float) -> sqlite3.Connection:
    # mode=rw: never create an empty index where the real one has gone missing.
    db = sqlite3.connect(
        f"file:{quote(str(path))}?mode=rw", uri=True, timeout=0.5, isolation_level=None
    )
    db.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 5000)
    return db


def _probe(path: Path, budget: float) -> dict:
    """Can the index be read and write-locked (a fresh connection, nothing cached)."""
    deadline = time.monotonic() + max(0.1, budget - 0.5)
    started = time.monotonic()
    out: dict[str, Any] = {"readable": False, "writable": False, "error": None}
    try:
        db = _connect_with_deadline(path, deadline)
    except sqlite3.Error as e:
        return {**out, "error": f"cannot open {path}: {e}"}
    try:
        try:
            db.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()
        except sqlite3.Error as e:
            return {**out, "error": f"read failed: {e}"}
        out["readable"] = True
        out["read_ms"] = round((time.monotonic() - started) * 1000, 2)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
            out["writable"] = True
        except sqlite3.Error as e:
            out["error"] = f"write lock failed: {e}"
        return out
    finally:
        db.close()


def _counts(path: Path, budget: float, examples: int) -> dict:
    """Totals kept by the index's triggers, damaged objects from their partial index, the
    repair queue per drive: no scan of the objects table, whatever its size."""
    from holdfast.index.integrity import repair_summary

    deadline = time.monotonic() + max(0.1, budget - 0.5)
    try:
        db = _connect_with_deadline(path, deadline)
    except sqlite3.Error as e:
        raise errors.IndexUnavailable(f"cannot open {path}: {e}") from e
    try:
        buckets = db.execute("SELECT count(*) FROM buckets").fetchone()[0]
        objects, stored, copies, corrupt = object_totals(db)
        gc_queue = db.execute("SELECT count(*) FROM gc_queue").fetchone()[0]
        rows = db.execute(
            "SELECT bucket, key, state FROM objects WHERE state<>'ok' LIMIT ?", (examples,)
        ).fetchall()
        damaged, damaged_examples = damaged_objects(db, examples)
        queue = repair_summary(db)
    except sqlite3.Error as e:
        raise errors.IndexUnavailable(f"counting failed: {e}") from e
    finally:
        db.close()
    return {
        "buckets": buckets,
        "objects": objects,
        "stored_bytes": stored,
        "copies_bytes": copies,  # every copy of every object: Holdfast's own data on disk
        "gc_queue": gc_queue,
        "corrupt_objects": corrupt,
        "corrupt_examples": [{"bucket": b, "key": k, "state": s} for b, k, s in rows],
        "damaged": {"count": damaged, "examples": [f"{b}/{k}" for b, k in damaged_examples]},
        "repair_queue": queue,
        "counted_at": time.time(),
    }
