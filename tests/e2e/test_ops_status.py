"""Status, readiness and health keep answering from memory while the index and a drive are
broken (DESIGN.md invariant 6, the S3 2017 status-page lesson), and say what is wrong."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import pytest
import requests

from tests.conftest import start_server
from tests.e2e.ops_helpers import ROOT_ENV, holdfast, status, status_headers, wait_for

LOCKER = textwrap.dedent(
    """
    import sqlite3, sys, time
    db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
    db.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    sys.stdin.read()  # hold the lock until the test closes our stdin
    """
)


@pytest.fixture
def node(tmp_path):
    # SQLite: a test locks its file to show status answering while the index is stuck.
    server = start_server(
        tmp_path, drives=2, index="sqlite", extra_args=["--status-refresh", "0.3"]
    )
    yield server
    server.stop()


def problems(doc: dict) -> str:
    return " | ".join(p["what"] for p in doc["problems"])


def test_status_json_html_ready_and_cli(node):
    s3 = node.client()
    s3.create_bucket(Bucket="status-bucket")
    s3.put_object(Bucket="status-bucket", Key="k", Body=b"x" * 100)

    def refreshed_everywhere():
        docs = [status(node) for _ in range(6)]  # answers come from either worker
        return docs[-1] if all(d["index"].get("readable") for d in docs) else None

    doc = wait_for(refreshed_everywhere, 15, "a refresh in every worker")
    assert doc["state"] == "ok", problems(doc)
    assert [d["id"] for d in doc["drives"]] == ["d0", "d1"]
    assert all(d["state"] == "ok" and d["total_bytes"] > 0 for d in doc["drives"])
    assert doc["capacity"]["drives_ok"] == 2
    assert doc["node"]["version"] and doc["uptime_seconds"] >= 0
    assert doc["config"]["workers"] == 2 and doc["config"]["data_dirs"] == [
        str(d) for d in node.data_dirs
    ]
    for section in ("traffic", "repair", "scrub", "gc", "corruption", "alerts", "request_log"):
        assert section in doc, section
    by_accept = requests.get(
        f"{node.endpoint}/_holdfast/status",
        headers={"Accept": "application/json", **status_headers(node, "/_holdfast/status")},
        timeout=2,
    )
    assert by_accept.headers["content-type"].startswith("application/json")
    page = requests.get(
        f"{node.endpoint}/_holdfast/status",
        headers=status_headers(node, "/_holdfast/status"),
        timeout=2,
    )
    assert page.headers["content-type"].startswith("text/html")
    assert "Holdfast" in page.text and "d1" in page.text and "<script" not in page.text
    assert requests.get(f"{node.endpoint}/_holdfast/ready", timeout=2).json()["ready"] is True

    cli = holdfast("admin", "status", "--endpoint", node.endpoint, env=ROOT_ENV)
    assert cli.returncode == 0, cli.stderr
    assert "DRIVE" in cli.stdout and "d1" in cli.stdout and "state OK" in cli.stdout
    as_json = holdfast("admin", "status", "--endpoint", node.endpoint, "--json", env=ROOT_ENV)
    assert as_json.returncode == 0
    unreachable = holdfast("admin", "status", "--endpoint", "http://127.0.0.1:9", "--timeout", "1")
    assert unreachable.returncode == 3 and "cannot get status" in unreachable.stderr


def test_status_answers_while_index_locked_and_drive_gone(node, tmp_path):
    s3 = node.client(retries={"max_attempts": 1}, read_timeout=60)
    s3.create_bucket(Bucket="broken")
    s3.put_object(Bucket="broken", Key="k", Body=b"data")
    wait_for(lambda: status(node)["state"] == "ok", 10, "a healthy node")

    index_db = node.data_dirs[0] / "index" / "holdfast.db"
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(index_db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    gone = tmp_path / "drive1-pulled"
    try:
        assert locker.stdout.readline().strip() == "locked"
        node.data_dirs[1].rename(gone)  # the drive is pulled
        # A write is now stuck on the index lock in a worker's thread pool; ops must not be.
        threading.Thread(
            target=lambda: _ignore(lambda: s3.put_object(Bucket="broken", Key="k2", Body=b"y")),
            daemon=True,
        ).start()

        def broken():
            doc = status(node)
            text = problems(doc)
            return doc if "index not writable" in text and "drive d1 missing" in text else None

        def all_workers_broken():
            # Each worker refreshes its own snapshot (every 2 s); connections land on either
            # worker, so wait until several answers in a row agree.
            docs = [broken() for _ in range(6)]
            return docs[-1] if all(docs) else None

        doc = wait_for(all_workers_broken, 15, "status to report the lock and the pulled drive")
        assert doc["state"] == "critical"
        assert doc["index"]["state"] == "not writable"
        assert "locked" in doc["index"]["error"]
        for _ in range(20):  # every answer is fast, whichever worker gives it
            started = time.monotonic()
            doc = status(node, timeout=2.0)
            assert time.monotonic() - started < 1.0  # generous: the machine may be busy
            assert doc["state"] == "critical"
        ready = requests.get(f"{node.endpoint}/_holdfast/ready", timeout=1)
        assert ready.status_code == 503
        assert any("index not writable" in r for r in ready.json()["reasons"])
        assert requests.get(f"{node.endpoint}/_holdfast/health", timeout=1).status_code == 200
        metrics = requests.get(
            f"{node.endpoint}/_holdfast/metrics",
            headers=status_headers(node, "/_holdfast/metrics"),
            timeout=2,
        )
        assert metrics.status_code == 200
        assert "holdfast_index_writable 0.0" in metrics.text
        assert 'holdfast_drive_up{drive="d1"' in metrics.text
        page = requests.get(
            f"{node.endpoint}/_holdfast/status",
            headers=status_headers(node, "/_holdfast/status"),
            timeout=1,
        )
        assert "index not writable" in page.text and "drive d1 missing" in page.text
        cli = holdfast("admin", "status", "--endpoint", node.endpoint, env=ROOT_ENV)
        assert cli.returncode == 4 and "CRITICAL" in cli.stdout
    finally:
        locker.stdin.close()
        locker.wait(timeout=10)

    # The index file itself gone (moved away): "unreachable", not a hang.
    index_dir = node.data_dirs[0] / "index"
    moved = node.data_dirs[0] / "index-moved"
    index_dir.rename(moved)
    try:

        def unreachable_everywhere():
            docs = [status(node) for _ in range(6)]  # answers come from either worker
            return docs[-1] if all("index unreachable" in problems(d) for d in docs) else None

        doc = wait_for(unreachable_everywhere, 15, "status to report the missing index")
        assert doc["index"]["state"] == "unreachable"
    finally:
        moved.rename(index_dir)
    gone.rename(node.data_dirs[1])
    wait_for(lambda: status(node)["state"] == "ok", 10, "recovery to be seen")


def _ignore(fn) -> None:
    try:
        fn()
    except Exception:
        pass
