"""What only the PostgreSQL engine has to show: many processes (nodes) on one database.
Migrations raced by two nodes, writes raced on one key from two pools, leases raced, byte
order under COLLATE "C", an engine that goes away and comes back, a COMMIT whose answer is
lost. The engine-neutral behaviour is in test_index_contract.py, run on both engines."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from holdfast.index.errors import (
    ConditionFailed,
    IndexUnavailable,
    NotEmpty,
    NotFound,
    OutcomeUnknown,
    SchemaTooNew,
)
from holdfast.index.postgres.devserver import DevPostgres, free_port
from holdfast.index.postgres.engine import PostgresIndex
from holdfast.index.postgres.lease import job_lock_key
from holdfast.index.postgres.schema import SCHEMA_VERSION
from holdfast.index.records import BucketRecord, ObjectRecord, Segment


def run(coro):
    return asyncio.run(coro)


def obj(key: str, blob: str | None = None, bucket: str = "b", etag: str = '"e"') -> ObjectRecord:
    if blob is None:
        seg = Segment(f"inline-{key}", 3, 1 << 20, b"\0\0\0\0", ())
        return ObjectRecord(bucket, key, 3, etag, time.time(), [seg], inline=b"abc")
    seg = Segment(blob, 3, 1 << 20, b"\0\0\0\0", ("d0",))
    return ObjectRecord(bucket, key, 3, etag, time.time(), [seg])


async def opened(dsn: str, **kw) -> PostgresIndex:
    index = PostgresIndex(dsn, **kw)
    await index.start()
    return index


async def with_bucket(dsn: str, **kw) -> PostgresIndex:
    index = await opened(dsn, **kw)
    await index.create_bucket(BucketRecord("b", "root", time.time(), "us-east-1"))
    return index


def test_two_nodes_migrating_at_once_migrate_once(pg_dsn):
    async def go():
        nodes = [PostgresIndex(pg_dsn) for _ in range(4)]
        await asyncio.gather(*(n.start() for n in nodes))
        versions = {await n.schema_version() for n in nodes}
        for n in nodes:
            await n.close()
        return versions

    assert run(go()) == {SCHEMA_VERSION}


def test_a_newer_schema_is_refused(pg_dsn):
    async def go():
        index = await opened(pg_dsn)
        await index.set_meta("schema_version", "999")
        await index.close()
        with pytest.raises(SchemaTooNew):
            await opened(pg_dsn)

    run(go())


def test_keys_sort_bytewise(postgres):
    """In a database whose default collation is en-US (where "a-b" sorts after "ab" and
    case is folded), keys still come back in byte order: the columns are COLLATE "C"."""
    pg_dsn = postgres.new_database(icu_locale="en-US")
    keys = [
        "a-b",
        "ab",
        "a_b",
        "A",
        "Z",
        "é",
        "e",
        "~",
        "a/b",
        "a b",
        "\u00ff",
        "\U0001f600",
        "\uffff",
    ]

    async def go():
        index = await with_bucket(pg_dsn)
        for k in keys:
            await index.put_object(obj(k))
        listed = [e.key for e in await index.list_keys("b", "", None, False, 100)]
        by_prefix = [e.key for e in await index.list_keys("b", "a", None, False, 100)]
        await index.close()
        return listed, by_prefix

    listed, by_prefix = run(go())
    assert listed == sorted(keys, key=lambda k: k.encode())
    assert by_prefix == sorted([k for k in keys if k.startswith("a")], key=lambda k: k.encode())


def test_if_absent_race_between_nodes_has_one_winner(pg_dsn):
    async def go():
        a = await with_bucket(pg_dsn)
        b = await opened(pg_dsn)
        results = await asyncio.gather(
            *(
                (a if i % 2 else b).put_object(obj("k", f"blob{i}"), if_absent=True)
                for i in range(12)
            ),
            return_exceptions=True,
        )
        current = await a.get_object("b", "k")
        live = [i for i in range(12) if await a.is_live(f"blob{i}")]
        await a.close()
        await b.close()
        return results, current, live

    results, current, live = run(go())
    winners = [i for i, r in enumerate(results) if r is None]
    assert len(winners) == 1, results
    assert all(isinstance(r, ConditionFailed) for r in results if r is not None)
    assert current.segments[0].blob_id == f"blob{winners[0]}"
    assert live == winners


def test_unconditional_race_on_one_key_retires_every_loser(pg_dsn):
    """Twenty writes of one key from two pools: one row in the end, its blob live, every
    other blob in the GC queue exactly once (never live twice, never lost)."""

    async def go():
        a = await with_bucket(pg_dsn)
        b = await opened(pg_dsn)
        await asyncio.gather(
            *((a if i % 2 else b).put_object(obj("k", f"blob{i}")) for i in range(20))
        )
        current = await a.get_object("b", "k")
        garbage = await a.due_garbage(100, now=time.time() + 3600)
        live = [i for i in range(20) if await a.is_live(f"blob{i}")]
        counts = await a.status_counts(2.0)
        await a.close()
        await b.close()
        return current, garbage, live, counts

    current, garbage, live, counts = run(go())
    final = current.segments[0].blob_id
    assert [f"blob{i}" for i in live] == [final]
    assert sorted(g[0] for g in garbage) == sorted(
        f"blob{i}" for i in range(20) if f"blob{i}" != final
    )
    assert counts["objects"] == 1


def test_if_match_is_checked_inside_the_transaction(pg_dsn):
    async def go():
        index = await with_bucket(pg_dsn)
        await index.put_object(obj("k", "v1", etag='"one"'))
        # Ten writers all expect "one": the first to commit changes it, the rest must fail.
        results = await asyncio.gather(
            *(
                index.put_object(obj("k", f"w{i}", etag=f'"w{i}"'), if_etag="one")
                for i in range(10)
            ),
            return_exceptions=True,
        )
        with pytest.raises(ConditionFailed) as missing:
            await index.put_object(obj("nokey", "x"), if_etag="one")
        await index.close()
        return results, missing.value.missing

    results, missing = run(go())
    assert sum(r is None for r in results) == 1
    assert missing is True


def test_delete_bucket_races_put_cleanly(pg_dsn):
    """A PUT and a DeleteBucket on different nodes: either the object landed and the delete
    says NotEmpty, or the bucket is gone and the PUT says NotFound; never an object left in
    a deleted bucket."""

    async def go():
        outcomes = []
        a = await opened(pg_dsn)
        b = await opened(pg_dsn)
        for i in range(10):
            name = f"race{i}"
            await a.create_bucket(BucketRecord(name, "root", time.time(), "us-east-1"))
            put, delete = await asyncio.gather(
                a.put_object(obj("k", f"blob{i}", bucket=name), owner="root"),
                b.delete_bucket(name),
                return_exceptions=True,
            )
            bucket = await a.get_bucket(name)
            stored = await a.get_object(name, "k")
            outcomes.append((put, delete, bucket, stored))
        await a.close()
        await b.close()
        return outcomes

    for put, delete, bucket, stored in run(go()):
        if delete is None:
            assert isinstance(put, NotFound) and bucket is None and stored is None
        else:
            assert isinstance(delete, NotEmpty) and put is None and stored is not None


def test_pagination_is_stable_under_writes_from_another_node(pg_dsn):
    """Keys present for the whole listing come back exactly once, in order, while another
    pool inserts and deletes keys between and around them."""

    async def go():
        a = await with_bucket(pg_dsn)
        b = await opened(pg_dsn)
        stable = [f"k{i:04d}" for i in range(300)]
        await a.import_objects(obj(k) for k in stable)
        stop = asyncio.Event()

        async def churn():
            i = 0
            while not stop.is_set():
                k = f"k{(i * 7) % 300:04d}x"
                await b.put_object(obj(k))
                if i % 3 == 0:
                    await b.delete_object("b", k)
                i += 1

        writer = asyncio.create_task(churn())
        seen: list[str] = []
        after = None
        while True:
            rows = await a.list_keys("b", "", after, False, 17)
            seen += [e.key for e in rows]
            if len(rows) < 17:
                break
            after = rows[-1].key
            await asyncio.sleep(0.002)
        stop.set()
        await writer
        await a.close()
        await b.close()
        return stable, seen

    stable, seen = run(go())
    assert seen == sorted(seen, key=lambda k: k.encode())
    assert len(seen) == len(set(seen))
    assert [k for k in seen if k in set(stable)] == stable


def test_a_delimiter_page_is_one_statement_however_many_prefixes(pg_dsn):
    """A ListObjects page that rolls up 400 common prefixes costs one index round trip, not
    one per prefix (the recursive skip scan of PostgresIndex.list_page); the next page,
    from a marker, too."""

    async def go():
        index = await with_bucket(pg_dsn)
        await index.import_objects(obj(f"p{p:03d}/k{k}") for p in range(400) for k in range(3))
        calls = 0
        real = index._call

        async def counted(fn, *a, **kw):
            nonlocal calls
            calls += 1
            return await real(fn, *a, **kw)

        index._call = counted
        first = await index.list_page("b", "", "/", None, 1000)
        first_calls, calls = calls, 0
        second = await index.list_page("b", "", "/", "p199/", 150)
        await index.close()
        return first, first_calls, second, calls

    first, first_calls, second, second_calls = run(go())
    assert first.prefixes == [f"p{p:03d}/" for p in range(400)] and not first.truncated
    assert second.prefixes == [f"p{p:03d}/" for p in range(200, 350)] and second.truncated
    assert (first_calls, second_calls) == (1, 1)


def counting(index: PostgresIndex) -> list[int]:
    """Count the index's round trips (``_call``s) from now on, in the returned list's one
    element."""
    calls = [0]
    real = index._call

    async def counted(fn, *a, **kw):
        calls[0] += 1
        return await real(fn, *a, **kw)

    index._call = counted
    return calls


def test_a_get_reads_bucket_documents_and_object_in_one_round_trip(pg_dsn):
    """Every GET and HEAD starts with get_object_access: one statement for the bucket, its
    access documents and the object (two round trips before issue 16)."""

    async def go():
        index = await with_bucket(pg_dsn)
        await index.put_object(obj("k"))
        await index.set_bucket_config("b", "policy", "{}")
        calls = counting(index)
        record, docs, got = await index.get_object_access("b", ("policy", "acl"), "k")
        await index.close()
        return record, docs, got, calls[0]

    record, docs, got, calls = run(go())
    assert record.owner == "root" and docs == {"policy": "{}"} and got.key == "k"
    assert calls == 1


def test_a_page_without_delimiter_is_one_round_trip(pg_dsn):
    """A ListObjectsV2 page of 1,000 keys is one query whether or not more keys follow (it
    was two: 1,000 rows, then one row to learn "truncated?")."""

    async def go():
        index = await with_bucket(pg_dsn)
        await index.import_objects(obj(f"k{i:05d}") for i in range(2500))
        calls = counting(index)
        pages = []
        after = None
        while True:
            page = await index.list_page("b", "", "", after, 1000)
            pages.append((len(page.entries), page.truncated))
            if not page.truncated:
                break
            after = page.last
        await index.close()
        return pages, calls[0]

    pages, calls = run(go())
    assert pages == [(1000, True), (1000, True), (500, False)]
    assert calls == 3


def test_bucket_totals_agree_with_rows_across_connections(pg_dsn):
    async def go():
        # 50 calls queue for each pool of 4: a deadline that is not the point here, so a
        # loaded machine does not turn it into IndexUnavailable.
        a = await with_bucket(pg_dsn, pool_size=4, timeout=10.0)
        b = await opened(pg_dsn, pool_size=4, timeout=10.0)
        await asyncio.gather(
            *((a if i % 2 else b).put_object(obj(f"k{i % 25}")) for i in range(100))
        )
        await asyncio.gather(*(b.delete_object("b", f"k{i}") for i in range(10)))
        counts = await a.status_counts(2.0)
        check = await a.integrity_check()
        await a.close()
        await b.close()
        return counts, check

    counts, check = run(go())
    assert counts["objects"] == 15
    assert counts["stored_bytes"] == 15 * 3
    assert check == ["ok"]


def test_two_nodes_racing_for_a_lease_one_wins(pg_dsn):
    async def go():
        nodes = [await opened(pg_dsn) for _ in range(3)]
        leases = await asyncio.gather(*(n.try_lead("gc") for n in nodes))
        winners = [lease for lease in leases if lease is not None]
        other_job = await nodes[0].try_lead("scrub")
        # The winner's session ends (its node dies): another node can lead within a moment.
        winner = winners[0]
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks "
                "WHERE locktype='advisory' AND granted AND pid <> pg_backend_pid() "
                "AND objid = %s",
                (job_lock_key("gc") & 0xFFFFFFFF,),
            )
        deadline = time.monotonic() + 5
        while winner.held and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        lost = not winner.held
        successor = None
        while successor is None and time.monotonic() < deadline:
            successor = await nodes[1].try_lead("gc") or await nodes[2].try_lead("gc")
        for n in nodes:
            await n.close()
        return len(winners), other_job is not None, lost, successor is not None

    assert run(go()) == (1, True, True, True)


@pytest.fixture
def own_postgres(postgres):
    """A PostgreSQL of the test's own, to stop and start (the session's keeps running)."""
    server = DevPostgres(Path(tempfile.mkdtemp(prefix="holdfast-test-pg-own-"))).start()
    yield server
    server.stop()


def test_engine_down_fails_fast_then_recovers(own_postgres):
    dsn = own_postgres.create_database("down")

    async def go():
        index = await with_bucket(dsn)
        await index.put_object(obj("k"))
        own_postgres.stop()
        timings = []
        for _ in range(2):
            started = time.monotonic()
            with pytest.raises(IndexUnavailable):
                await index.get_object("b", "k")
            with pytest.raises(IndexUnavailable):
                await index.put_object(obj("k2"))
            timings.append(time.monotonic() - started)
        own_postgres.start()
        back = time.monotonic()
        deadline = back + 20
        while True:
            try:
                found = await index.get_object("b", "k")
                break
            except IndexUnavailable:
                assert time.monotonic() < deadline, "no recovery"
                await asyncio.sleep(0.2)
        recovered = time.monotonic() - back
        await index.put_object(obj("k3"))
        await index.close()
        return timings, found, recovered

    timings, found, recovered = run(go())
    assert recovered < 8, recovered
    assert max(timings) < 2 * 2.5, timings  # two calls, each within the 2 s deadline
    assert found is not None and found.key == "k"


def test_unreachable_engine_at_start_is_one_clear_error():
    async def go():
        started = time.monotonic()
        with pytest.raises(IndexUnavailable) as e:
            await opened(f"postgresql://postgres@127.0.0.1:{free_port()}/x")
        return time.monotonic() - started, str(e.value)

    took, message = run(go())
    assert took < 5
    assert "cannot reach the index at host=127.0.0.1" in message and "\n" not in message


class _CommitCutter:
    """A TCP proxy to PostgreSQL that, once armed, cuts the connection that sends COMMIT
    before the answer comes back: after forwarding it (the server commits), or without
    forwarding it (``forward=False``: the transaction is rolled back). ``refuse``: from
    the cut on, every connection is closed at once, as if the engine were unreachable.
    ``trigger``: what marks the COMMIT in the client's bytes: b"COMMIT" for a transaction,
    the function's name for a one-statement write (its statement is its commit)."""

    def __init__(self, port: int, trigger: bytes = b"COMMIT") -> None:
        self.target = port
        self.trigger = trigger
        self.armed = False
        self.forward = True
        self.refuse = False
        self.server: asyncio.AbstractServer | None = None
        self.open: set[asyncio.Transport] = set()

    def _cut_all(self) -> None:
        for transport in list(self.open):
            transport.abort()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader, writer):
        if self.refuse:
            writer.transport.abort()
            return
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target)
        self.open |= {writer.transport, up_w.transport}

        cut = False

        async def pump(src, dst, upstream: bool):
            nonlocal cut
            with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    if cut:
                        return  # the answer to COMMIT is never delivered
                    committing = upstream and self.armed and self.trigger in data
                    if committing and not self.forward:
                        cut = True
                        self.armed = False
                        writer.transport.abort()
                        up_w.transport.abort()
                        return
                    dst.write(data)
                    await dst.drain()
                    if committing:
                        cut = True
                        self.armed = False  # one COMMIT is lost, not the ones after it
                        await asyncio.sleep(0.2)  # let the server commit
                        writer.transport.abort()
                        up_w.transport.abort()
                        if self.refuse:
                            self._cut_all()
                        return

        await asyncio.gather(pump(reader, up_w, True), pump(up_r, writer, False))


