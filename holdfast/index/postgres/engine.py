"""The index on PostgreSQL, shared by every node of a cluster, through psycopg 3 (async) and
psycopg_pool's AsyncConnectionPool.

Why psycopg 3: it is the maintained PostgreSQL driver with a native asyncio API, a connection
pool of its own (psycopg_pool) and libpq underneath, so multi-host DSNs with
``target_session_attrs=read-write`` (Patroni failover) work as libpq documents them. asyncpg
is faster per query but has its own protocol implementation without libpq's multi-host
handling and no pool that checks connections back in after a failure.

How a call runs:

* A read is one statement on a pooled connection in autocommit mode: one round trip.
* A write is one transaction (BEGIN ... COMMIT). Conditions and ownership are checked inside
  it with row locks (SELECT ... FOR UPDATE, the buckets foreign keys), so another node's
  concurrent write cannot slip in between check and commit.
* Every call has a deadline (``timeout``, 2 s by default): waiting for a pooled connection,
  connecting and the query itself all count against it, so a node whose engine is down or
  unreachable answers 503 quickly instead of hanging. A call that did nothing raises
  IndexUnavailable; a write whose COMMIT was sent but not answered raises OutcomeUnknown.
* A pooled connection found dead (the server restarted) before COMMIT was sent is retried
  once on a fresh one: nothing of that transaction can have committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import psycopg
import psycopg_pool
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from holdfast.config import Config
from holdfast.index.base import Index, Lease
from holdfast.index.errors import (
    ConditionFailed,
    Conflict,
    Forbidden,
    IndexError_,
    IndexFull,
    IndexUnavailable,
    NotEmpty,
    NotFound,
    OutcomeUnknown,
)
from holdfast.index.listing import ListPage, page_from_walk, prefix_upper_bound, walk_limit
from holdfast.index.notify import CONFIG_NAME as _NOTIFY_CONFIG
from holdfast.index.postgres import notify as outbox
from holdfast.index.postgres import transfers as _transfers
from holdfast.index.postgres.lease import AdvisoryLease, job_lock_key
from holdfast.index.postgres.schema import migrate
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
    Segment,
    StagedLayout,
    TransferSlot,
    UploadRecord,
    UserRecord,
    VersionEntry,
    VersionRef,
    lock_to_text,
    move_copy_text,
    nodes_from_text,
    nodes_to_text,
    segments_from_text,
    segments_to_text,
    tags_to_text,
    with_new_copies,
)
from holdfast.index.rows import REPAIR_COLUMNS as _REPAIR_COLUMNS
from holdfast.index.rows import json_text as _json
from holdfast.index.rows import object_from_row as _object_from_row
from holdfast.index.rows import object_values as _object_values
from holdfast.index.rows import part_from_row as _part_from_row
from holdfast.index.rows import scan_record
from holdfast.index.rows import task_from_row as _task_from_row
from holdfast.index.rows import upload_from_row as _upload_from_row

T = TypeVar("T")
Conn = psycopg.AsyncConnection
log = logging.getLogger("holdfast.index.postgres")

DEFAULT_TIMEOUT = 2.0
# How long a call waits for a pooled connection while the engine is known to be down.
DOWN_WAIT = 0.25
# After a call failed for want of a working index (a deadline, a lost connection), writes
# take the transaction path for this long (:meth:`PostgresIndex._write_one`).
DOUBT_SECONDS = 5.0
# psycopg_pool's reconnection budget, after which it starts again from its 1 s backoff.
RECONNECT_TIMEOUT = 2.0
# Dead peers are noticed by the kernel, not only by the next query: a partitioned engine
# turns into a socket error in ~10 s even on an idle pooled connection or a lease holder.
_SOCKET_OPTIONS = {
    "keepalives": "1",
    "keepalives_idle": "5",
    "keepalives_interval": "2",
    "keepalives_count": "3",
    "tcp_user_timeout": "10000",
}

_OBJECT_COLUMNS = (
    "bucket, key, size, etag, last_modified, content_type, headers, meta, checksum_algorithm, "
    "checksum_type, checksum_value, parts_count, state, segments, inline, tags, vseq, vnull, "
    "objlock"
)
_JOINED_OBJECT_COLUMNS = ", ".join(f"o.{c.strip()}" for c in _OBJECT_COLUMNS.split(","))
# Every GET and HEAD (get_object_access): the bucket, the access documents asked for and the
# object, in one statement.
_GET_OBJECT_ACCESS = (
    "SELECT b.name, b.owner, b.created, b.region, c.names, c.vals, "
    f"{_JOINED_OBJECT_COLUMNS} FROM buckets b "
    "LEFT JOIN LATERAL (SELECT array_agg(name) AS names, array_agg(value) AS vals "
    "FROM bucket_configs WHERE bucket = b.name AND name = ANY(%s)) c ON true "
    "LEFT JOIN objects o ON o.bucket = b.name AND o.key = %s WHERE b.name = %s"
)
_UPLOAD_COLUMNS = (
    "upload_id, bucket, key, owner, initiated, content_type, headers, meta, "
    "checksum_algorithm, checksum_type, tags"
)
_PART_COLUMNS = "upload_id, part_number, size, etag, md5, checksum, last_modified, segment"
# "Now" for the queues' due times, on the index's clock: every node of a cluster reads and
# writes the same times whatever its own clock says (a node minutes ahead must not collect
# garbage before its grace, nor one behind delay every repair it queues).
_NOW = "extract(epoch from clock_timestamp())::float8"
_INSERT_OBJECT = f"INSERT INTO objects ({_OBJECT_COLUMNS}) VALUES ({', '.join(['%s'] * 19)})"
_UPDATE_OBJECT = (
    "UPDATE objects SET size=%s, etag=%s, last_modified=%s, content_type=%s, headers=%s, "
    "meta=%s, checksum_algorithm=%s, checksum_type=%s, checksum_value=%s, parts_count=%s, "
    "state=%s, segments=%s, inline=%s, tags=%s, vseq=%s, vnull=%s, objlock=%s "
    "WHERE bucket=%s AND key=%s"
)
_LIST_KEYS = (
    "SELECT key, size, etag, last_modified, checksum_algorithm, checksum_type FROM objects "
    "WHERE bucket=%s AND key>=%s AND (%s::text IS NULL OR key<%s) {start} ORDER BY key LIMIT %s"
)


# One ListObjects page with a delimiter in one statement: a recursive skip scan. Each step
# seeks the first key after the previous row, or, when that row falls in a common prefix,
# past its whole group: the group's upper bound is the group without its last character
# (the delimiter's last) followed by that character's successor, %(succ)s. A key's successor
# is the key followed by chr(1): keys never hold NUL (the S3 front refuses it). ``cut`` is
# where the delimiter starts after the prefix (0: none, the key is listed on its own).
_WALK_COLUMNS = (
    "key, size, etag, last_modified, checksum_algorithm, checksum_type, "
    "strpos(substr(key, %(plen)s + 1), %(delim)s) AS cut"
)
_LIST_WALK = (
    "WITH RECURSIVE walk AS ("
    f" (SELECT 1 AS n, {_WALK_COLUMNS} FROM objects"
    "  WHERE bucket=%(bucket)s AND key>=%(prefix)s"
    "  AND (%(upper)s::text IS NULL OR key<%(upper)s) {start} ORDER BY key LIMIT 1)"
    " UNION ALL"
    " (SELECT w.n + 1, o.* FROM walk w CROSS JOIN LATERAL ("
    f"  SELECT {_WALK_COLUMNS} FROM objects"
    "   WHERE bucket=%(bucket)s AND (%(upper)s::text IS NULL OR key<%(upper)s)"
    "   AND key >= (CASE WHEN w.cut = 0 THEN w.key || chr(1)"
    '    ELSE left(w.key, %(plen)s + w.cut + %(dlen)s - 2) || %(succ)s END) COLLATE "C"'
    "   ORDER BY key LIMIT 1) o"
    "  WHERE w.n < %(limit)s))"
    " SELECT key, size, etag, last_modified, checksum_algorithm, checksum_type"
    " FROM walk ORDER BY n"
)


_LAYOUT_COLUMNS = "version, nodes, applied_at, applied_by, diff, blast"


def _layout_record(row: tuple) -> LayoutRecord:
    return LayoutRecord(row[0], nodes_from_text(row[1]), row[2], row[3], row[4], row[5])


class _Phase:
    """Where a call is: before COMMIT was sent ("body") or after ("commit"), and whether
    its deadline cut the connection."""

    __slots__ = ("at", "expired")

    def __init__(self) -> None:
        self.at = "body"
        self.expired = False


def _cut(conn: Conn, phase: _Phase) -> None:
    """The deadline passed: shut the connection's socket down, so that whatever psycopg is
    waiting for fails now (the connection is broken and the pool discards it)."""
    phase.expired = True
    try:
        fd = conn.pgconn.socket
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except (OSError, psycopg.Error):
        pass


class _Stale(Exception):
    """A pooled connection was dead before the transaction reached COMMIT: retry once."""


class _Unresolved(Exception):
    """A write's COMMIT was sent and its answer lost: :meth:`PostgresIndex._resolve` finds
    out from ``token`` whether it committed (``result`` is then the write's result)."""

    def __init__(
        self,
        token: uuid.UUID,
        result: Any,
        reason: str,
        retry: bool = False,
        window: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.token = token
        self.result = result
        self.cause = OutcomeUnknown(reason)
        # How long to look for the outcome (None: the engine's resolve window).
        self.window = window
        # A one-statement write whose connection broke (not its deadline): once its token is
        # voided it can never commit, so it may be sent again on a fresh connection.
        self.retry = retry


# Commit tokens (schema step 8): every request write commits a random token with its rows.
_INSERT_TOKEN = "INSERT INTO commit_tokens (token) VALUES (%s)"
_IN_ERROR = psycopg.pq.TransactionStatus.INERROR
_VOID_TOKEN = (
    "INSERT INTO commit_tokens (token, voided) VALUES (%s, true) ON CONFLICT (token) DO NOTHING"
)
_READ_TOKEN = "SELECT voided FROM commit_tokens WHERE token = %s"
_PRUNE_TOKENS = "DELETE FROM commit_tokens WHERE at < now() - make_interval(secs => %s)"
# How long a request waits to learn whether its lost COMMIT committed: a Patroni failover
# after a PostgreSQL crash takes a few seconds (docs/cluster.md).
RESOLVE_WINDOW = 15.0
TOKEN_TTL = 600.0  # seconds a token is kept, far beyond any resolve window

# One-statement writes (schema step 9): a PUT or DELETE of a key in a bucket that is neither
# versioned nor notifying is one function call, its own transaction (autocommit), its commit
# token inserted by the function with the write. 'slow': nothing done, take the general path.
_PUT_CURRENT = (
    "SELECT holdfast_put_current(%s::uuid, %s::text, %s::boolean, %s::text, %s::float8, "
    "%s::text, %s::text[], %s::text, %s::text, %s::bigint, %s::text, %s::float8, %s::text, "
    "%s::text, %s::text, %s::text, %s::text, %s::text, %s::integer, %s::text, %s::text, "
    "%s::bytea, %s::text, %s::bigint, %s::smallint, %s::text)"
)
_DELETE_CURRENT = (
    "SELECT holdfast_delete_current(%s::uuid, %s::text, %s::text, %s::float8, %s::text)"
)
_PUT_OUTCOMES: dict[str, Callable[[str], Exception]] = {
    "nobucket": NotFound,
    "forbidden": Forbidden,
    "exists": lambda _: ConditionFailed(missing=False),
    "mismatch": lambda _: ConditionFailed(missing=False),
    "missing": lambda _: ConditionFailed(missing=True),
}
PRUNE_EVERY = 1000  # writes of one engine instance between two prunings


def public_location(dsn: str) -> str:
    """The DSN without its password, for logs and the status page."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "(unparsable DSN)"
    params.pop("password", None)
    keep = ("host", "hostaddr", "port", "dbname", "user", "target_session_attrs")
    return " ".join(f"{k}={params[k]}" for k in keep if params.get(k))


def check_dsn(dsn: str) -> dict:
    """The DSN's parameters; a one-line ValueError naming the problem when it cannot be
    parsed (before any connection is tried)."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "invalid"
        raise ValueError(
            f"bad index DSN ({first}); expected e.g. postgresql://user@host:5432/holdfast "
            "or 'host=a,b port=5432,5432 dbname=holdfast target_session_attrs=read-write'"
        ) from None
    ports = [p.strip() for p in str(params.get("port") or "").split(",") if p.strip()]
    bad = [p for p in ports if not (p.isdigit() and 0 < int(p) < 65536)]
    if bad:
        raise ValueError(f"bad index DSN: port {bad[0]!r} is not a port number")
    hosts = str(params.get("host") or params.get("hostaddr") or "").split(",")
    if len(ports) > 1 and len(ports) != len(hosts):
        raise ValueError(
            f"bad index DSN: {len(hosts)} hosts but {len(ports)} ports (give one port, "
            "or one per host)"
        )
    return params


class PostgresIndex(Index):
    engine = "postgres"

    def __init__(
        self,
        dsn: str,
        gc_grace_seconds: float = 30.0,
        timeout: float = DEFAULT_TIMEOUT,
        pool_size: int = 8,
        resolve_window: float = RESOLVE_WINDOW,
    ) -> None:
        params = check_dsn(dsn)
        self.resolve_window = resolve_window
        self._writes = 0
        self.dsn = dsn
        self.gc_grace = gc_grace_seconds
        self.timeout = timeout
        self.pool_size = pool_size
        extra = {k: v for k, v in _SOCKET_OPTIONS.items() if k not in params}
        if "connect_timeout" not in params:
            # libpq's connect_timeout is per host and at least 2 s; our deadline bounds the
            # total anyway.
            extra["connect_timeout"] = str(max(2, int(timeout)))
        if "application_name" not in params:
            extra["application_name"] = "holdfast"
        self._conninfo = make_conninfo(dsn, **extra)
        self._pool: psycopg_pool.AsyncConnectionPool | None = None
        self._leases: set[AdvisoryLease] = set()
        # Set when a call could not get a working connection, cleared by the next that did:
        # while the engine is known to be down, calls wait for a pooled connection only
        # briefly, so a request that makes several index calls still fails within the
        # deadline (the pool keeps reconnecting in the background meanwhile).
        self._down_since: float | None = None
        # Until then (monotonic), one-statement writes go the transaction way instead.
        self._doubt_until = 0.0
        self._version = 0

    @classmethod
    def from_config(cls, config: Config, role: str = "worker") -> PostgresIndex:
        """Serving workers get the configured pool; a tool (CLI command) needs two
        connections at most, and a longer deadline (it may run whole-index queries)."""
        worker = role == "worker"
        return cls(
            config.index_dsn or "",
            gc_grace_seconds=config.gc_grace_seconds,
            timeout=config.index_timeout_seconds
            if worker
            else max(10.0, config.index_timeout_seconds),
            pool_size=config.index_pool_size if worker else 2,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def describe(self) -> dict:
        return {"engine": self.engine, "location": public_location(self.dsn)}

    async def start(self) -> None:
        if self._pool is not None:
            return
        try:
            async with asyncio.timeout(max(self.timeout, 10.0)):
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
                try:
                    self._version = await migrate(conn)
                finally:
                    await conn.close()
        except (psycopg.OperationalError, TimeoutError) as e:
            raise IndexUnavailable(
                f"cannot reach the index at {public_location(self.dsn)}: {_first_line(e)}; "
                "check --index-dsn and that PostgreSQL is running"
            ) from None
        self._pool = psycopg_pool.AsyncConnectionPool(
            self._conninfo,
            min_size=1,
            max_size=self.pool_size,
            kwargs={"autocommit": True},
            timeout=self.timeout * 0.75,
            # psycopg_pool backs off 1, 2, 4, ... s between connection attempts (capped at
            # this timeout), gives up at it, and starts again from 1 s on the next request.
            # 2 s keeps attempts at most about a second apart while requests come, so a node
            # finds a promoted standby (or a restarted engine) within about a second, however
            # long the engine was gone; each attempt is one cheap connect per host.
            reconnect_timeout=RECONNECT_TIMEOUT,
            open=False,
            name="holdfast-index",
        )
        await self._pool.open(wait=False)

    async def close(self) -> None:
        for lease in list(self._leases):
            await lease.release()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(timeout=2.0), 5.0)
            except (TimeoutError, psycopg.Error):
                pass

    async def schema_version(self) -> int:
        row = await self._one("SELECT value FROM meta WHERE name='schema_version'")
        return int(row[0]) if row else 0

    # -- running calls -----------------------------------------------------------------------

    async def _call(self, fn: Callable[[Conn], Awaitable[T]], write: bool) -> T:
        """Run ``fn`` on a pooled connection (in a transaction for a write) within the
        deadline, mapping every engine failure to an index error."""
        if self._pool is None:
            raise IndexUnavailable("the index is not started")
        deadline = asyncio.get_running_loop().time() + self.timeout
        for attempt in (1, 2):
            try:
                result = await self._session(fn, write, deadline)
            except _Unresolved as lost:
                return await self._resolve(lost)
            except _Stale:
                # Connections are dropped together (the server restarted or went away):
                # the retry waits only briefly for a fresh one.
                self._down_since = self._down_since or time.monotonic()
                if attempt == 2:
                    raise IndexUnavailable("index connection lost") from None
                continue
            if write:
                self._writes += 1
                if self._writes % PRUNE_EVERY == 0:
                    await self._prune_tokens()
            return result
        raise AssertionError("unreachable")

    async def _resolve(self, lost: _Unresolved) -> Any:
        """The outcome of a write whose COMMIT was sent but never answered (the server died
        or was cut off; a failover under way), learnt from its commit token: up to
        ``resolve_window`` seconds, on whichever server now accepts writes, insert the
        token as *voided* unless it is there, then read it back.

        * Found as the write left it: the write committed; its result is returned.
        * Found voided: it did not commit, and now never can (the voided row takes its
          token, and an insert that was still waiting on the original transaction waited
          for it to end first). Nothing happened: IndexUnavailable, a 503.
        * No answer within the window: OutcomeUnknown, a 500, as before.

        With synchronous replication (Patroni's ``synchronous_mode``) a promoted standby has
        every commit the old primary acknowledged, so the answer holds across a failover."""
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.resolve_window if lost.window is None else lost.window)
        delay = 0.1
        while (remaining := deadline - loop.time()) > 0:
            phase = _Phase()
            try:
                async with self._pool.connection(timeout=min(remaining, 2.0)) as conn:
                    timer = loop.call_at(deadline, _cut, conn, phase)
                    try:
                        await conn.execute(_VOID_TOKEN, (lost.token,))
                        cur = await conn.execute(_READ_TOKEN, (lost.token,))
                        row = await cur.fetchone()
                    finally:
                        timer.cancel()
            except (psycopg.Error, psycopg_pool.PoolTimeout):
                row = None
            if row is not None:
                if row[0]:
                    log.warning("a write whose COMMIT was lost did not commit: %s", lost.cause)
                    raise IndexUnavailable(f"the write did not commit ({lost.cause})")
                log.warning("a write whose COMMIT was lost did commit: %s", lost.cause)
                return lost.result
            await asyncio.sleep(max(0.0, min(delay, deadline - loop.time())))
            delay = min(delay * 2, 1.0)
        raise lost.cause

    async def _prune_tokens(self) -> None:
        """Commit tokens are needed for ``resolve_window`` seconds; each node clears the old
        ones every PRUNE_EVERY writes (best effort: the next round catches up)."""

        async def fn(conn: Conn):
            await conn.execute(_PRUNE_TOKENS, (TOKEN_TTL,))

        try:
            await self._call(fn, write=False)
        except IndexError_ as e:
            log.info("commit tokens not pruned this time: %s", e)

    async def _session(self, fn: Callable[[Conn], Awaitable[T]], write: bool, deadline: float) -> T:
        """One attempt. The deadline is enforced by shutting the connection's socket down
        (:func:`_cut`), not by cancelling this coroutine: psycopg answers a cancellation by
        asking the server to cancel the query and waiting for it, seconds more when the
        server is frozen or cut off. A shut socket fails the pending wait at once, and the
        pool then discards the connection."""
        phase = _Phase()
        token = uuid.uuid4()
        result: Any = None
        async with self._connection(deadline, phase) as conn:
            try:
                if not write:
                    return await fn(conn)
                async with conn.transaction():
                    result = await fn(conn)
                    # Committed with the write, so that a lost COMMIT can be resolved;
                    # not in a transaction that ``fn`` let fail (its COMMIT rolls back).
                    if conn.info.transaction_status != _IN_ERROR:
                        await conn.execute(_INSERT_TOKEN, (token,))
                    phase.at = "commit"
                return result
            except psycopg.Error as e:
                if phase.expired:
                    if phase.at == "commit":
                        raise _Unresolved(
                            token, result, "no answer to COMMIT within the deadline"
                        ) from e
                    raise IndexUnavailable(
                        f"index did not answer within {self.timeout:g} s"
                    ) from None
                error = _engine_error(e, conn, phase)
                if isinstance(error, OutcomeUnknown):
                    raise _Unresolved(token, result, str(error)) from e
                raise error from e

    async def _write_one(
        self, sql: str, args: Callable[[uuid.UUID], Sequence[Any]], committed: Any
    ) -> Any:
        """A write that is one statement (a function of schema step 9 that inserts the
        commit token ``args`` is given with the write): sent in autocommit mode, so it is its
        own transaction and costs one round trip. The statement is its COMMIT: an answer
        lost with its connection is resolved by the token (:meth:`_resolve`), the write's
        answer then being ``committed``; one not given within the deadline is resolved
        within one more deadline, else OutcomeUnknown. A connection that broke under it (a pooled connection dead since
        the engine restarted) is retried once, on a fresh one, after its token was voided."""
        if self._pool is None:
            raise IndexUnavailable("the index is not started")
        if time.monotonic() < self._doubt_until:
            # A call just failed for want of a working index (a partition, a frozen or
            # restarting server): the pooled connections may all be dead. A one-statement
            # write that hangs on one cannot tell whether it committed (a 500), while a
            # transaction that hangs before its COMMIT certainly did not (a 503, and the
            # SDK retries): "slow" sends the caller down the transaction path.
            return "slow"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        for attempt in (1, 2):
            token = uuid.uuid4()
            try:
                result = await self._statement(sql, args(token), token, committed, deadline)
            except _Unresolved as lost:
                try:
                    return await self._resolve(lost)
                except IndexUnavailable:  # voided: it never committed, and never will
                    if attempt == 2 or not lost.retry:
                        raise
                    self._down_since = self._down_since or time.monotonic()
                    continue
            self._writes += 1
            if self._writes % PRUNE_EVERY == 0:
                await self._prune_tokens()
            return result
        raise AssertionError("unreachable")

    async def _statement(
        self, sql: str, args: Sequence[Any], token: uuid.UUID, committed: Any, deadline: float
    ) -> Any:
        """One attempt of :meth:`_write_one`: the first column of its one row. A
        ForeignKeyViolation is raised as it is, for the caller to name."""
        phase = _Phase()
        phase.at = "commit"
        async with self._connection(deadline, phase) as conn:
            try:
                cur = await conn.execute(sql, args)
                row = await cur.fetchone()
                return row[0]
            except pg_errors.ForeignKeyViolation:
                raise
            except psycopg.Error as e:
                if phase.expired:
                    # A slow server (a restart, a loaded machine) still gets its answer
                    # learnt from the token, but a frozen or cut-off one must not hold
                    # the request for the whole resolve window: one more deadline, then
                    # 500 (nothing discarded; the sweeper removes the blob if the write
                    # never committed).
                    raise _Unresolved(
                        token,
                        committed,
                        f"index did not answer the write within {self.timeout:g} s",
                        window=self.timeout,
                    ) from e
                error = _engine_error(e, conn, phase)
                if isinstance(error, OutcomeUnknown):
                    raise _Unresolved(token, committed, str(error), retry=True) from e
                raise error from e

    @contextlib.asynccontextmanager
    async def _connection(self, deadline: float, phase: _Phase) -> AsyncIterator[Conn]:
        """A pooled connection for one attempt that must end by ``deadline`` (loop time):
        waited for briefly while the index is known down, cut at the deadline (a frozen or
        cut-off server fails the pending wait at once), and a failure to get one is
        IndexUnavailable, which marks the index down."""
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        wait = DOWN_WAIT if self._down_since is not None else self.timeout * 0.75
        wait = max(0.05, min(wait, deadline - loop.time()))
        try:
            async with self._pool.connection(timeout=wait) as conn:
                self._down_since = None
                timer = loop.call_at(deadline, _cut, conn, phase)
                try:
                    yield conn
                except (IndexUnavailable, _Unresolved, _Stale):
                    self._doubt_until = time.monotonic() + DOUBT_SECONDS
                    raise
                finally:
                    timer.cancel()
        except psycopg_pool.PoolTimeout:
            self._down_since = self._down_since or time.monotonic()
            self._doubt_until = time.monotonic() + DOUBT_SECONDS
            raise IndexUnavailable(
                f"no connection to the index at {public_location(self.dsn)} within {wait:g} s"
            ) from None
        except psycopg.OperationalError as e:  # connecting failed
            self._down_since = self._down_since or time.monotonic()
            self._doubt_until = time.monotonic() + DOUBT_SECONDS
            raise IndexUnavailable(_first_line(e)) from None

    async def _read(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        return await self._call(fn, write=False)

    async def _write(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        return await self._call(fn, write=True)

    async def _one(self, sql: str, args: Sequence[Any] = ()) -> tuple | None:
        async def fn(conn: Conn):
            cur = await conn.execute(sql, args)
            return await cur.fetchone()

        return await self._read(fn)

    async def _all(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        async def fn(conn: Conn):
            cur = await conn.execute(sql, args)
            return await cur.fetchall()

        return await self._read(fn)

    # -- users -------------------------------------------------------------------------------

    async def add_user(self, user: UserRecord) -> None:
        async def fn(conn: Conn):
            try:
                await conn.execute(
                    "INSERT INTO users VALUES (%s,%s,%s,%s,%s)",
                    (user.access_key, user.name, user.secret_key, user.disabled, user.created),
                )
            except pg_errors.UniqueViolation as e:
                raise Conflict(f"user {user.name!r} exists") from e

        await self._write(fn)

    async def get_user_by_key(self, access_key: str) -> UserRecord | None:
        row = await self._one(
            "SELECT name, access_key, secret_key, disabled, created FROM users WHERE access_key=%s",
            (access_key,),
        )
        return UserRecord(*row) if row else None

    async def list_users(self) -> list[UserRecord]:
        rows = await self._all(
            "SELECT name, access_key, secret_key, disabled, created FROM users ORDER BY name"
        )
        return [UserRecord(*r) for r in rows]

    async def replace_user_secret(self, access_key: str, old: str, new: str) -> bool:
        async def fn(conn: Conn):
            cur = await conn.execute(
                "UPDATE users SET secret_key=%s WHERE access_key=%s AND secret_key=%s",
                (new, access_key, old),
            )
            return cur.rowcount == 1

        return await self._write(fn)

    async def purge_history(self) -> None:
        """VACUUM FULL rewrites the users table into new files, so the old secret texts are
        gone from the table's storage. PostgreSQL's WAL (and any archive of it, or a
        replica's) keeps them until recycled: that part is the database operator's."""

        async def fn(conn: Conn):
            await conn.execute("VACUUM FULL users")

        await self._call_autocommit(fn)

    async def _call_autocommit(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """A statement that cannot run in a transaction (VACUUM), without the deadline."""
        assert self._pool is not None
        try:
            async with self._pool.connection(timeout=30.0) as conn:
                try:
                    return await fn(conn)
                except psycopg.Error as e:
                    raise _final(_engine_error(e, conn, _Phase())) from e
        except psycopg_pool.PoolTimeout:
            raise IndexUnavailable("no connection to the index") from None

    async def set_user_disabled(self, name: str, disabled: bool) -> bool:
        async def fn(conn: Conn):
            cur = await conn.execute("UPDATE users SET disabled=%s WHERE name=%s", (disabled, name))
            return cur.rowcount == 1

        return await self._write(fn)

    async def delete_user(self, name: str) -> bool:
        async def fn(conn: Conn):
            # The user's row is locked first, so a bucket created for them meanwhile on
            # another node is seen by the check below or waits for this delete.
            cur = await conn.execute("SELECT 1 FROM users WHERE name=%s FOR UPDATE", (name,))
            if await cur.fetchone() is None:
                return False
            cur = await conn.execute(
                "SELECT name FROM buckets WHERE owner=%s ORDER BY name", (name,)
            )
            owned = [r[0] for r in await cur.fetchall()]
            if owned:
                raise NotEmpty(", ".join(owned))
            cur = await conn.execute("DELETE FROM users WHERE name=%s", (name,))
            return cur.rowcount == 1

        return await self._write(fn)

    # -- buckets -----------------------------------------------------------------------------

    async def create_bucket(self, bucket: BucketRecord) -> None:
        async def fn(conn: Conn):
            try:
                await conn.execute(
                    "INSERT INTO buckets VALUES (%s,%s,%s,%s)",
                    (bucket.name, bucket.owner, bucket.created, bucket.region),
                )
            except pg_errors.UniqueViolation as e:
                raise Conflict(bucket.name) from e

        await self._write(fn)

    async def get_bucket(self, name: str) -> BucketRecord | None:
        row = await self._one(
            "SELECT name, owner, created, region FROM buckets WHERE name=%s", (name,)
        )
        return BucketRecord(*row) if row else None

    async def list_buckets(self, owner: str) -> list[BucketRecord]:
        rows = await self._all(
            "SELECT name, owner, created, region FROM buckets WHERE owner=%s ORDER BY name",
            (owner,),
        )
        return [BucketRecord(*r) for r in rows]

    async def bucket_usage(self, owner: str | None = None) -> list[BucketUsage]:
        where, args = ("WHERE b.owner=%s", (owner,)) if owner is not None else ("", ())
        rows = await self._all(
            "SELECT b.name, b.owner, b.created, b.region, coalesce(sum(t.objects), 0), "
            "coalesce(sum(t.bytes), 0), coalesce(sum(t.stored_bytes), 0), "
            "coalesce(sum(t.not_ok), 0) FROM buckets b LEFT JOIN bucket_totals t "
            f"ON t.bucket = b.name {where} GROUP BY b.name, b.owner, b.created, b.region "
            "ORDER BY b.name",
            args,
        )
        return [
            BucketUsage(BucketRecord(*r[:4]), int(r[4]), int(r[5]), int(r[6]), int(r[7]))
            for r in rows
        ]

    async def damaged_keys(self, bucket: str, first: str, last: str) -> set[str]:
        rows = await self._all(
            "SELECT key FROM objects WHERE state<>'ok' AND bucket=%s AND key>=%s AND key<=%s",
            (bucket, first, last),
        )
        return {r[0] for r in rows}

    async def delete_bucket(self, name: str) -> None:
        async def fn(conn: Conn):
            # Locking the bucket row makes every PUT into it (whose foreign key check takes
            # a key-share lock on it) either finish first, and be seen here, or wait and
            # then fail with NotFound.
            cur = await conn.execute("SELECT 1 FROM buckets WHERE name=%s FOR UPDATE", (name,))
            if await cur.fetchone() is None:
                raise NotFound(name)
            cur = await conn.execute(
                "SELECT 1 FROM objects WHERE bucket=%s UNION ALL "
                "SELECT 1 FROM versions WHERE bucket=%s LIMIT 1",
                (name, name),
            )
            if await cur.fetchone() is not None:
                raise NotEmpty(name)
            cur = await conn.execute(
                "SELECT upload_id FROM uploads WHERE bucket=%s FOR UPDATE", (name,)
            )
            for (upload_id,) in await cur.fetchall():
                await self._drop_upload(conn, upload_id, keep=())
            await conn.execute("DELETE FROM bucket_totals WHERE bucket=%s", (name,))
            await conn.execute("DELETE FROM bucket_configs WHERE bucket=%s", (name,))
            await conn.execute("DELETE FROM buckets WHERE name=%s", (name,))

        await self._write(fn)

    # -- objects -----------------------------------------------------------------------------

    async def get_object(self, bucket: str, key: str) -> ObjectRecord | None:
        row = await self._one(
            f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE bucket=%s AND key=%s", (bucket, key)
        )
        return None if row is None else _object_from_row(row)

    async def get_object_in(self, bucket: str, key: str) -> tuple[str | None, ObjectRecord | None]:
        row = await self._one(
            f"SELECT b.owner, {_JOINED_OBJECT_COLUMNS} FROM buckets b LEFT JOIN objects o "
            "ON o.bucket = b.name AND o.key = %s WHERE b.name = %s",
            (key, bucket),
        )
        if row is None:
            return None, None
        return row[0], (None if row[1] is None else _object_from_row(row[1:]))

    async def put_object(
        self,
        obj: ObjectRecord,
        if_absent: bool = False,
        if_etag: str | None = None,
        owner: str | None = None,
    ) -> None:
        # Deferred copies need repair rows in the commit: the general transaction.
        if not any(s.deferred for s in obj.segments):
            live = [s.blob_id for s in obj.segments if s.stores]
            head = (owner, if_absent, if_etag, self.gc_grace, _NOTIFY_CONFIG, live)
            values = _object_values(obj)
            try:
                outcome = await self._write_one(
                    _PUT_CURRENT, lambda token: (token, *head, *values), "ok"
                )
            except pg_errors.ForeignKeyViolation:
                raise NotFound(obj.bucket) from None
            if outcome == "ok":
                return None
            if outcome != "slow":
                raise _PUT_OUTCOMES[outcome](obj.bucket)

        async def fn(conn: Conn):
            if owner is not None:
                await _check_bucket_owner(conn, obj.bucket, owner)
            return await self._put_object_op(conn, obj, if_absent, if_etag)

        return await self._write(fn)

    async def _put_object_op(
        self,
        conn: Conn,
        obj: ObjectRecord,
        if_absent: bool,
        if_etag: str | None,
        event: str | None = None,
    ) -> VersionRef | None:
        # The bucket's versioning and notification documents in one round trip: the
        # notification outbox rows go into this same transaction (holdfast/index/notify.py).
        state, notify_config = await outbox.bucket_state(conn, obj.bucket)
        ref = None
        if state is not None:
            ref = await self._put_version(conn, obj, if_absent, if_etag, state)
        else:
            await self._replace_object(conn, obj, if_absent, if_etag)
        if notify_config is not None:
            await outbox.insert_created(conn, notify_config, obj, event)
        return ref

    async def _put_version(
        self, conn: Conn, obj: ObjectRecord, if_absent: bool, if_etag: str | None, state: str
    ) -> VersionRef:
        await _lock_key(conn, obj.bucket, obj.key)
        cur = await conn.execute(
            "SELECT etag FROM objects WHERE bucket=%s AND key=%s", (obj.bucket, obj.key)
        )
        row = await cur.fetchone()
        if if_absent and row is not None:
            raise ConditionFailed(missing=False)
        if if_etag is not None and (row is None or row[0].strip('"') != if_etag):
            raise ConditionFailed(missing=row is None)
        ref = await self._make_room(conn, obj.bucket, obj.key, state, marker=False)
        obj.vseq, obj.vnull = ref.seq, ref.null
        try:
            await conn.execute(_INSERT_OBJECT, _object_values(obj))
        except pg_errors.ForeignKeyViolation:
            raise NotFound(obj.bucket) from None
        await self._mark_live(conn, obj.segments)
        return ref

    async def _make_room(
        self, conn: Conn, bucket: str, key: str, state: str, marker: bool
    ) -> VersionRef:
        """Keep the current version as a noncurrent one (a suspended bucket's "null"
        version is replaced instead) and number the new version: under the key's lock, so
        numbers follow the commit order of the key's writes."""
        if state != "Enabled":
            for table in ("objects", "versions"):
                cur = await conn.execute(
                    f"DELETE FROM {table} WHERE bucket=%s AND key=%s AND vnull=1 "
                    "RETURNING segments",
                    (bucket, key),
                )
                for (text,) in await cur.fetchall():
                    await self._queue_gc(conn, segments_from_text(text))
        await conn.execute(
            f"INSERT INTO versions ({_OBJECT_COLUMNS}) SELECT {_OBJECT_COLUMNS} FROM objects "
            "WHERE bucket=%s AND key=%s",
            (bucket, key),
        )
        await conn.execute("DELETE FROM objects WHERE bucket=%s AND key=%s", (bucket, key))
        cur = await conn.execute("SELECT nextval('version_seq')")
        (seq,) = await cur.fetchone()
        return VersionRef(seq, state != "Enabled", marker)

    async def _delete_current(self, conn: Conn, bucket: str, key: str) -> bool | VersionRef:
        state = await _versioning(conn, bucket)
        if state is None:
            return await self._retire_object(conn, bucket, key)
        await _lock_key(conn, bucket, key)
        ref = await self._make_room(conn, bucket, key, state, marker=True)
        await conn.execute(
            "INSERT INTO versions (bucket, key, vseq, vnull, marker, size, etag, last_modified, "
            "content_type, headers, meta, segments) "
            "VALUES (%s,%s,%s,%s,1,0,'',%s,'','{}','{}','[]')",
            (bucket, key, ref.seq, int(ref.null), time.time()),
        )
        return ref

    async def get_version(self, bucket: str, key: str, seq: int | None) -> ObjectRecord | None:
        cond, args = _version_cond(bucket, key, seq)
        row = await self._one(
            f"SELECT {_OBJECT_COLUMNS}, 0 FROM objects WHERE {cond} UNION ALL "
            f"SELECT {_OBJECT_COLUMNS}, marker FROM versions WHERE {cond}",
            args + args,
        )
        return None if row is None else _object_from_row(row)

    async def current_marker(self, bucket: str, key: str) -> ObjectRecord | None:
        row = await self._one(
            f"SELECT {_OBJECT_COLUMNS}, marker FROM versions WHERE bucket=%s AND key=%s "
            "AND NOT EXISTS (SELECT 1 FROM objects WHERE bucket=%s AND key=%s) "
            "ORDER BY vseq DESC LIMIT 1",
            (bucket, key, bucket, key),
        )
        return None if row is None or not row[-1] else _object_from_row(row)

    async def delete_version(
        self,
        bucket: str,
        key: str,
        seq: int | None,
        check: Callable[[ObjectRecord], None] | None = None,
    ) -> ObjectRecord | None:
        async def fn(conn: Conn):
            await _lock_key(conn, bucket, key)
            cond, args = _version_cond(bucket, key, seq)
            table = "objects"
            cur = await conn.execute(f"SELECT {_OBJECT_COLUMNS}, 0 FROM objects WHERE {cond}", args)
            row = await cur.fetchone()
            if row is None:
                table = "versions"
                cur = await conn.execute(
                    f"SELECT {_OBJECT_COLUMNS}, marker FROM versions WHERE {cond}", args
                )
                row = await cur.fetchone()
            if row is None:
                return None
            found = _object_from_row(row)
            if check is not None:
                check(found)
            await self._queue_gc(conn, found.segments)
            await conn.execute(f"DELETE FROM {table} WHERE {cond}", args)
            await outbox.removed(conn, bucket, [key], [found])
            cur = await conn.execute(
                "SELECT 1 FROM objects WHERE bucket=%s AND key=%s", (bucket, key)
            )
            if await cur.fetchone() is None:  # the newest remaining version becomes current
                cur = await conn.execute(
                    "SELECT vseq, marker FROM versions WHERE bucket=%s AND key=%s "
                    "ORDER BY vseq DESC LIMIT 1",
                    (bucket, key),
                )
                newest = await cur.fetchone()
                if newest is not None and not newest[1]:
                    await conn.execute(
                        f"INSERT INTO objects ({_OBJECT_COLUMNS}) SELECT {_OBJECT_COLUMNS} "
                        "FROM versions WHERE bucket=%s AND key=%s AND vseq=%s",
                        (bucket, key, newest[0]),
                    )
                    await conn.execute(
                        "DELETE FROM versions WHERE bucket=%s AND key=%s AND vseq=%s",
                        (bucket, key, newest[0]),
                    )
            return found

        return await self._write(fn)

    async def list_versions(
        self, bucket: str, prefix: str, after: tuple[str, int] | None, limit: int
    ) -> list[VersionEntry]:
        clauses = ["bucket=%s"]
        args: list[Any] = [bucket]
        if prefix:
            clauses.append("key>=%s")
            args.append(prefix)
            upper = prefix_upper_bound(prefix)
            if upper is not None:
                clauses.append("key<%s")
                args.append(upper)
        if after is not None:
            clauses.append("(key>%s OR (key=%s AND vseq<%s))")
            args += [after[0], after[0], after[1]]
        where = " AND ".join(clauses)
        latest_marker = (
            "(marker=1 AND NOT EXISTS (SELECT 1 FROM objects o WHERE o.bucket=v.bucket AND "
            "o.key=v.key) AND vseq=(SELECT max(vseq) FROM versions w WHERE w.bucket=v.bucket "
            "AND w.key=v.key))"
        )
        rows = await self._all(
            f"SELECT key, vseq, vnull, 0, size, etag, last_modified, true FROM objects "
            f"WHERE {where} UNION ALL SELECT key, vseq, vnull, marker, size, etag, "
            f"last_modified, {latest_marker} FROM versions v WHERE {where} "
            "ORDER BY 1, 2 DESC LIMIT %s",
            [*args, *args, limit],
        )
        return [
            VersionEntry(r[0], r[1], bool(r[2]), bool(r[3]), r[4], r[5], r[6], bool(r[7]))
            for r in rows
        ]

    async def _replace_object(
        self, conn: Conn, obj: ObjectRecord, if_absent: bool, if_etag: str | None
    ) -> None:
        """Replace or insert the row. The current row, if any, is locked first, so two
        nodes writing one key commit one after the other and each retires exactly the
        version it replaced; with no current row, an insert that meets a concurrent one
        (ON CONFLICT) looks again, now behind the winner's lock."""
        while True:
            cur = await conn.execute(
                "SELECT etag, segments FROM objects WHERE bucket=%s AND key=%s FOR UPDATE",
                (obj.bucket, obj.key),
            )
            row = await cur.fetchone()
            if if_absent and row is not None:
                raise ConditionFailed(missing=False)
            if if_etag is not None and (row is None or row[0].strip('"') != if_etag):
                raise ConditionFailed(missing=row is None)
            if row is not None:
                await self._queue_gc(conn, segments_from_text(row[1]))
                await conn.execute(_UPDATE_OBJECT, _object_values(obj)[2:] + (obj.bucket, obj.key))
                break
            try:
                cur = await conn.execute(
                    _INSERT_OBJECT + " ON CONFLICT (bucket, key) DO NOTHING", _object_values(obj)
                )
            except pg_errors.ForeignKeyViolation:
                raise NotFound(obj.bucket) from None
            if cur.rowcount == 1:
                break
            if if_absent:  # another writer created the key meanwhile
                raise ConditionFailed(missing=False)
        await self._mark_live(conn, obj.segments)

    async def _mark_live(self, conn: Conn, segments: list[Segment]) -> None:
        ids = [s.blob_id for s in segments if s.stores]
        if ids:
            await conn.execute(
                "INSERT INTO live_blobs SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING", (ids,)
            )
        if any(s.deferred for s in segments):
            await _queue_repair_rows(conn, _deferred_copies(segments))

    async def _queue_gc(self, conn: Conn, segments: Iterable[Segment]) -> None:
        rows = [(s.blob_id, ",".join(s.stores), self.gc_grace) for s in segments if s.stores]
        if rows:
            await _queue_for_gc(conn, rows)

    async def _retire_object(self, conn: Conn, bucket: str, key: str) -> bool:
        cur = await conn.execute(
            "DELETE FROM objects WHERE bucket=%s AND key=%s RETURNING segments", (bucket, key)
        )
        row = await cur.fetchone()
        if row is None:
            return False
        await self._queue_gc(conn, segments_from_text(row[0]))
        return True

    async def delete_object(self, bucket: str, key: str) -> bool | VersionRef:
        outcome = await self._write_one(
            _DELETE_CURRENT,
            lambda token: (token, bucket, key, self.gc_grace, _NOTIFY_CONFIG),
            "deleted",
        )
        if outcome != "slow":
            return outcome == "deleted"

        async def fn(conn: Conn):
            result = await self._delete_current(conn, bucket, key)
            await outbox.removed(conn, bucket, [key], [result])
            return result

        return await self._write(fn)

    async def delete_objects(self, bucket: str, keys: list[str]) -> list[bool | VersionRef]:
        async def fn(conn: Conn):
            if await _versioning(conn, bucket) is not None:
                results = [await self._delete_current(conn, bucket, k) for k in keys]
                await outbox.removed(conn, bucket, keys, results)
                return results
            cur = await conn.execute(
                "DELETE FROM objects WHERE bucket=%s AND key = ANY(%s::text[]) "
                "RETURNING key, segments",
                (bucket, list(keys)),
            )
            rows = await cur.fetchall()
            segments = [s for (_, text) in rows for s in segments_from_text(text)]
            await self._queue_gc(conn, segments)
            gone = {k for k, _ in rows}
            removed = sorted(gone)
            await outbox.removed(conn, bucket, removed, [True] * len(removed))
            return [True] * len(keys)  # no caller tells absent keys apart in a batch

        return await self._write(fn)

    async def mark_object_state(self, bucket: str, key: str, etag: str, state: str) -> None:
        async def fn(conn: Conn):
            await conn.execute(
                "UPDATE objects SET state=%s WHERE bucket=%s AND key=%s AND etag=%s",
                (state, bucket, key, etag),
            )

        await self._write(fn)

    async def set_version_lock(
        self,
        bucket: str,
        key: str,
        seq: int | None,
        change: Callable[[ObjectRecord], tuple[str | None, float | None, bool]],
    ) -> ObjectRecord | None:
        async def fn(conn: Conn):
            await _lock_key(conn, bucket, key)
            cond, args = _version_cond(bucket, key, seq)
            for table, marker in (("objects", "0"), ("versions", "marker")):
                cur = await conn.execute(
                    f"SELECT {_OBJECT_COLUMNS}, {marker} FROM {table} WHERE {cond}", args
                )
                row = await cur.fetchone()
                if row is not None:
                    found = _object_from_row(row)
                    text = lock_to_text(*change(found))
                    await conn.execute(f"UPDATE {table} SET objlock=%s WHERE {cond}", [text, *args])
                    return found
            return None

        return await self._write(fn)

    async def add_copies(
        self, bucket: str, key: str, etag: str, extra: dict[str, list[str]]
    ) -> int:
        async def fn(conn: Conn) -> int:
            cur = await conn.execute(
                "SELECT segments FROM objects WHERE bucket=%s AND key=%s AND etag=%s FOR UPDATE",
                (bucket, key, etag),
            )
            row = await cur.fetchone()
            if row is None:
                return 0
            segments, tasks = with_new_copies(segments_from_text(row[0]), extra, f"{bucket}/{key}")
            if not tasks:
                return 0
            await conn.execute(
                "UPDATE objects SET segments=%s WHERE bucket=%s AND key=%s",
                (segments_to_text(segments), bucket, key),
            )
            await _queue_repair_rows(conn, tasks)
            return len(tasks)

        return await self._write(fn)

    async def set_object_headers(
        self,
        bucket: str,
        key: str,
        seq: int | None,
        change: Callable[[dict[str, str]], dict[str, str]],
        current: bool = False,
    ) -> ObjectRecord | None:
        async def fn(conn: Conn):
            await _lock_key(conn, bucket, key)
            if current:
                cond, args = "bucket=%s AND key=%s", [bucket, key]
                tables: tuple[tuple[str, str], ...] = (("objects", "0"),)
            else:
                cond, args = _version_cond(bucket, key, seq)
                tables = (("objects", "0"), ("versions", "marker"))
            for table, marker in tables:
                cur = await conn.execute(
                    f"SELECT {_OBJECT_COLUMNS}, {marker} FROM {table} WHERE {cond}", args
                )
                row = await cur.fetchone()
                if row is not None:
                    found = _object_from_row(row)
                    if found.delete_marker:
                        return None
                    text = _json(change(dict(found.headers)))
                    await conn.execute(f"UPDATE {table} SET headers=%s WHERE {cond}", [text, *args])
                    return found
            return None

        return await self._write(fn)

    async def set_version_tags(
        self,
        bucket: str,
        key: str,
        seq: int | None,
        tags: list[tuple[str, str]],
        check: Callable[[ObjectRecord], None],
    ) -> ObjectRecord | None:
        async def fn(conn: Conn):
            await _lock_key(conn, bucket, key)
            cond, args = _version_cond(bucket, key, seq)
            for table, marker in (("objects", "0"), ("versions", "marker")):
                cur = await conn.execute(
                    f"SELECT {_OBJECT_COLUMNS}, {marker} FROM {table} WHERE {cond}", args
                )
                row = await cur.fetchone()
                if row is not None:
                    found = _object_from_row(row)
                    check(found)
                    await conn.execute(
                        f"UPDATE {table} SET tags=%s WHERE {cond}", [tags_to_text(tags), *args]
                    )
                    return found
            return None

        return await self._write(fn)

    async def set_object_tags(self, bucket: str, key: str, tags: list[tuple[str, str]]) -> bool:
        async def fn(conn: Conn):
            cur = await conn.execute(
                "UPDATE objects SET tags=%s WHERE bucket=%s AND key=%s",
                (tags_to_text(tags), bucket, key),
            )
            return cur.rowcount > 0

        return await self._write(fn)

    async def move_copy(
        self, bucket: str, key: str, vseq: int | None, blob_id: str, old: str, new: str
    ) -> bool:
        table, where, args = (
            ("objects", "bucket=%s AND key=%s", (bucket, key))
            if vseq is None
            else ("versions", "bucket=%s AND key=%s AND vseq=%s", (bucket, key, vseq))
        )

        async def fn(conn: Conn):
            cur = await conn.execute(f"SELECT segments FROM {table} WHERE {where} FOR UPDATE", args)
            row = await cur.fetchone()
            text = move_copy_text(row[0], blob_id, old, new) if row else None
            if text is None:
                return False
            cur = await conn.execute(f"UPDATE {table} SET segments=%s WHERE {where}", (text, *args))
            return cur.rowcount > 0

        return await self._write(fn)

    async def set_state_if(self, bucket: str, key: str, etag: str, old: str, new: str) -> bool:
        async def fn(conn: Conn):
            cur = await conn.execute(
                "UPDATE objects SET state=%s WHERE bucket=%s AND key=%s AND etag=%s AND state=%s",
                (new, bucket, key, etag, old),
            )
            return cur.rowcount > 0

        return await self._write(fn)

    async def list_keys(
        self, bucket: str, prefix: str, start: str | None, inclusive: bool, limit: int
    ) -> list[ListedEntry]:
        upper = prefix_upper_bound(prefix) if prefix else None
        args: list[Any] = [bucket, prefix, upper, upper]
        start_clause = ""
        if start is not None:
            start_clause = "AND key>=%s" if inclusive else "AND key>%s"
            args.append(start)
        args.append(limit)
        rows = await self._all(_LIST_KEYS.format(start=start_clause), args)
        return list(map(ListedEntry._make, rows))

    async def list_page(
        self, bucket: str, prefix: str, delimiter: str, after: str | None, max_keys: int
    ) -> ListPage:
        """With a delimiter, the whole page is one statement (``_LIST_WALK``), where the
        engine-neutral way costs a round trip per common prefix: 1,000 for a page of 1,000
        prefixes. Without one, keys come in batches of 1,000 and that way is as good."""
        succ = _successor(delimiter[-1]) if delimiter else None
        if succ is None or max_keys <= 0:
            return await super().list_page(bucket, prefix, delimiter, after, max_keys)
        upper = prefix_upper_bound(prefix) if prefix else None
        args = {
            "bucket": bucket,
            "prefix": prefix,
            "upper": upper,
            "plen": len(prefix),
            "delim": delimiter,
            "dlen": len(delimiter),
            "succ": succ,
            "limit": walk_limit(max_keys),
            "after": after,
        }
        start = "AND key>%(after)s" if after is not None else ""
        rows = await self._all(_LIST_WALK.format(start=start), args)
        entries = list(map(ListedEntry._make, rows))
        return page_from_walk(entries, prefix, delimiter, after, max_keys)

    async def import_objects(self, objects: Iterable[ObjectRecord], batch: int = 10_000) -> int:
        count = 0
        pending: list[ObjectRecord] = []

        async def flush(conn: Conn) -> None:
            async with conn.cursor() as cur:
                await cur.executemany(_INSERT_OBJECT, [_object_values(o) for o in pending])
            for obj in pending:
                await self._mark_live(conn, obj.segments)

        async def run(items: list[ObjectRecord]) -> None:
            nonlocal pending
            pending = items
            await self._call_long(flush)

        buffer: list[ObjectRecord] = []
        for obj in objects:
            buffer.append(obj)
            count += 1
            if len(buffer) >= batch:
                await run(buffer)
                buffer = []
        if buffer:
            await run(buffer)

        async def analyze(conn: Conn) -> None:
            # A bulk load leaves the planner's statistics at "empty table" until autovacuum
            # gets round to it; the first queries after it would be planned blind.
            await conn.execute("ANALYZE objects")

        await self._call_long(analyze)
        return count

    async def _call_long(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """A bulk write without the request deadline (imports, tools)."""
        assert self._pool is not None
        phase = _Phase()
        try:
            async with self._pool.connection(timeout=30.0) as conn:
                try:
                    async with conn.transaction():
                        result = await fn(conn)
                        phase.at = "commit"
                    return result
                except psycopg.Error as e:
                    raise _final(_engine_error(e, conn, phase)) from e
        except psycopg_pool.PoolTimeout:
            raise IndexUnavailable("no connection to the index") from None

    # -- multipart ---------------------------------------------------------------------------

    async def create_upload(self, up: UploadRecord) -> None:
        async def fn(conn: Conn):
            try:
                await conn.execute(
                    f"INSERT INTO uploads ({_UPLOAD_COLUMNS}) VALUES ({', '.join(['%s'] * 11)})",
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
            except pg_errors.ForeignKeyViolation:
                raise NotFound(up.bucket) from None
            except pg_errors.UniqueViolation:
                raise Conflict(up.upload_id) from None

        await self._write(fn)

    async def get_upload(self, upload_id: str) -> UploadRecord | None:
        row = await self._one(
            f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE upload_id=%s", (upload_id,)
        )
        return _upload_from_row(row) if row else None

    async def list_uploads(
        self,
        bucket: str,
        prefix: str,
        key_marker: str | None,
        upload_id_marker: str | None,
        limit: int,
    ) -> list[UploadRecord]:
        clauses = ["bucket=%s"]
        args: list[Any] = [bucket]
        if prefix:
            clauses.append("key>=%s")
            args.append(prefix)
            upper = prefix_upper_bound(prefix)
            if upper is not None:
                clauses.append("key<%s")
                args.append(upper)
        if key_marker is not None:
            if upload_id_marker:
                clauses.append(
                    "(key>%s OR (key=%s AND (initiated, upload_id) > "
                    "(SELECT initiated, upload_id FROM uploads WHERE upload_id=%s)))"
                )
                args += [key_marker, key_marker, upload_id_marker]
            else:
                clauses.append("key>%s")
                args.append(key_marker)
        args.append(limit)
        rows = await self._all(
            f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE {' AND '.join(clauses)} "
            "ORDER BY key, initiated, upload_id LIMIT %s",
            args,
        )
        return [_upload_from_row(r) for r in rows]

    async def put_part(self, part: PartRecord) -> bool:
        async def fn(conn: Conn):
            # The upload row is locked: a concurrent complete or abort waits, or went first.
            cur = await conn.execute(
                "SELECT 1 FROM uploads WHERE upload_id=%s FOR SHARE", (part.upload_id,)
            )
            if await cur.fetchone() is None:
                return False
            cur = await conn.execute(
                "SELECT segment FROM parts WHERE upload_id=%s AND part_number=%s FOR UPDATE",
                (part.upload_id, part.part_number),
            )
            old = await cur.fetchone()
            if old:
                await self._queue_gc(conn, [Segment.from_json(json.loads(old[0]))])
            await conn.execute(
                f"INSERT INTO parts ({_PART_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s) "
                "ON CONFLICT (upload_id, part_number) DO UPDATE SET size=EXCLUDED.size, "
                "etag=EXCLUDED.etag, md5=EXCLUDED.md5, checksum=EXCLUDED.checksum, "
                "last_modified=EXCLUDED.last_modified, segment=EXCLUDED.segment",
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
            await self._mark_live(conn, [part.segment])
            return True

        return await self._write(fn)

    async def list_parts(
        self, upload_id: str, after: int = 0, limit: int = 10_000
    ) -> list[PartRecord]:
        rows = await self._all(
            f"SELECT {_PART_COLUMNS} FROM parts WHERE upload_id=%s AND part_number>%s "
            "ORDER BY part_number LIMIT %s",
            (upload_id, after, limit),
        )
        return [_part_from_row(r) for r in rows]

    async def complete_upload(self, upload_id: str, obj: ObjectRecord) -> bool | VersionRef:
        async def fn(conn: Conn):
            cur = await conn.execute(
                "SELECT 1 FROM uploads WHERE upload_id=%s FOR UPDATE", (upload_id,)
            )
            if await cur.fetchone() is None:
                return False
            await self._drop_upload(conn, upload_id, keep={s.blob_id for s in obj.segments})
            ref = await self._put_object_op(conn, obj, False, None, "CompleteMultipartUpload")
            return ref or True

        return await self._write(fn)

    async def abort_upload(self, upload_id: str) -> bool:
        async def fn(conn: Conn):
            cur = await conn.execute(
                "SELECT 1 FROM uploads WHERE upload_id=%s FOR UPDATE", (upload_id,)
            )
            if await cur.fetchone() is None:
                return False
            await self._drop_upload(conn, upload_id, keep=())
            return True

        return await self._write(fn)

    async def _drop_upload(self, conn: Conn, upload_id: str, keep: Iterable[str]) -> None:
        keep = set(keep)
        cur = await conn.execute(
            "DELETE FROM parts WHERE upload_id=%s RETURNING segment", (upload_id,)
        )
        segs = [Segment.from_json(json.loads(r[0])) for r in await cur.fetchall()]
        await self._queue_gc(conn, [s for s in segs if s.blob_id not in keep])
        await conn.execute("DELETE FROM uploads WHERE upload_id=%s", (upload_id,))

    async def scan_parts(self, after: tuple[str, int] | None, limit: int) -> list[PartRecord]:
        where, args = ("WHERE (upload_id, part_number) > (%s, %s)", after) if after else ("", ())
        rows = await self._all(
            f"SELECT {_PART_COLUMNS} FROM parts {where} ORDER BY upload_id, part_number LIMIT %s",
            (*args, limit),
        )
        return [_part_from_row(r) for r in rows]

    # -- garbage -----------------------------------------------------------------------------

    async def due_garbage(
        self, limit: int, now: float | None = None
    ) -> list[tuple[str, list[str]]]:
        rows = await self._all(
            f"SELECT blob_id, stores FROM gc_queue WHERE not_before<={_NOW if now is None else '%s'} "
            "ORDER BY not_before LIMIT %s",
            (limit,) if now is None else (now, limit),
        )
        return [(r[0], [s for s in r[1].split(",") if s]) for r in rows]

    async def forget_garbage(self, blob_ids: list[str], missed: Sequence[RepairTask] = ()) -> None:
        async def fn(conn: Conn):
            await conn.execute(
                "DELETE FROM gc_queue WHERE blob_id = ANY(%s::text[])", (list(blob_ids),)
            )
            await _queue_repair_rows(conn, missed)

        await self._write(fn)

    async def is_live(self, blob_id: str) -> bool:
        return await self._one("SELECT 1 FROM live_blobs WHERE blob_id=%s", (blob_id,)) is not None

    async def known_blobs(self, blob_ids: list[str]) -> set[str]:
        rows = await self._all(
            "SELECT blob_id FROM live_blobs WHERE blob_id = ANY(%s::text[]) "
            "UNION SELECT blob_id FROM gc_queue WHERE blob_id = ANY(%s::text[])",
            (list(blob_ids), list(blob_ids)),
        )
        return {r[0] for r in rows}

    async def reference_problems(self) -> dict[str, list[str]]:
        referenced = (
            "SELECT e->>'id' AS blob_id FROM objects, jsonb_array_elements(segments::jsonb) e "
            "WHERE jsonb_array_length(e->'st') > 0 "
            "UNION SELECT e->>'id' FROM versions, jsonb_array_elements(segments::jsonb) e "
            "WHERE jsonb_array_length(e->'st') > 0 "
            "UNION SELECT segment::jsonb->>'id' FROM parts "
            "WHERE jsonb_array_length(segment::jsonb->'st') > 0"
        )

        async def fn(conn: Conn):
            cur = await conn.execute(
                f"WITH r AS ({referenced}) SELECT r.blob_id FROM r "
                "WHERE NOT EXISTS (SELECT 1 FROM live_blobs l WHERE l.blob_id = r.blob_id) "
                "ORDER BY 1"
            )
            unmarked = [row[0] for row in await cur.fetchall()]
            cur = await conn.execute(
                f"WITH r AS ({referenced}) SELECT l.blob_id FROM live_blobs l "
                "WHERE NOT EXISTS (SELECT 1 FROM r WHERE r.blob_id = l.blob_id) ORDER BY 1"
            )
            unreferenced = [row[0] for row in await cur.fetchall()]
            return {"unmarked": unmarked, "unreferenced": unreferenced}

        return await self._call_long_read(fn)

    async def _call_long_read(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """A whole-index read for tools (fsck): one snapshot, no request deadline."""

        async def snapshot(conn: Conn):
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            return await fn(conn)

        return await self._call_long(snapshot)

    async def fix_references(self, unmarked: list[str], unreferenced: list[str]) -> None:
        async def fn(conn: Conn):
            if unmarked:
                await conn.execute(
                    "INSERT INTO live_blobs SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING",
                    (list(unmarked),),
                )
            cur = await conn.execute("SELECT store_id FROM drives ORDER BY store_id")
            stores = ",".join(r[0] for r in await cur.fetchall())
            if unreferenced:
                await _queue_for_gc(conn, [(b, stores, self.gc_grace) for b in unreferenced])

        await self._write(fn)

    # -- repair queue ------------------------------------------------------------------------

    async def queue_repairs(self, tasks: Sequence[RepairTask]) -> int:
        if not tasks:
            return 0
        return await self._write(lambda conn: _queue_repair_rows(conn, tasks))

    async def due_repairs(
        self, stores: Iterable[str], limit: int, now: float | None = None
    ) -> list[RepairTask]:
        stores = list(stores)
        if not stores:
            return []
        rows = await self._all(
            f"SELECT {_REPAIR_COLUMNS} FROM repair_queue WHERE store_id = ANY(%s::text[]) "
            f"AND not_before<={_NOW if now is None else '%s'} ORDER BY not_before LIMIT %s",
            (stores, limit) if now is None else (stores, now, limit),
        )
        return [_task_from_row(r) for r in rows]

    async def repairs(self, limit: int = 1000) -> list[RepairTask]:
        rows = await self._all(
            f"SELECT {_REPAIR_COLUMNS} FROM repair_queue ORDER BY not_before LIMIT %s", (limit,)
        )
        return [_task_from_row(r) for r in rows]

    async def finish_repair(self, task: RepairTask) -> bool:
        async def fn(conn: Conn):
            await conn.execute(
                "DELETE FROM repair_queue WHERE blob_id=%s AND store_id=%s AND op=%s",
                (task.blob_id, task.store_id, task.op),
            )
            # FOR SHARE: a delete of the blob's last reference waits for this commit, or
            # went first and is seen here.
            cur = await conn.execute(
                "SELECT 1 FROM live_blobs WHERE blob_id=%s FOR SHARE", (task.blob_id,)
            )
            return await cur.fetchone() is not None

        return await self._write(fn)

    async def defer_repair(self, task: RepairTask, not_before: float, error: str) -> None:
        # The caller's backoff is a delay on its own clock; the row is due that long after
        # now on the index's clock (docs/failure-testing.md, clock skew).
        delay = not_before - time.time()

        async def fn(conn: Conn):
            await conn.execute(
                f"UPDATE repair_queue SET attempts=attempts+1, not_before={_NOW} + %s, "
                "last_error=%s WHERE blob_id=%s AND store_id=%s AND op=%s",
                (delay, error[:500], task.blob_id, task.store_id, task.op),
            )

        await self._write(fn)

    async def repair_summary(self) -> dict:
        per: dict[str, dict[str, dict[str, float]]] = {}
        rows = await self._all(
            "SELECT store_id, op, count(*), coalesce(sum(size), 0), min(created) "
            "FROM repair_queue GROUP BY store_id, op"
        )
        for store_id, op, n, size, oldest in rows:
            per.setdefault(store_id, {})[op] = {"rows": n, "bytes": int(size), "oldest": oldest}
        return per

    # -- integrity, totals -------------------------------------------------------------------

    async def scan_objects(self, after: tuple[str, str] | None, limit: int) -> list[ObjectRecord]:
        where, args = ("WHERE (bucket, key) > (%s, %s)", after) if after else ("", ())
        rows = await self._all(
            "SELECT bucket, key, etag, state, segments, inline, size FROM objects "
            f"{where} ORDER BY bucket, key LIMIT %s",
            (*args, limit),
        )
        return [scan_record(r) for r in rows]

    async def scan_versions(
        self, after: tuple[str, str, int] | None, limit: int
    ) -> list[ObjectRecord]:
        where, args = ("AND (bucket, key, vseq) > (%s, %s, %s)", after) if after else ("", ())
        rows = await self._all(
            "SELECT bucket, key, etag, state, segments, inline, size, vseq FROM versions "
            f"WHERE marker=0 {where} ORDER BY bucket, key, vseq LIMIT %s",
            (*args, limit),
        )
        return [scan_record(r) for r in rows]

    async def object_totals(self) -> tuple[int, int, int, int]:
        """(objects, bytes, bytes of all copies, damaged objects) over every bucket."""
        row = await self._one(
            "SELECT coalesce(sum(objects), 0), coalesce(sum(bytes), 0), "
            "coalesce(sum(stored_bytes), 0), coalesce(sum(not_ok), 0) FROM bucket_totals"
        )
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2]), int(row[3])

    async def totals(self) -> tuple[int, int]:
        objects, _, object_bytes, _ = await self.object_totals()
        row = await self._one(
            "SELECT count(*), coalesce(sum(size * jsonb_array_length(segment::jsonb->'st')), 0) "
            "FROM parts"
        )
        assert row is not None
        return objects + int(row[0]), object_bytes + int(row[1])

    async def damaged_objects(self, limit: int = 100) -> tuple[int, list[tuple[str, str]]]:
        """The count comes from the kept totals, not ``count(*)`` over the partial index:
        right after a bulk load (no ANALYZE yet) the planner guessed half the rows damaged and
        scanned the whole table, every health refresh from the first second of a start (a
        million rows: half a second each time, issue #13's "no full scan at start-up")."""

        async def fn(conn: Conn):
            cur = await conn.execute("SELECT coalesce(sum(not_ok), 0) FROM bucket_totals")
            (count,) = await cur.fetchone()
            cur = await conn.execute(
                "SELECT bucket, key FROM objects WHERE state<>'ok' ORDER BY bucket, key LIMIT %s",
                (limit,),
            )
            return int(count), [(r[0], r[1]) for r in await cur.fetchall()]

        return await self._read(fn)

    async def integrity_check(self, quick: bool = False) -> list[str]:
        """PostgreSQL checks its own pages (page checksums, WAL); what is checked here is
        what Holdfast keeps on top: the kept totals against the rows (skipped when quick)."""

        async def fn(conn: Conn):
            if quick:
                await conn.execute("SELECT 1")
                return ["ok"]
            cur = await conn.execute(
                "WITH kept AS (SELECT bucket, sum(objects) AS n, sum(bytes) AS b "
                "FROM bucket_totals GROUP BY bucket), "
                "real AS (SELECT bucket, count(*) AS n, sum(size) AS b FROM objects "
                "GROUP BY bucket) "
                "SELECT coalesce(k.bucket, r.bucket), coalesce(k.n, 0), coalesce(r.n, 0) "
                "FROM kept k FULL JOIN real r ON k.bucket = r.bucket "
                "WHERE coalesce(k.n, 0) <> coalesce(r.n, 0) OR coalesce(k.b, 0) <> coalesce(r.b, 0)"
            )
            bad = [
                f"bucket {b!r}: totals say {kept} objects, the rows {real}"
                for b, kept, real in await cur.fetchall()
            ]
            return bad or ["ok"]

        return await self._call_long_read(fn)

    async def status_counts(self, timeout: float, examples: int = 5) -> dict:
        async def fn(conn: Conn):
            cur = await conn.execute(
                "SELECT (SELECT count(*) FROM buckets), "
                "(SELECT coalesce(sum(objects), 0) FROM bucket_totals), "
                "(SELECT coalesce(sum(bytes), 0) FROM bucket_totals), "
                "(SELECT coalesce(sum(not_ok), 0) FROM bucket_totals), "
                "(SELECT count(*) FROM gc_queue), "
                "(SELECT coalesce(sum(stored_bytes), 0) FROM bucket_totals)"
            )
            buckets, objects, stored, corrupt, gc, copies = await cur.fetchone()
            found: list[tuple[str, str, str]] = []
            if corrupt:
                cur = await conn.execute(
                    "SELECT bucket, key, state FROM objects WHERE state<>'ok' "
                    "ORDER BY bucket, key LIMIT %s",
                    (examples,),
                )
                found = list(await cur.fetchall())
            counted = int(buckets), int(objects), int(stored), int(corrupt), int(gc)
            return (*counted, int(copies), found)

        try:
            async with asyncio.timeout(timeout):
                buckets, objects, stored, corrupt, gc, copies, found = await self._read(fn)
                queue = await self.repair_summary()
        except TimeoutError:
            raise IndexUnavailable(f"index did not answer within {timeout:g} s") from None
        return {
            "buckets": buckets,
            "objects": objects,
            "stored_bytes": stored,
            "copies_bytes": copies,  # every copy of every object: Holdfast's own data
            "gc_queue": gc,
            "corrupt_objects": corrupt,
            "corrupt_examples": [{"bucket": b, "key": k, "state": st} for b, k, st in found],
            "damaged": {"count": corrupt, "examples": [f"{b}/{k}" for b, k, _ in found]},
            "repair_queue": queue,
            "counted_at": time.time(),
        }

    async def probe(self, timeout: float) -> dict:
        started = time.monotonic()

        async def fn(conn: Conn):
            cur = await conn.execute("SELECT pg_is_in_recovery()")
            (standby,) = await cur.fetchone()
            return not standby

        try:
            async with asyncio.timeout(timeout):
                writable = await self._read(fn)
            return {
                "readable": True,
                "writable": bool(writable),
                "error": None if writable else "connected to a read-only standby",
                "read_ms": (time.monotonic() - started) * 1000,
            }
        except (IndexError_, TimeoutError) as e:
            return {
                "readable": False,
                "writable": False,
                "error": str(e) or "index did not answer in time",
                "read_ms": (time.monotonic() - started) * 1000,
            }

    # -- drives and placement ----------------------------------------------------------------

    async def drives(self) -> dict[str, str]:
        return dict(await self._all("SELECT store_id, uuid FROM drives"))

    async def register_drive(self, store_id: str, path: str, adopt: Callable[[str], str]) -> str:
        async def fn(conn: Conn):
            # Two processes adopting the same drive: the second waits on the first's insert
            # (ON CONFLICT) and then reads the uuid the first recorded.
            cur = await conn.execute("SELECT uuid FROM drives WHERE store_id=%s", (store_id,))
            row = await cur.fetchone()
            if row is not None:
                return row[0]
            await conn.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (0x68666472, store_id)
            )
            cur = await conn.execute("SELECT uuid FROM drives WHERE store_id=%s", (store_id,))
            row = await cur.fetchone()
            if row is not None:
                return row[0]
            drive_uuid = await asyncio.to_thread(adopt, uuid.uuid4().hex)
            await conn.execute(
                "INSERT INTO drives VALUES (%s,%s,%s,%s)", (store_id, drive_uuid, path, time.time())
            )
            return drive_uuid

        return await self._call_long(fn)

    async def bucket_policies(self) -> dict[str, tuple[int, int, str]]:
        rows = await self._all("SELECT bucket, copies, min_copies, spread FROM bucket_policies")
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    async def set_bucket_policy(
        self, bucket: str, copies: int | None, min_copies: int | None, spread: str = ""
    ) -> None:
        async def fn(conn: Conn):
            if copies is None:
                await conn.execute("DELETE FROM bucket_policies WHERE bucket=%s", (bucket,))
            else:
                await conn.execute(
                    "INSERT INTO bucket_policies VALUES (%s,%s,%s,%s) ON CONFLICT (bucket) DO "
                    "UPDATE SET copies=EXCLUDED.copies, min_copies=EXCLUDED.min_copies, "
                    "spread=EXCLUDED.spread",
                    (bucket, copies, min_copies if min_copies is not None else 1, spread),
                )

        await self._write(fn)

    # -- back-end stores ---------------------------------------------------------------------

    async def backend_stores(self) -> list[BackendRecord]:
        rows = await self._all(
            "SELECT name, kind, store_id, settings, secret, added FROM stores ORDER BY name"
        )
        return [BackendRecord(r[0], r[1], r[2], json.loads(r[3]), bytes(r[4]), r[5]) for r in rows]

    async def add_backend_store(self, rec: BackendRecord, uuid_: str, location: str) -> None:
        async def fn(conn: Conn):
            cur = await conn.execute(
                "INSERT INTO stores VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (name) DO NOTHING",
                (rec.name, rec.kind, rec.store_id, json.dumps(rec.settings), rec.secret, rec.added),
            )
            if cur.rowcount == 0:
                raise Conflict(f"a store named {rec.name!r} exists")
            await conn.execute(
                "INSERT INTO drives VALUES (%s,%s,%s,%s) ON CONFLICT (store_id) DO UPDATE SET "
                "uuid=EXCLUDED.uuid, path=EXCLUDED.path, added=EXCLUDED.added",
                (rec.store_id, uuid_, location, rec.added),
            )

        await self._write(fn)

    async def set_backend_secret(self, name: str, secret: bytes) -> None:
        async def fn(conn: Conn):
            await conn.execute("UPDATE stores SET secret=%s WHERE name=%s", (secret, name))

        await self._write(fn)

    async def remove_backend_store(self, name: str) -> bool:
        async def fn(conn: Conn) -> bool:
            cur = await conn.execute("DELETE FROM stores WHERE name=%s RETURNING store_id", (name,))
            row = await cur.fetchone()
            if row is None:
                return False
            await conn.execute("DELETE FROM drives WHERE store_id=%s", (row[0],))
            await conn.execute("DELETE FROM repair_queue WHERE store_id=%s", (row[0],))
            return True

        return await self._write(fn)

    # -- bucket configurations ---------------------------------------------------------------

    async def get_bucket_config(self, bucket: str, name: str) -> str | None:
        row = await self._one(
            "SELECT value FROM bucket_configs WHERE bucket=%s AND name=%s", (bucket, name)
        )
        return row[0] if row else None

    async def get_bucket_access(
        self, bucket: str, names: tuple[str, ...]
    ) -> tuple[BucketRecord | None, dict[str, str]]:
        rows = await self._all(
            "SELECT b.name, b.owner, b.created, b.region, c.name, c.value FROM buckets b "
            "LEFT JOIN bucket_configs c ON c.bucket=b.name AND c.name = ANY(%s) "
            "WHERE b.name=%s",
            (list(names), bucket),
        )
        if not rows:
            return None, {}
        return BucketRecord(*rows[0][:4]), {r[4]: r[5] for r in rows if r[4] is not None}

    async def get_object_access(
        self, bucket: str, names: tuple[str, ...], key: str
    ) -> tuple[BucketRecord | None, dict[str, str], ObjectRecord | None]:
        """One statement, so one round trip and one snapshot: the bucket, its documents
        (aggregated into two arrays, so the object's columns come once) and the object."""
        row = await self._one(_GET_OBJECT_ACCESS, (list(names), key, bucket))
        if row is None:
            return None, {}, None
        names_, values = row[4], row[5]
        docs = dict(zip(names_, values, strict=True)) if names_ else {}
        obj = None if row[6] is None else _object_from_row(row[6:])
        return BucketRecord(*row[:4]), docs, obj

    async def set_bucket_config(self, bucket: str, name: str, value: str | None) -> bool:
        async def fn(conn: Conn):
            if value is None:
                cur = await conn.execute("SELECT 1 FROM buckets WHERE name=%s", (bucket,))
                if await cur.fetchone() is None:
                    return False
                await conn.execute(
                    "DELETE FROM bucket_configs WHERE bucket=%s AND name=%s", (bucket, name)
                )
                return True
            try:
                await conn.execute(
                    "INSERT INTO bucket_configs VALUES (%s,%s,%s) ON CONFLICT (bucket, name) "
                    "DO UPDATE SET value=EXCLUDED.value",
                    (bucket, name, value),
                )
            except pg_errors.ForeignKeyViolation:
                return False
            return True

        return await self._write(fn)

    # -- meta --------------------------------------------------------------------------------

    # -- event notifications, SSE keys (holdfast/index/postgres/notify.py) ---------------------

    async def due_notifications(
        self, streams: int, per_stream: int, now: float | None = None
    ) -> list[list[NotifyEvent]]:
        return await self._read(lambda conn: outbox.due(conn, streams, per_stream, now))

    async def finish_notifications(self, ids: list[int]) -> None:
        await self._write(lambda conn: outbox.finish(conn, list(ids)))

    async def defer_notification(
        self, event_id: int, not_before: float, error: str, dead: bool
    ) -> None:
        await self._write(lambda conn: outbox.defer(conn, event_id, not_before, error, dead))

    async def retry_dead_notifications(self, target: str | None = None) -> int:
        return await self._write(lambda conn: outbox.retry_dead(conn, target))

    async def notification_summary(self) -> dict:
        return await self._read(outbox.summary)

    async def dead_notifications(self, limit: int = 100) -> list[NotifyEvent]:
        return await self._read(lambda conn: outbox.dead(conn, limit))

    async def scan_sealed(
        self, table: str, after: tuple[str, str, int] | None, limit: int, marker: str
    ) -> list[tuple[str, str, int, str]]:
        return await self._read(lambda conn: outbox.scan_sealed(conn, table, after, limit, marker))

    async def replace_header(
        self, bucket: str, key: str, vseq: int, name: str, old: str, new: str
    ) -> bool:
        return await self._write(
            lambda conn: outbox.replace_header(conn, bucket, key, vseq, name, old, new)
        )

    async def replace_upload_header(self, upload_id: str, name: str, old: str, new: str) -> bool:
        return await self._write(
            lambda conn: outbox.replace_upload_header(conn, upload_id, name, old, new)
        )

    async def get_meta(self, name: str) -> str | None:
        row = await self._one("SELECT value FROM meta WHERE name=%s", (name,))
        return row[0] if row else None

    async def set_meta(self, name: str, value: str) -> None:
        async def fn(conn: Conn):
            await conn.execute(
                "INSERT INTO meta VALUES (%s,%s) ON CONFLICT (name) DO UPDATE SET value=EXCLUDED.value",
                (name, value),
            )

        await self._write(fn)

    # -- the cluster layout ------------------------------------------------------------------

    async def layout_version(self) -> int:
        row = await self._one("SELECT coalesce(max(version), 0) FROM layouts")
        return int(row[0]) if row else 0

    async def get_layout(self) -> LayoutRecord | None:
        row = await self._one(
            f"SELECT {_LAYOUT_COLUMNS} FROM layouts ORDER BY version DESC LIMIT 1"
        )
        return _layout_record(row) if row else None

    async def get_staged_layout(self) -> StagedLayout | None:
        row = await self._one("SELECT base_version, nodes, staged_at, staged_by FROM layout_staged")
        return StagedLayout(row[0], nodes_from_text(row[1]), row[2], row[3]) if row else None

    async def stage_layout(self, staged: StagedLayout | None) -> None:
        async def fn(conn: Conn):
            await conn.execute("DELETE FROM layout_staged")
            if staged is not None:
                await conn.execute(
                    "INSERT INTO layout_staged VALUES (1,%s,%s,%s,%s)",
                    (
                        staged.base_version,
                        nodes_to_text(staged.nodes),
                        staged.staged_at or time.time(),
                        staged.staged_by,
                    ),
                )

        await self._write(fn)

    async def apply_layout(
        self, expect_version: int, layout: LayoutRecord, drop_staged: bool = True
    ) -> int:
        async def fn(conn: Conn) -> int:
            # Serialise appliers on one lock; then the version read is the one we extend.
            await conn.execute("LOCK TABLE layouts IN EXCLUSIVE MODE")
            cur = await conn.execute("SELECT coalesce(max(version), 0) FROM layouts")
            (current,) = await cur.fetchone()
            if current != expect_version:
                raise Conflict(
                    f"the layout is at version {current}, not {expect_version}: someone "
                    "applied a change meanwhile"
                )
            await conn.execute(
                f"INSERT INTO layouts ({_LAYOUT_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s)",
                (
                    expect_version + 1,
                    nodes_to_text(layout.nodes),
                    layout.applied_at or time.time(),
                    layout.applied_by,
                    layout.diff,
                    layout.blast,
                ),
            )
            if drop_staged:
                await conn.execute("DELETE FROM layout_staged")
            return expect_version + 1

        return await self._write(fn)

    async def layout_history(self, limit: int = 50) -> list[LayoutRecord]:
        rows = await self._all(
            f"SELECT {_LAYOUT_COLUMNS} FROM layouts ORDER BY version DESC LIMIT %s", (limit,)
        )
        return [_layout_record(r) for r in rows]

    # -- transfer slots ----------------------------------------------------------------------

    async def acquire_transfer_slot(
        self, cap: int, holder: str, kind: str, target: str, token: str, ttl: float
    ) -> int | None:
        return await self._write(
            lambda conn: _transfers.acquire(conn, cap, holder, kind, target, token, ttl)
        )

    async def renew_transfer_slot(self, slot: int, token: str, ttl: float) -> bool:
        return await self._write(lambda conn: _transfers.renew(conn, slot, token, ttl))

    async def release_transfer_slot(self, slot: int, token: str) -> None:
        await self._write(lambda conn: _transfers.release(conn, slot, token))

    async def transfer_slots(self) -> list[TransferSlot]:
        return [_transfers.slot_of(r) for r in await self._all(_transfers.LIVE)]

    # -- once per cluster --------------------------------------------------------------------

    async def try_lead(self, job: str) -> Lease | None:
        lease = AdvisoryLease(self._conninfo, job, job_lock_key(job), self.timeout)
        if not await lease.acquire():
            return None
        self._leases.add(lease)
        lease.on_release = self._leases.discard
        return lease


# -- helpers ---------------------------------------------------------------------------------


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _final(error: Exception) -> Exception:
    """For calls that are not retried: a stale connection is just unavailable."""
    return IndexUnavailable("index connection lost") if isinstance(error, _Stale) else error


def _engine_error(e: psycopg.Error, conn: Conn, phase: _Phase) -> Exception:
    """The index error for an engine failure on ``conn``."""
    if conn.broken or isinstance(e, psycopg.OperationalError | psycopg.InterfaceError):
        if phase.at == "commit":
            return OutcomeUnknown(f"index connection lost during COMMIT: {_first_line(e)}")
        if conn.broken:
            return _Stale()
    if isinstance(e, pg_errors.DiskFull | pg_errors.OutOfMemory):
        return IndexFull(_first_line(e))
    if isinstance(
        e,
        pg_errors.DeadlockDetected
        | pg_errors.SerializationFailure
        | pg_errors.LockNotAvailable
        | pg_errors.QueryCanceled,
    ):  # rolled back whole: nothing happened, and a retry may well succeed
        return IndexUnavailable(f"index busy: {_first_line(e)}")
    if isinstance(e, pg_errors.ReadOnlySqlTransaction):
        return IndexUnavailable(f"the index server is a read-only standby: {_first_line(e)}")
    if isinstance(e, psycopg.OperationalError):
        return IndexUnavailable(_first_line(e))
    return IndexError_(f"index error: {_first_line(e)}")


async def _versioning(conn: Conn, bucket: str) -> str | None:
    cur = await conn.execute(
        "SELECT value FROM bucket_configs WHERE bucket=%s AND name='versioning'", (bucket,)
    )
    row = await cur.fetchone()
    return None if row is None else row[0]


async def _lock_key(conn: Conn, bucket: str, key: str) -> None:
    """Serialize the versioned writes of one key (until the transaction ends), so version
    numbers taken after it follow their commit order."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{bucket}/{key}",)
    )


def _version_cond(bucket: str, key: str, seq: int | None) -> tuple[str, list[Any]]:
    if seq is None:
        return "bucket=%s AND key=%s AND vnull=1", [bucket, key]
    return "bucket=%s AND key=%s AND vseq=%s AND vnull=0", [bucket, key, seq]


async def _check_bucket_owner(conn: Conn, bucket: str, owner: str) -> None:
    cur = await conn.execute("SELECT owner FROM buckets WHERE name=%s", (bucket,))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(bucket)
    if row[0] != owner:
        raise Forbidden(bucket)


async def _queue_for_gc(conn: Conn, rows: list[tuple[str, str, float]]) -> None:
    """Hand blobs to the GC: no longer live, deleted from their stores once due, ``grace``
    seconds (each row's third field) from now on the index's clock."""
    ids = [r[0] for r in rows]
    await conn.execute("DELETE FROM live_blobs WHERE blob_id = ANY(%s::text[])", (ids,))
    async with conn.cursor() as cur:
        await cur.executemany(
            f"INSERT INTO gc_queue VALUES (%s,%s,{_NOW} + %s) ON CONFLICT (blob_id) DO UPDATE "
            "SET stores=EXCLUDED.stores, not_before=EXCLUDED.not_before",
            rows,
        )


async def _queue_repair_rows(conn: Conn, tasks: Iterable[RepairTask]) -> int:
    """Insert repair rows in the caller's transaction; how many are new. A "copy" never
    overrides an existing row; a "delete" overrides a pending "copy". Due now on the index's
    clock, not the writing node's."""
    cur = await conn.execute(f"SELECT {_NOW}")
    (now,) = await cur.fetchone()
    added = 0
    for t in tasks:
        if t.op == "delete":
            cur = await conn.execute(
                f"INSERT INTO repair_queue ({_REPAIR_COLUMNS}, size) "
                "VALUES (%s,%s,%s,%s,NULL,%s,0,%s,%s,NULL,0) ON CONFLICT (blob_id, store_id) "
                "DO UPDATE SET op='delete', reason=EXCLUDED.reason, segment=NULL, size=0, "
                "attempts=0, not_before=EXCLUDED.not_before, last_error=NULL "
                "WHERE repair_queue.op<>'delete'",
                (t.blob_id, t.store_id, t.op, t.reason, t.ref, now, now),
            )
        else:
            seg = json.dumps(t.segment.to_json()) if t.segment is not None else None
            cur = await conn.execute(
                f"INSERT INTO repair_queue ({_REPAIR_COLUMNS}, size) "
                "VALUES (%s,%s,%s,%s,%s,%s,0,%s,%s,NULL,%s) ON CONFLICT DO NOTHING",
                (t.blob_id, t.store_id, t.op, t.reason, seg, t.ref, now, now, t.size),
            )
        added += cur.rowcount
    return added


def _deferred_copies(segments: Iterable[Segment]) -> list[RepairTask]:
    return [
        RepairTask(s.blob_id, sid, "copy", "deferred", s) for s in segments for sid in s.deferred
    ]


def _successor(char: str) -> str | None:
    """The next code point a UTF-8 key can hold after ``char`` (None after the last)."""
    nxt = ord(char) + 1
    if 0xD800 <= nxt <= 0xDFFF:
        nxt = 0xE000
    return chr(nxt) if nxt <= 0x10FFFF else None
