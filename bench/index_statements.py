"""Index statements and round trips per S3 request, on one node with its index on PostgreSQL.

    python bench/index_statements.py                 # GET, HEAD, LIST (1,000 a page), PUT
    python bench/index_statements.py --count 500 --keep

Starts a PostgreSQL of its own (holdfast/index/postgres/devserver.py) with
``pg_stat_statements``, one ``holdfast serve --index-dsn`` (one worker) of this checkout,
writes a few objects, then for each request kind: resets the statistics, sends ``--count``
requests with boto3 (SigV4 headers, as SDKs sign), and prints the statements the node's
connections ran per request (``calls`` summed over ``pg_stat_statements``, the reset itself
the node's background work left out: only statements run at least every other request
count), and the server CPU per request: the node's process tree
and PostgreSQL's (its backends included), from /proc, over those requests. ``--code DIR``
runs another checkout's code (e.g. ``git archive`` of an older commit) against the same
client, for a before/after on the same machine. Loopback only; bounded by ``--count``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import psycopg
import requests
from botocore.config import Config as BotoConfig

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))

from procs import tree_cpu_seconds  # noqa: E402

from holdfast.index.postgres.devserver import DevPostgres  # noqa: E402

AK, SK = "bench-stmts-access", "bench-stmts-secret-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def statements(dsn: str) -> list[tuple[int, str]]:
    with psycopg.connect(dsn, autocommit=True) as c:
        rows = c.execute(
            "SELECT calls, query FROM pg_stat_statements s JOIN pg_database d "
            "ON d.oid = s.dbid WHERE d.datname = current_database() ORDER BY calls DESC"
        ).fetchall()
    return [(int(n), q) for n, q in rows if "pg_stat_statements" not in q]


def reset(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("SELECT pg_stat_statements_reset()")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--keep", action="store_true")
    p.add_argument("--code", type=Path, default=ROOT, help="the checkout the node runs")
    p.add_argument("--kinds", default="GET,HEAD,LIST page,PUT")
    args = p.parse_args()
    top = Path(tempfile.mkdtemp(prefix="holdfast-stmts-"))
    top.chmod(0o711)  # PostgreSQL may run as its own user
    pg = DevPostgres(
        top / "pg",
        settings={
            "shared_preload_libraries": "pg_stat_statements",
            "pg_stat_statements.track": "all",
        },
    ).start()
    server = None
    try:
        dsn = pg.create_database("stmts")
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("CREATE EXTENSION pg_stat_statements")
        port = free_port()
        env = {**os.environ, "HOLDFAST_ACCESS_KEY": AK, "HOLDFAST_SECRET_KEY": SK}
        env["PYTHONPATH"] = str(args.code)
        log = open(top / "server.log", "wb")  # noqa: SIM115
        server = subprocess.Popen(
            [sys.executable, "-m", "holdfast.cli", "serve", "--listen", f"127.0.0.1:{port}",
             "--data", str(top / "data"), "--index-dsn", dsn, "--workers", "1"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=args.code,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/_holdfast/health", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        s3 = boto3.client(
            "s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id=AK,
            aws_secret_access_key=SK, region_name="us-east-1",
            config=BotoConfig(retries={"max_attempts": 1}),
        )  # fmt: skip
        s3.create_bucket(Bucket="bench")
        keys = [f"k{i:05d}" for i in range(min(args.count, 1000))]
        for k in keys:
            s3.put_object(Bucket="bench", Key=k, Body=b"x" * 4096)
        n = args.count
        kinds = {
            "GET": lambda i: s3.get_object(Bucket="bench", Key=keys[i % len(keys)])["Body"].read(),
            "HEAD": lambda i: s3.head_object(Bucket="bench", Key=keys[i % len(keys)]),
            "LIST page": lambda i: s3.list_objects_v2(Bucket="bench", MaxKeys=1000),
            "PUT": lambda i: s3.put_object(Bucket="bench", Key=f"new{i}", Body=b"y" * 4096),
        }
        assert pg.pid is not None
        for name in args.kinds.split(","):
            fn = kinds[name]
            for i in range(20):
                fn(i)
            reset(dsn)
            cpu = tree_cpu_seconds(server.pid) + tree_cpu_seconds(pg.pid)
            t0 = time.perf_counter()
            for i in range(n):
                fn(i)
            wall = time.perf_counter() - t0
            cpu = tree_cpu_seconds(server.pid) + tree_cpu_seconds(pg.pid) - cpu
            rows = [(c, q) for c, q in statements(dsn) if c > 1]
            # A statement run at least every other request is the request's; the rest is the
            # node's background work (health, queues), which a slow run accumulates.
            total = sum(c for c, _ in rows if c * 2 >= n)
            print(
                f"{name}: {total / n:.2f} statements per request, server CPU "
                f"{cpu / n * 1000:.2f} ms per request (node + PostgreSQL), "
                f"{wall / n * 1000:.2f} ms wall (one at a time)"
            )
            for c, q in rows:
                print(f"    {c / n:5.2f}  {' '.join(q.split())[:150]}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(20)
        pg.stop()
        if not args.keep:
            shutil.rmtree(top, ignore_errors=True)
        else:
            print(f"kept {top}")


if __name__ == "__main__":
    main()