# How a PUT commits: a bucket without versioning or notifications takes the one-statement
# write (schema step 9), a versioned one the general transaction.
PATHS = {"one-statement": b"holdfast_put_current", "transaction": b"COMMIT"}


async def _through_cutter(
    postgres, dsn: str, path: str = "transaction", **kw
) -> tuple[_CommitCutter, PostgresIndex]:
    cutter = _CommitCutter(postgres.server.port, PATHS[path])
    port = await cutter.start()
    db = dsn.rsplit("/", 1)[1]
    index = await with_bucket(f"postgresql://postgres@127.0.0.1:{port}/{db}", **kw)
    if path == "transaction":
        await index.set_bucket_config("b", "versioning", "Enabled")
    return cutter, index


@pytest.mark.parametrize("path", sorted(PATHS))
def test_lost_commit_answer_that_committed_is_resolved(postgres, path):
    """The COMMIT reached the server and its answer was lost: the engine finds the write's
    commit token and answers as if nothing had gone wrong (no 500 for the client)."""
    dsn = postgres.new_database()

    async def go():
        cutter, index = await _through_cutter(postgres, dsn, path)
        cutter.armed = True
        await index.put_object(obj("k", "blob-committed"))
        lost = cutter.armed is False
        stored = await index.get_object("b", "k")
        await index.close()
        return lost, stored

    lost, stored = run(go())
    assert lost, "the proxy did not cut a COMMIT"
    assert stored is not None and stored.segments[0].blob_id == "blob-committed"


