"""One flow-controlled queue for every background transfer (issue 13; holdfast/workers/
transfers.py), end to end on a 3-node cluster (PostgreSQL, mutual TLS) whose nodes run
with ``--repair-rate 1M``:

* a drain of n3 and a repair (copies lost on n2, queued as the scrubber would) run at the
  same time; the bytes of both together stay within the one limit in every one-second
  window (the leading process's per-second record, which must have counted both kinds'
  bytes, and, independently, the finished blob files appearing on the receiving drives);
* the cluster's cap on concurrent transfers (``layout rules --transfer-cap 2``) is held in
  the index: the slot table, sampled throughout, never holds more than 2 live slots, and
  the cluster's transfers do take slots;
* a crashed holder (two slots taken through the index by "a process" that then never
  renews or releases them) holds up every transfer until its leases expire, and then the
  cluster takes the slots: nothing moves without a slot, nothing waits forever.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config as BotoConfig

from holdfast.cluster.dev import DevCluster
from holdfast.config import Config
from holdfast.index import open_index
from holdfast.index.postgres.devserver import find_bin_dir
from holdfast.index.records import RepairTask

pytestmark = pytest.mark.skipif(find_bin_dir() is None, reason="no PostgreSQL binaries")

KIB = 1024
MIB = 1024 * KIB
RATE = MIB  # --repair-rate of every node: the queue's total, all kinds together
CAP = 2
CRASH_TTL = 5.0  # the crashed holder's leases
SIZE = 256 * KIB
COUNT = 18
BUCKET = "flow"


class FlowCluster(DevCluster):
    """``holdfast cluster dev``'s cluster, its nodes started with the test's flags."""

    extra: list[str] = []

    def _node(self, *args):  # type: ignore[no-untyped-def]
        node = super()._node(*args)
        node.argv = [*node.argv, *self.extra]
        return node


@pytest.fixture
def flow():
    # Directly under /tmp: PostgreSQL runs as the postgres user when the tests run as root.
    top = Path(tempfile.mkdtemp(prefix="holdfast-flow-"))
    top.chmod(0o755)
    c = FlowCluster(top / "c", 3)
    c.extra = [
        "--repair-rate", str(RATE),
        "--repair-concurrency", "2",
        "--scrub-rate", "0",  # the scrubber's reads are not transfers
        "--anti-entropy-interval", "0",
    ]  # fmt: skip
    try:
        c.start()
        yield c
    finally:
        c.stop()
        shutil.rmtree(top, ignore_errors=True)


def s3(c: FlowCluster, i: int):
    return boto3.client(
        "s3",
        endpoint_url=c.nodes[i].s3,
        aws_access_key_id=c.creds.access_key,
        aws_secret_access_key=c.creds.secret_key,
        region_name="us-east-1",
        config=BotoConfig(retries={"max_attempts": 3}),
    )


class Index:
    """The cluster's index, from the test (a loop of its own)."""

    def __init__(self, dsn: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.ix = open_index(Config(index_dsn=dsn), role="tool")
        self.run(self.ix.start())

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        method = getattr(self.ix, name)
        return lambda *a: self.run(method(*a))

    def close(self) -> None:
        self.run(self.ix.close())
        self.loop.close()


def cli(dsn: str, *args: str) -> None:
    from holdfast.cli import main

    assert main(["cluster", *args, "--index-dsn", dsn]) == 0, args


def blob_bytes(node) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Finished blob files on a node's drives (renamed into place whole)."""
    return {p.name: p.stat().st_size for p in Path(node.data).glob("**/blobs/*/*/*")}


def published(c: FlowCluster) -> dict:
    """The leading process's integrity status (it publishes every second)."""
    best: dict = {}
    for n in c.nodes:
        try:
            st = json.loads((Path(n.data) / "index" / "integrity-status.json").read_text())
        except (OSError, ValueError):
            continue
        if "transfers" in st and st.get("written_at", 0) > best.get("written_at", 0):
            best = st
    return best


def until(what: str, fn, timeout: float, every: float = 0.5):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not within {timeout:g}s: {what}")


def test_drain_and_repair_share_one_budget_and_the_cluster_cap(flow) -> None:
    c = flow
    ix = Index(c.dsn)
    try:
        _run(c, ix)
    finally:
        ix.close()


def _run(c: FlowCluster, ix: Index) -> None:
    n1, n2, n3 = c.nodes
    s3(c, 0).create_bucket(Bucket=BUCKET)

    def spread(key: str) -> set[str]:
        rec = ix.get_object(BUCKET, key)
        return {s.split("/")[0] for seg in rec.segments for s in seg.stores} if rec else set()

    # Every node's workers know the others' drives (heartbeats): a PUT through each lands
    # its copies on two nodes.
    for i in range(3):
        until(
            f"copies spread from {c.nodes[i].name}",
            lambda i=i: (
                s3(c, i).put_object(Bucket=BUCKET, Key="w", Body=b"w" * 70_000)
                and len(spread("w")) == 2
            ),
            60,
        )
    keys = [f"k{i:02d}" for i in range(COUNT)]
    for i, key in enumerate(keys):
        s3(c, i % 3).put_object(Bucket=BUCKET, Key=key, Body=uuid.uuid4().bytes * (SIZE // 16))
    until(
        "no repair owed", lambda: not ix.repairs(10) and all(len(spread(k)) == 2 for k in keys), 60
    )

    # The work: the copies on n3 drain; of the objects not on n3, the copy on n2 is lost.
    objects = {k: ix.get_object(BUCKET, k).segments[0] for k in keys}
    drained = [k for k, seg in objects.items() if any(s.startswith("n3/") for s in seg.stores)]
    lost = [k for k in keys if k not in drained]
    assert drained and lost, objects
    drain_bytes = sum(objects[k].size for k in drained)
    repair_bytes = sum(objects[k].size for k in lost)

    cli(c.dsn, "layout", "rules", "--drain-rate", str(RATE), "--transfer-cap", str(CAP))
    # A holder that crashed with both slots: its leases expire, nobody releases them.
    crashed = [
        ix.acquire_transfer_slot(CAP, "crashed/1", "repair", "n2", uuid.uuid4().hex, CRASH_TTL)
        for _ in range(CAP)
    ]
    crash_until = time.monotonic() + CRASH_TTL
    assert None not in crashed, crashed

    tasks = []
    for k in lost:
        seg = objects[k]
        (sid,) = [s for s in seg.stores if s.startswith("n2/")]
        for p in Path(n2.data).glob(f"**/blobs/*/*/{seg.blob_id}"):
            p.unlink()
        tasks.append(
            RepairTask(seg.blob_id, sid, "copy", "missing", segment=seg, ref=f"{BUCKET}/{k}")
        )
    ix.queue_repairs(tasks)
    cli(c.dsn, "node", "drain", n3.name)
    cli(c.dsn, "layout", "apply")

    base = {n.name: blob_bytes(n) for n in (n1, n2)}

    def received() -> int:
        """Bytes of the blob files the receiving nodes gained."""
        total = 0
        for n in (n1, n2):
            now = blob_bytes(n)
            total += sum(size for b, size in now.items() if b not in base[n.name])
        return total

    samples: list[tuple[float, int]] = []
    most_slots, holders, moved_during_crash = 0, set(), 0
    first_cluster_slot = None
    deadline = time.monotonic() + 150
    while True:
        slots = ix.transfer_slots()
        now = time.monotonic()
        got = received()
        samples.append((now, got))
        most_slots = max(most_slots, len(slots))
        ours = {s.holder for s in slots if s.holder != "crashed/1"}
        holders |= ours
        if ours and first_cluster_slot is None:
            first_cluster_slot = now
        if now < crash_until - 0.5:
            moved_during_crash = max(moved_during_crash, got)
        owed = ix.repairs(10)
        on_n3 = [k for k in drained if "n3" in spread(k)]
        if got >= drain_bytes + repair_bytes and not owed and not on_n3:
            break
        assert now < deadline, (got, drain_bytes + repair_bytes, len(owed), len(on_n3))
        time.sleep(0.25)

    # The crashed holder's slots held everything up, then expired.
    assert moved_during_crash == 0, moved_during_crash
    assert first_cluster_slot is not None and first_cluster_slot >= crash_until - 0.5
    # The cap: never more than CAP live slots; the cluster's transfers did take them.
    assert most_slots <= CAP, most_slots
    assert holders and all(h.split("/")[0] in {"n1", "n2", "n3"} for h in holders), holders

    # Independently, from the drives: the blob files appearing on the receivers. A file
    # appears whole when its copy ends, and its blocks were admitted up to a copy's
    # length before: a window sees at most a second's budget more, and one blob per slot.
    slack = RATE + CAP * SIZE
    for i, (t0, b0) in enumerate(samples):
        for t1, b1 in samples[i + 1 :]:
            assert b1 - b0 <= RATE * (t1 - t0) + slack, (b1 - b0, round(t1 - t0, 2), slack)
    # The one budget, every kind together: the leader's record, per second and sliding.
    time.sleep(2.5)  # its last second published
    st = published(c)
    record = st["repair"]["rate"]
    assert st["repair"]["limits"]["bytes_per_second"] == RATE
    assert record["busiest_window_bytes"] <= RATE, record["busiest_window_bytes"]
    assert max(b for _, b, _, _ in record["seconds"]) <= RATE
    # ... which counted both kinds' bytes (verification reads of the lost copies' targets
    # too), so it cannot have missed what it limits.
    admitted = st["transfers"]["admitted"]
    assert admitted["drain"]["bytes"] >= drain_bytes, admitted
    assert admitted["repair"]["bytes"] >= repair_bytes, admitted
    assert sum(b for _, b, _, _ in record["seconds"]) >= drain_bytes + repair_bytes
    assert st["transfers"]["cap"] == CAP and st["transfers"]["slot_waits"]["full"] >= 1

    moving = [t for t, b in samples if 0 < b < drain_bytes + repair_bytes]
    print(
        f"\ntransfers: {drain_bytes} drained + {repair_bytes} repaired at one limit of {RATE} "
        f"B/s; busiest 1-s window {record['busiest_window_bytes']}; slots at most {most_slots} "
        f"of {CAP}; first slot {first_cluster_slot - crash_until + CRASH_TTL:.1f}s after the "
        f"crashed holder's {CRASH_TTL:g}s leases began; moving for "
        f"{(max(moving) - min(moving)) if moving else 0:.1f}s"
    )

    # The API shows the queue: the slots and the cap from the index, what the leader admitted.
    leader = next(n for n in c.nodes if (Path(n.data) / "index").exists() and _leads(n, st))
    doc = api(c, leader, "/_holdfast/api/rebalance").json()
    assert doc["transfers"]["cap"] == CAP and doc["transfers"]["slots_used"] <= CAP
    assert doc["transfers"]["admitted"]["drain"]["bytes"] >= drain_bytes, doc


def _leads(node, st: dict) -> bool:  # type: ignore[no-untyped-def]
    try:
        mine = json.loads((Path(node.data) / "index" / "integrity-status.json").read_text())
    except (OSError, ValueError):
        return False
    return mine.get("pid") == st.get("pid") and "transfers" in mine


def api(c: FlowCluster, node, path: str):  # type: ignore[no-untyped-def]
    import requests
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = f"{node.s3}{path}"
    req = AWSRequest(method="GET", url=url)
    creds = Credentials(c.creds.access_key, c.creds.secret_key)
    S3SigV4Auth(creds, "s3", "us-east-1").add_auth(req)
    r = requests.get(url, headers=dict(req.headers), timeout=10)
    assert r.status_code == 200, r.text
    return r
