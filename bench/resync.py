"""Issue 13's re-sync ratio on a 3-node ``holdfast cluster dev``: a node is away while N
objects are written, its hint log is deleted, then it comes back. Anti-entropy (hash trees
of the index and of the node's drive) must find what it missed; the figure is the bytes
copied to it (the repair workers' counter, summed over the nodes) over the bytes it missed
(every blob the index says it should hold and its drive lacks, counted before it returns).

    python bench/resync.py                   # 300 objects before, 200 while away
    python bench/resync.py --before 1000 --during 500

Loopback only, bounded counts; nothing is timed except the wall clock of the re-sync,
which is shown for information (two shared cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cluster_quick import clients, start_cluster  # noqa: E402
from holdfast.config import Config  # noqa: E402
from holdfast.index import open_index  # noqa: E402


def index_call(dsn: str, fn):
    async def go():
        index = open_index(Config(index_dsn=dsn), role="tool")
        await index.start()
        try:
            return await fn(index)
        finally:
            await index.close()

    return asyncio.run(go())


def metric(doc: dict, node: dict, name: str) -> float:
    url = node["s3"] + "/_holdfast/metrics"
    req = AWSRequest(method="GET", url=url)
    creds = Credentials(doc["access_key"], doc["secret_key"])
    S3SigV4Auth(creds, "s3", "us-east-1").add_auth(req)
    try:
        text = requests.get(url, headers=dict(req.headers), timeout=5).text
    except requests.RequestException:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + " ") or line.startswith(name + "{")
    )


def owed(doc: dict, node: dict) -> tuple[dict[str, int], int]:
    """(blobs the node should hold and lacks, bytes the node should hold in all)."""
    held = {p.name for p in Path(node["data"]).glob("**/blobs/*/*/*")}

    async def scan(ix):
        out, total, after = {}, 0, None
        while True:
            batch = await ix.scan_objects(after, 1000)
            for obj in batch:
                for seg in obj.segments:
                    if any(s.startswith(node["name"] + "/") for s in seg.stores):
                        total += seg.size
                        if seg.blob_id not in held:
                            out[seg.blob_id] = seg.size
            if len(batch) < 1000:
                return out, total
            after = (batch[-1].bucket, batch[-1].key)

    return index_call(doc["index"]["dsn"], scan)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=int, default=300, help="objects written first")
    ap.add_argument("--during", type=int, default=200, help="objects written while away")
    ap.add_argument("--min-size", type=int, default=16 * 1024)
    ap.add_argument("--max-size", type=int, default=512 * 1024)
    args = ap.parse_args()
    top = Path(tempfile.mkdtemp(prefix="holdfast-resync-"))
    top.chmod(0o755)
    proc, doc = start_cluster(top)
    restarted = None
    try:
        nodes = doc["nodes"]
        victim, others = nodes[2], nodes[:2]
        dsn = doc["index"]["dsn"]
        cs = clients(doc, 4)
        bucket = f"resync-{uuid.uuid4().hex[:8]}"
        cs[0].create_bucket(Bucket=bucket)
        index_call(dsn, lambda ix: ix.set_bucket_policy(bucket, 3, 1))
        time.sleep(4)  # every worker process reloads bucket policies every couple of seconds
        rnd = random.Random(1)

        def put(key: str, client) -> None:
            client.put_object(
                Bucket=bucket, Key=key, Body=os.urandom(rnd.randrange(args.min_size, args.max_size))
            )

        for i in range(args.before):
            put(f"a{i}", cs[i % 3])
        deadline = time.monotonic() + 120
        while owed(doc, victim)[0]:
            if time.monotonic() > deadline:
                raise SystemExit("the first objects never reached all three nodes")
            time.sleep(1)
        os.killpg(victim["pid"], signal.SIGKILL)
        for i in range(args.during):
            put(f"b{i}", cs[i % 2])
        with psycopg.connect(dsn, autocommit=True) as conn:
            hints = conn.execute(
                "DELETE FROM repair_queue WHERE store_id LIKE %s", (victim["name"] + "/%",)
            ).rowcount
        missed, should_hold = owed(doc, victim)
        missed_bytes = sum(missed.values())
        before = sum(metric(doc, n, "holdfast_repair_bytes_total") for n in others)
        ranges0 = sum(metric(doc, n, "holdfast_anti_entropy_ranges_compared_total") for n in others)
        log = open(top / "restarted.log", "wb")  # noqa: SIM115
        t0 = time.monotonic()
        restarted = subprocess.Popen(
            victim["argv"], env=dict(victim["env"]), start_new_session=True, stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        victim["pid"] = restarted.pid
        deadline = time.monotonic() + 600
        while owed(doc, victim)[0]:
            if time.monotonic() > deadline:
                raise SystemExit("the node never re-synced")
            time.sleep(1)
        seconds = time.monotonic() - t0
        time.sleep(2)
        copied = sum(metric(doc, n, "holdfast_repair_bytes_total") for n in nodes) - before
        ranges = sum(metric(doc, n, "holdfast_anti_entropy_ranges_compared_total") for n in nodes)
        result = {
            "objects_before": args.before,
            "objects_while_away": args.during,
            "hint_rows_deleted": hints,
            "blobs_missed": len(missed),
            "bytes_missed": missed_bytes,
            "bytes_node_should_hold": should_hold,
            "bytes_copied": int(copied),
            "ratio": round(copied / missed_bytes, 4) if missed_bytes else None,
            "ranges_compared": int(ranges - ranges0),
            "seconds_to_resync": round(seconds, 1),
        }
        print(json.dumps(result, indent=2))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        if restarted is not None and restarted.poll() is None:
            os.killpg(restarted.pid, signal.SIGTERM)
            restarted.wait(60)
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
