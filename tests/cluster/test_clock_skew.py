"""Clock skew (issue #13): a 3-node cluster (network namespaces, tests/cluster/nemesis.py)
where n2's wall clock is 5 minutes behind and n3's 5 minutes ahead (tests/cluster/skewclock:
every time.time and datetime.now of their processes is off). The design's answer: order
comes from the index's commit, never from a node's clock (Garage's Jepsen runs found objects
written with a future timestamp that could never be overwritten), leases are PostgreSQL
sessions, liveness is judged on each node's own clock (a heartbeat's arrival), and the
queues' due times are on the index's clock (tests/contract/test_postgres_engine.py).

What a skewed node does differently, and is allowed to: it judges a request's SigV4 time on
its own clock (a client 5 minutes off it is inside S3's 15-minute window; one past it gets
RequestTimeTooSkewed, a 403, never a 500), and it stamps Last-Modified from its own clock.
"""

from __future__ import annotations

import datetime
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from holdfast.index.postgres.devserver import find_bin_dir
from tests.cluster import netns
from tests.cluster.nemesis import REPO, NetCluster

WHY_NOT = netns.unavailable()
pytestmark = [
    pytest.mark.skipif(find_bin_dir() is None, reason="no PostgreSQL binaries"),
    pytest.mark.skipif(WHY_NOT is not None, reason=f"no network namespaces: {WHY_NOT}"),
]

SKEW = 300.0
SKEWCLOCK = str(Path(__file__).parent / "skewclock")


@pytest.fixture(scope="module")
def cluster():
    root = Path(tempfile.mkdtemp(prefix="holdfast-skew-"))
    root.chmod(0o711)
    net = netns.Net(3, tag=30 + (hash(root) % 150))
    c = NetCluster(root / "c", net)
    for i, offset in ((1, -SKEW), (2, SKEW)):
        c.extra_env[i] = {
            "PYTHONPATH": f"{REPO}:{SKEWCLOCK}",
            "FAKE_CLOCK_OFFSET_SECONDS": str(offset),
        }
    try:
        net.up()
        c.start()
        c.client(0).create_bucket(Bucket="skew")
        yield c
    finally:
        try:
            c.stop()
        finally:
            net.down()
            shutil.rmtree(root, ignore_errors=True)


def _body(s3, key: str, bucket: str = "skew") -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def test_the_skewed_nodes_clocks_are_off(cluster) -> None:
    """The harness itself: the nodes' own Date headers say their clocks are off."""
    now = time.time()
    for i, offset in ((0, 0), (1, -SKEW), (2, SKEW)):
        date = cluster.client(i).head_bucket(Bucket="skew")["ResponseMetadata"]["HTTPHeaders"][
            "date"
        ]
        seen = datetime.datetime.strptime(date, "%a, %d %b %Y %H:%M:%S GMT").replace(
            tzinfo=datetime.UTC
        )
        assert abs(seen.timestamp() - now - offset) < 30, (i, date)


def test_liveness_ignores_skew(cluster) -> None:
    deadline = time.monotonic() + 60
    while True:
        states = {
            (cluster.names[i], peer): p["state"]
            for i in range(3)
            for peer, p in cluster.status(i)["cluster"]["peers"].items()
        }
        if all(s == "up" for s in states.values()):
            return
        assert time.monotonic() < deadline, states
        time.sleep(1)


def test_the_last_commit_wins_whatever_the_clocks(cluster) -> None:
    """Writes to one key alternate between the node ahead, the node behind and the right
    one; after each, every node reads the last one written (read-after-write), and a
    delete through the node behind removes what the node ahead wrote."""
    s3 = [cluster.client(i) for i in range(3)]
    for round_, writer in enumerate([2, 0, 2, 1, 2, 1, 0]):
        body = f"round {round_} by n{writer + 1}".encode()
        s3[writer].put_object(Bucket="skew", Key="k", Body=body)
        for i in range(3):
            assert _body(s3[i], "k") == body, (round_, writer, i)
    s3[2].put_object(Bucket="skew", Key="gone", Body=b"from the future")
    s3[1].delete_object(Bucket="skew", Key="gone")
    for i in range(3):
        with pytest.raises(ClientError) as e:
            s3[i].get_object(Bucket="skew", Key="gone")
        assert e.value.response["Error"]["Code"] == "NoSuchKey"
        keys = [o["Key"] for o in s3[i].list_objects_v2(Bucket="skew").get("Contents", [])]
        assert "gone" not in keys and "k" in keys


def test_versions_are_ordered_by_commit_not_by_clock(cluster) -> None:
    s3 = [cluster.client(i) for i in range(3)]
    s3[0].create_bucket(Bucket="skewv")
    s3[0].put_bucket_versioning(Bucket="skewv", VersioningConfiguration={"Status": "Enabled"})
    written = []
    for writer in (2, 1, 0, 2, 1):  # ahead, behind, right, ahead, behind
        r = s3[writer].put_object(Bucket="skewv", Key="v", Body=f"by n{writer + 1}".encode())
        written.append(r["VersionId"])
    for i in range(3):
        versions = s3[i].list_object_versions(Bucket="skewv", Prefix="v")["Versions"]
        assert [v["VersionId"] for v in versions] == written[::-1]  # newest first
        assert versions[0]["IsLatest"] and not any(v["IsLatest"] for v in versions[1:])
        assert _body(s3[i], "v", "skewv") == b"by n2"
    # The latest (by the node behind) is deleted through the node ahead: the one before it
    # (by the node ahead) becomes current.
    s3[2].delete_object(Bucket="skewv", Key="v", VersionId=written[-1])
    for i in range(3):
        assert _body(s3[i], "v", "skewv") == b"by n3"


def test_a_client_past_the_skew_window_gets_a_403(cluster) -> None:
    """A request signed 20 minutes away from a node's clock: RequestTimeTooSkewed, on the
    node that is off and on the right one alike; nothing is written."""
    import botocore.auth

    real = botocore.auth.datetime.datetime

    class Late(real):  # type: ignore[misc,valid-type]
        @classmethod
        def utcnow(cls):
            return real.utcnow() - datetime.timedelta(minutes=20)

        @classmethod
        def now(cls, tz=None):
            return real.now(tz) - datetime.timedelta(minutes=20)

    s3 = [cluster.client(i) for i in range(3)]
    botocore.auth.datetime.datetime = Late
    try:
        for i in (0, 2):
            with pytest.raises(ClientError) as e:
                s3[i].put_object(Bucket="skew", Key="late", Body=b"x")
            assert e.value.response["Error"]["Code"] == "RequestTimeTooSkewed"
            assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    finally:
        botocore.auth.datetime.datetime = real
    with pytest.raises(ClientError):
        s3[0].head_object(Bucket="skew", Key="late")


def test_last_modified_is_the_accepting_nodes_clock(cluster) -> None:
    """Documented, not a rule of order: Last-Modified is stamped by the node that took the
    PUT. Recorded here so a change to it is seen."""
    s3 = [cluster.client(i) for i in range(3)]
    s3[2].put_object(Bucket="skew", Key="lm", Body=b"x")
    stamped = s3[0].head_object(Bucket="skew", Key="lm")["LastModified"].timestamp()
    assert abs(stamped - time.time() - SKEW) < 60