def test_lost_commit_that_never_arrived_is_resolved_as_not_done(postgres):
    """The connection broke as COMMIT was sent, before the server got it: the transaction
    rolled back. The engine voids its token (so it can never commit later) and answers
    IndexUnavailable, a 503: nothing happened."""
    dsn = postgres.new_database()

    async def go():
        cutter, index = await _through_cutter(postgres, dsn)
        cutter.armed, cutter.forward = True, False
        with pytest.raises(IndexUnavailable, match="did not commit"):
            await index.put_object(obj("k", "blob-rolled-back"))
        stored = await index.get_object("b", "k")
        await index.close()
        return stored

    assert run(go()) is None


def test_one_statement_write_lost_on_the_way_is_sent_again(postgres):
    """A one-statement write whose connection broke before the server got it (a pooled
    connection dead since the engine restarted, say): once its token is voided it can never
    commit, so the engine sends it again on a fresh connection, and the PUT succeeds."""
    dsn = postgres.new_database()

    async def go():
        cutter, index = await _through_cutter(postgres, dsn, "one-statement")
        cutter.armed, cutter.forward = True, False
        try:
            await index.put_object(obj("k", "blob-sent-again"))
            cut = cutter.armed is False
            stored = await index.get_object("b", "k")
        finally:
            await index.close()
        return cut, stored

    cut, stored = run(go())
    assert cut, "the proxy did not cut the write"
    assert stored is not None and stored.segments[0].blob_id == "blob-sent-again"


