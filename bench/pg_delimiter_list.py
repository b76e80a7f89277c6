"""ListObjectsV2 with a delimiter on a node whose index is PostgreSQL (issue #17): how long a
page takes, and how many index statements it costs.

A bucket of ``--prefixes`` x ``--per-prefix`` keys (default 500 x 10 = 5,000) is loaded
straight into the index, then ``--rounds`` full listings with ``Delimiter=/`` are timed
through boto3 against a real ``holdfast serve --index-dsn``. PostgreSQL logs every statement
(``log_min_duration_statement=0``), so the statements that read the object table during the
listings are counted from its log: that is the number of index round trips.

    python bench/pg_delimiter_list.py [--prefixes 500] [--per-prefix 10] [--rounds 20]

Loopback only; the node, PostgreSQL and the client share this machine's cores.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import requests

from holdfast.config import Config
from holdfast.index.blocking import open_blocking
from holdfast.index.postgres.devserver import DevPostgres, free_port
from holdfast.index.records import BucketRecord, ObjectRecord, Segment
from holdfast.service.users import ROOT_USER
from holdfast.stores.blocks import BlockChecksummer

AK, SK = "benchlistkey", "benchlistsecret0123456789"
BUCKET = "bench-delim"


def load(config: Config, prefixes: int, per_prefix: int) -> None:
    index = open_blocking(config)
    now = time.time()
    index.create_bucket(BucketRecord(BUCKET, ROOT_USER, now, config.region))
    body = b"x" * 16
    blocks = BlockChecksummer(config.block_size)
    blocks.update(body)
    segment = Segment("inline", len(body), config.block_size, blocks.finish(), ())
    etag = f'"{hashlib.md5(body).hexdigest()}"'
    index.import_objects(
        ObjectRecord(BUCKET, f"p{p:04d}/k{k:03d}", len(body), etag, now, [segment], inline=body)
        for p in range(prefixes)
        for k in range(per_prefix)
    )
    index.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prefixes", type=int, default=500)
    ap.add_argument("--per-prefix", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hf-pglist-") as top:
        top_path = Path(top)
        os.chmod(top_path, 0o755)  # PostgreSQL runs as postgres when we are root
        pg = DevPostgres(top_path / "pg", settings={"log_min_duration_statement": "0"}).start()
        try:
            data = top_path / "data"
            config = Config(data_dirs=[str(data)], index_dsn=pg.dsn())
            load(config, args.prefixes, args.per_prefix)
            port = free_port()
            env = {**os.environ, "HOLDFAST_ACCESS_KEY": AK, "HOLDFAST_SECRET_KEY": SK}
            cmd = [sys.executable, "-m", "holdfast.cli", "serve", "--listen",
                   f"127.0.0.1:{port}", "--data", str(data), "--index-dsn", pg.dsn(),
                   "--workers", "1"]  # fmt: skip
            node = subprocess.Popen(
                cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            try:
                endpoint = f"http://127.0.0.1:{port}"
                deadline = time.monotonic() + 60
                while True:
                    try:
                        if requests.get(f"{endpoint}/_holdfast/health", timeout=1).ok:
                            break
                    except requests.RequestException:
                        pass
                    if time.monotonic() > deadline:
                        raise SystemExit("node did not start")
                    time.sleep(0.2)
                s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=AK,
                                  aws_secret_access_key=SK, region_name="us-east-1")  # fmt: skip
                first = s3.list_objects_v2(Bucket=BUCKET, Delimiter="/")  # warm the pool
                assert len(first.get("CommonPrefixes", [])) == min(args.prefixes, 1000)
                log_start = pg.log_path.stat().st_size
                times = []
                for _ in range(args.rounds):
                    t0 = time.perf_counter()
                    page = s3.list_objects_v2(Bucket=BUCKET, Delimiter="/")
                    times.append(time.perf_counter() - t0)
                    assert len(page.get("CommonPrefixes", [])) == min(args.prefixes, 1000)
                with open(pg.log_path, "rb") as f:
                    f.seek(log_start)
                    logged = f.read().decode(errors="replace")
                statements = sum(
                    1
                    for line in logged.splitlines()
                    if "execute" in line and "FROM objects" in line and "key" in line
                )
            finally:
                node.terminate()
                node.wait(timeout=30)
        finally:
            pg.stop()
    keys = args.prefixes * args.per_prefix
    print(f"bucket: {keys} keys in {args.prefixes} prefixes; {args.rounds} LISTs, Delimiter=/")
    print(
        f"LIST latency: median {statistics.median(times) * 1000:.1f} ms, "
        f"min {min(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms"
    )
    print(f"index statements on the object table per LIST: {statements / args.rounds:.1f}")


if __name__ == "__main__":
    main()
