"""The index's PostgreSQL dies under a serving node while clients write (issue #17, high
availability): requests meanwhile get 503 ServiceUnavailable, never a 500 (a PUT whose
COMMIT was in flight learns afterwards from its commit token whether it committed), writes
resume by themselves, and every acknowledged PUT reads back with its bytes.

* Quick (default run): the node's own PostgreSQL is SIGKILLed and started again.
* Slow: etcd plus two Patroni-managed PostgreSQL servers in ``synchronous_mode``; the
  primary's PostgreSQL is SIGKILLed and Patroni promotes the synchronous standby. The node
  is on the multi-host DSN with ``target_session_attrs=read-write`` (docs/cluster.md).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from holdfast.index.postgres.devserver import DevPostgres
from tests.conftest import Server, free_port
from tests.patroni import PatroniCluster, PatroniUnavailable, kill_postgres
from tests.write_load import Load, client_factory


def _node(tmp_path: Path, dsn: str) -> Server:
    """A node on ``dsn``, with a generous start-up bound: the machine is shared."""
    node = Server(data_dirs=[tmp_path / "drive0"], port=free_port(), index_dsn=dsn)
    try:
        return node.start(90)
    except BaseException:
        node.stop()  # a start that timed out leaves the process running
        raise


def _report(load: Load, label: str) -> str:
    return (
        f"{label}: acknowledged {load.acked_count()}, failed after retries {len(load.failed)}, "
        f"answers {dict(load.statuses())}, unknown outcomes {len(load.outcome_unknown())}"
    )


def _check(load: Load, s3) -> None:
    bad = load.server_errors()
    assert not bad, [(a.status, a.code, a.message) for a in bad[:5]]
    checked, problems = load.check_readback(s3)
    assert not problems, problems[:10]
    assert checked >= load.acked_count() > 0


def test_postgres_killed_and_restarted_under_writes(postgres, tmp_path):
    """SIGKILL of the node's PostgreSQL during PUTs, then the same server started again:
    503s meanwhile, never a 500, writes resume, nothing acknowledged lost.
    (synchronous_commit stays on: an acknowledged commit is in the WAL, which the kernel
    keeps when the processes die.)"""
    pg = DevPostgres(
        Path(tempfile.mkdtemp(prefix="holdfast-test-pg-kill-")),
        settings={"synchronous_commit": "on"},
    ).start()
    node = None
    try:
        node = _node(tmp_path, pg.create_database("node"))
        s3 = node.client()
        s3.create_bucket(Bucket="kill")
        load = Load(client_factory(node), "kill", writers=3, sizes=(1024, 64 * 1024)).start()
        try:
            load.wait_acked(10, timeout=60)
            killed_at = time.monotonic()
            kill_postgres(pg.pid)
            pg.proc.wait(10)
            pg.proc = None
            time.sleep(1.0)  # long enough for requests to find the engine gone
            pg.start()
            load.wait_acked(10, timeout=60)
        finally:
            load.stop()
        print(_report(load, "restart"), "resumed after", load.first_ok_after(killed_at))
        assert load.statuses()[(503, "ServiceUnavailable")] > 0, dict(load.statuses())
        _check(load, s3)
    finally:
        if node is not None:
            node.stop()
        pg.stop()
        shutil.rmtree(pg.root, ignore_errors=True)


@pytest.fixture
def patroni_cluster():
    root = Path(tempfile.mkdtemp(prefix="holdfast-test-patroni-"))
    cluster = PatroniCluster(root, members=2)
    try:
        cluster.start()
    except PatroniUnavailable as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(e))
    yield cluster
    cluster.stop()
    shutil.rmtree(root, ignore_errors=True)


# How long writes may stop: Patroni notices the crash within loop_wait (1 s) and hands the
# leader key over; the standby promotes; the node's pool finds the new primary (backoff
# up to a few seconds). Generous, for a loaded 2-core machine; the figure is printed.
RESUME_BOUND = 45.0


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_patroni_failover_under_writes(patroni_cluster: PatroniCluster, tmp_path):
    cluster = patroni_cluster
    node = _node(tmp_path, cluster.create_database("holdfast"))
    try:
        s3 = node.client()
        s3.create_bucket(Bucket="failover")
        load = Load(client_factory(node), "failover", writers=4).start()
        try:
            load.wait_acked(100, timeout=120)
            old = cluster.primary()
            killed_at = time.monotonic()
            cluster.kill_primary_postgres()
            new = cluster.wait_primary(120, other_than=old)
            promoted = time.monotonic() - killed_at
            deadline = time.monotonic() + RESUME_BOUND
            while load.first_ok_after(killed_at) is None and time.monotonic() < deadline:
                time.sleep(0.2)
            load.wait_acked(100, timeout=120)
        finally:
            load.stop()
        resumed = load.first_ok_after(killed_at)
        print(
            _report(load, "failover"),
            f"; {old.name} -> {new.name}: promoted after {promoted:.1f} s, "
            f"writes resumed after {resumed} s, outage {load.outage_after(killed_at)}",
        )
        assert resumed is not None and resumed < RESUME_BOUND, resumed
        _check(load, s3)
    finally:
        node.stop()