@pytest.mark.parametrize("path", sorted(PATHS))
def test_lost_commit_answer_with_the_engine_gone_is_outcome_unknown(postgres, path):
    """When no server answers within the resolve window, the outcome stays unknown: 500."""
    dsn = postgres.new_database()

    async def go():
        cutter, index = await _through_cutter(postgres, dsn, path, resolve_window=1.0)
        cutter.armed = True
        cutter.refuse = True  # from now on, as if the engine were unreachable
        started = time.monotonic()
        with pytest.raises(OutcomeUnknown):
            await index.put_object(obj("k", "blob-unknown"))
        took = time.monotonic() - started
        cutter.refuse = False
        stored = await index.get_object("b", "k")
        await index.close()
        return took, stored

    took, stored = run(go())
    assert took < 1.0 + 2.5, took  # the deadline, then the resolve window
    # The COMMIT reached the server: the write happened, though its writer could not know.
    assert stored is not None and stored.segments[0].blob_id == "blob-unknown"


def _signal_server(postmaster: int, sig: int) -> None:
    """Signal the postmaster and every process it started (each backend is a session of
    its own, so the postmaster's process group does not reach them)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == postmaster:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry), sig)
    os.kill(postmaster, sig)


def test_frozen_engine_fails_within_the_deadline(own_postgres):
    """A server that stops answering without closing anything (SIGSTOP: a hung host or a
    partition looks the same) must not hold a call past its deadline; the call did nothing
    (IndexUnavailable) or, if its COMMIT was out, may have (OutcomeUnknown)."""
    dsn = own_postgres.create_database("frozen")

    async def go():
        index = await with_bucket(dsn, timeout=1.0)
        await index.put_object(obj("k"))
        _signal_server(own_postgres.pid, signal.SIGSTOP)
        try:
            timings = []
            for call in (
                lambda: index.get_object("b", "k"),
                lambda: index.put_object(obj("k2")),
                lambda: index.list_keys("b", "", None, False, 10),
            ):
                started = time.monotonic()
                with pytest.raises((IndexUnavailable, OutcomeUnknown)):
                    await call()
                timings.append(time.monotonic() - started)
        finally:
            _signal_server(own_postgres.pid, signal.SIGCONT)
        deadline = time.monotonic() + 20
        while True:
            try:
                found = await index.get_object("b", "k")
                break
            except IndexUnavailable:
                assert time.monotonic() < deadline, "no recovery"
                await asyncio.sleep(0.2)
        await index.close()
        return timings, found

    timings, found = run(go())
    # The write is one statement, its own COMMIT: unanswered at the deadline, its outcome is
    # looked for during one more deadline (a slow server answers then), then it is 500.
    assert timings[0] < 1.6 and timings[2] < 1.6, timings
    assert timings[1] < 2 * 1.0 + 0.6, timings
    assert found is not None


def test_writes_after_a_failed_call_are_refused_not_left_unknown(own_postgres):
    """Once a call has failed for want of a working index (a frozen server here; a partition
    looks the same), the pooled connections may all be dead. A one-statement write sent on
    one could not tell whether it committed (OutcomeUnknown, a 500); so for a while writes
    take the transaction path, where a hang before COMMIT certainly did nothing
    (IndexUnavailable, a 503 the SDK retries)."""
    dsn = own_postgres.create_database("doubt")

    async def go():
        index = await with_bucket(dsn, timeout=1.0)
        await index.put_object(obj("k"))
        _signal_server(own_postgres.pid, signal.SIGSTOP)
        try:
            with pytest.raises(IndexUnavailable):
                await index.get_object("b", "k")
            errors = []
            for call in (
                lambda: index.put_object(obj("k2")),
                lambda: index.delete_object("b", "k"),
            ):
                try:
                    await call()
                except (IndexUnavailable, OutcomeUnknown) as e:
                    errors.append(type(e).__name__)
        finally:
            _signal_server(own_postgres.pid, signal.SIGCONT)
        deadline = time.monotonic() + 20
        while True:
            try:
                await index.put_object(obj("k3"))
                break
            except IndexUnavailable:
                assert time.monotonic() < deadline, "no recovery"
                await asyncio.sleep(0.2)
        found = await index.get_object("b", "k3")
        await index.close()
        return errors, found

    errors, found = run(go())
    assert errors == ["IndexUnavailable", "IndexUnavailable"]
    assert found is not None


def test_multi_host_dsn_reaches_the_writable_host(postgres):
    """libpq's multi-host DSN passes through unchanged: the first host is down, the second
    is the primary (target_session_attrs=read-write), and the index works; the status
    location shows both hosts and no password."""
    dbname = postgres.new_database().rsplit("/", 1)[1]
    dsn = (
        f"host=127.0.0.1,127.0.0.1 port={free_port()},{postgres.server.port} dbname={dbname} "
        "user=postgres password=not-shown target_session_attrs=read-write"
    )

    async def go():
        index = await with_bucket(dsn)
        await index.put_object(obj("k"))
        found = await index.get_object("b", "k")
        where = index.describe()
        await index.close()
        return found, where

    found, where = run(go())
    assert found is not None
    assert "port=" in where["location"] and "target_session_attrs=read-write" in where["location"]
    assert "not-shown" not in str(where)


class _SkewedClock:
    """``time`` as a node whose clock is ``offset`` seconds off sees it."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def time(self) -> float:
        return time.time() + self.offset

    def __getattr__(self, name: str):
        return getattr(time, name)


