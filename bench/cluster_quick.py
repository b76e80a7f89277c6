"""PUT and GET throughput through a 3-node ``holdfast cluster dev`` (issue #17), with
bounded counts: 4 KiB objects (ops/s) and 64 MiB objects (MiB/s), requests spread round
robin over the nodes, so most GETs of a 2-copy object on 3 nodes are served locally and
about one in three from another node.

    python bench/cluster_quick.py                      # starts a dev cluster in a temp dir
    python bench/cluster_quick.py --cluster-json DIR/cluster.json   # an existing one

Loopback only; everything shares this machine's cores with the three nodes and PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
from botocore.config import Config as BotoConfig


def start_cluster(top: Path) -> tuple[subprocess.Popen, dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOLDFAST_")}
    log = open(top / "dev.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "holdfast.cli", "cluster", "dev", "--nodes", "3", "--dir",
         str(top / "c")],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while "Ctrl-C stops it" not in (top / "dev.log").read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("cluster dev did not start: " + (top / "dev.log").read_text())
        time.sleep(0.3)
    time.sleep(5)  # heartbeats: each node's workers learn the others' drives
    return proc, json.loads((top / "c" / "cluster.json").read_text())


def clients(doc: dict, pool: int) -> list:
    return [
        boto3.client(
            "s3",
            endpoint_url=n["s3"],
            aws_access_key_id=doc["access_key"],
            aws_secret_access_key=doc["secret_key"],
            region_name="us-east-1",
            config=BotoConfig(max_pool_connections=pool),
        )  # fmt: skip
        for n in doc["nodes"]
    ]


def run(cs: list, bucket: str, size: int, count: int, threads: int) -> tuple[float, float]:
    body = os.urandom(size)
    keys = [f"o{size}-{i}" for i in range(count)]

    def put(i: int) -> None:
        cs[i % len(cs)].put_object(Bucket=bucket, Key=keys[i], Body=body)

    def get(i: int) -> None:
        data = cs[(i + 1) % len(cs)].get_object(Bucket=bucket, Key=keys[i])["Body"].read()
        assert len(data) == size

    out = []
    for fn in (put, get):
        t = time.perf_counter()
        with ThreadPoolExecutor(threads) as ex:
            list(ex.map(fn, range(count)))
        out.append(time.perf_counter() - t)
    return out[0], out[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cluster-json", help="use this running cluster instead of starting one")
    ap.add_argument("--small-count", type=int, default=600)
    ap.add_argument("--large-count", type=int, default=6)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--large-threads", type=int, default=2, help="concurrent 64 MiB requests")
    ap.add_argument("--only-large", action="store_true", help="skip the 4 KiB objects")
    args = ap.parse_args()
    proc, top = None, None
    if args.cluster_json:
        doc = json.loads(Path(args.cluster_json).read_text())
    else:
        top = Path(tempfile.mkdtemp(prefix="holdfast-bench-"))
        top.chmod(0o755)
        proc, doc = start_cluster(top)
    try:
        cs = clients(doc, args.threads)
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        cs[0].create_bucket(Bucket=bucket)
        n = args.small_count
        if not args.only_large:
            p, g = run(cs, bucket, 4096, n, args.threads)
            print(
                f"4 KiB  x{n}: PUT {n / p:7.1f} ops/s  GET {n / g:7.1f} ops/s  "
                f"({args.threads} threads)"
            )
        n = args.large_count
        mib = 64 * n
        t = args.large_threads
        p, g = run(cs, bucket, 64 * 1024 * 1024, n, t)
        print(
            f"64 MiB x{n}: PUT {mib / p:7.1f} MiB/s GET {mib / g:7.1f} MiB/s  ({t} threads; "
            f"PUT {p / n * t:.2f} s per object)"
        )
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