def test_queues_run_on_the_index_clock_not_the_nodes(pg_dsn, monkeypatch):
    """Issue #13, clock skew: the repair and GC queues' due times come from PostgreSQL's
    clock. A node 10 minutes ahead queues a hinted copy: a node with the right time finds it
    due at once (on the writer's clock it waited 10 minutes). A node 10 minutes behind puts
    off a failed repair by 60 s: it is not due at once (on its clock it was 9 minutes
    overdue, a retry loop), and a blob it replaces is not collected before its grace."""
    from holdfast.index.postgres import engine as engine_module
    from holdfast.index.records import RepairTask

    async def go():
        index = PostgresIndex(pg_dsn, gc_grace_seconds=60.0)
        await index.start()
        try:
            await index.create_bucket(BucketRecord("b", "alice", time.time(), "us-east-1"))
            s = Segment("blob-skew", 10, 1 << 20, b"\0\0\0\1", ("n1/d0",))
            await index.put_object(ObjectRecord("b", "k", 10, '"e"', time.time(), [s]))
            with monkeypatch.context() as m:
                m.setattr(engine_module, "time", _SkewedClock(600))
                await index.queue_repairs([RepairTask(s.blob_id, "n2/d0", "copy", "t", s, "b/k")])
            (task,) = await index.due_repairs(["n2/d0"], 10)
            with monkeypatch.context() as m:
                m.setattr(engine_module, "time", _SkewedClock(-600))
                await index.defer_repair(task, time.time() - 600 + 60, "peer down")
                assert await index.due_repairs(["n2/d0"], 10) == []
                await index.delete_object("b", "k")  # the blob goes to the GC queue
                assert await index.due_garbage(10) == []
            assert await index.due_garbage(10) == []
            assert await index.due_garbage(10, now=time.time() + 61) == [("blob-skew", ["n1/d0"])]
        finally:
            await index.close()

    run(go())


def test_old_commit_tokens_are_pruned(pg_dsn, monkeypatch):
    """Every write commits a token (for resolving a lost COMMIT); old ones are deleted as
    the node writes, so the table stays small."""
    from holdfast.index.postgres import engine

    monkeypatch.setattr(engine, "PRUNE_EVERY", 3)
    monkeypatch.setattr(engine, "TOKEN_TTL", 0.0)

    async def go():
        index = await with_bucket(pg_dsn)  # write 1
        await index.put_object(obj("k1"))  # 2
        await index.put_object(obj("k2"))  # 3: then everything older than 0 s goes
        await asyncio.sleep(0.05)
        await index.put_object(obj("k3"))  # 4: its token stays
        await index.close()

    run(go())
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM commit_tokens").fetchone() == (1,)
