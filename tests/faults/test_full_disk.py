"""Full drives: a clear error, nothing half-written, reads and deletes go on, writes come
back when space does; and repair against a full drive backs off instead of storming.
"""

from __future__ import annotations

import os
import time

import pytest
from botocore.exceptions import ClientError

from holdfast.workers.limits import max_attempts
from tests.faults.support import (
    MIB,
    Drive,
    fill,
    query,
    repair_rows,
    serve,
    status,
    wait_for,
)


def _tmp_files(drive: Drive) -> list:
    return [p for p in (drive.path / "drive" / "tmp").iterdir() if not p.name.startswith(".")]


def test_full_disk_answers_507_keeps_serving_and_recovers(tmp_path, mounts):
    disk = Drive(mounts, tmp_path, "drive0", 24)  # the only drive: index and blobs
    server = serve([disk.path], "--gc-grace", "0", workers=1)
    try:
        s3 = server.client(retries={"max_attempts": 1})
        s3.create_bucket(Bucket="full")
        stored = []
        with pytest.raises(ClientError) as refused:
            for i in range(100):
                s3.put_object(Bucket="full", Key=f"k{i}", Body=os.urandom(MIB))
                stored.append(f"k{i}")
        err = refused.value.response
        assert err["Error"]["Code"] == "InsufficientStorage"
        assert err["ResponseMetadata"]["HTTPStatusCode"] == 507
        assert 10 < len(stored) < 24
        assert _tmp_files(disk) == [], "a refused PUT left bytes behind"
        try:  # a small object may still fit in the index (outside the reserve), or not
            s3.put_object(Bucket="full", Key="tiny", Body=b"x" * 100)
        except ClientError as small:
            assert small.response["Error"]["Code"] == "InsufficientStorage"
        # Reads, listings and deletes go on.
        assert len(s3.get_object(Bucket="full", Key=stored[0])["Body"].read()) == MIB
        assert len(s3.list_objects_v2(Bucket="full", Prefix="k")["Contents"]) == len(stored)
        s3.delete_object(Bucket="full", Key=stored[0])
        s3.delete_objects(Bucket="full", Delete={"Objects": [{"Key": k} for k in stored[1:4]]})
        # Writes are accepted again once the GC has freed the space.
        wait_for(
            "space freed", lambda: query(server, "SELECT count(*) FROM gc_queue")[0][0] == 0, 15
        )

        def put_again() -> bool:
            try:
                s3.put_object(Bucket="full", Key="again", Body=os.urandom(MIB))
                return True
            except ClientError:
                return False

        wait_for("a PUT accepted again", put_again, 10, every=0.5)
        assert len(s3.get_object(Bucket="full", Key="again")["Body"].read()) == MIB
    finally:
        server.stop()


def test_repair_against_a_full_drive_backs_off_within_bound(tmp_path, mounts):
    """The storm check: the second drive is full, so every copy it is owed fails for lack
    of room. Retries must stay within the backoff's bound however many copies wait, and
    everything must catch up once space is freed."""
    # One attempt per owed copy would be 20 at once; the bound over the window is about
    # half that (it grows with the window, so a short one tells them apart best).
    base, cap, window = 0.2, 1.6, 4.0
    d0 = Drive(mounts, tmp_path, "drive0", 96)
    d1 = Drive(mounts, tmp_path, "drive1", 16)
    server = serve(
        [d0.path, d1.path],
        "--repair-backoff-base", str(base), "--repair-backoff-cap", str(cap),
        "--repair-concurrency", "4", "--repair-ops", "1000",
    )  # fmt: skip
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="storm")
        junk = fill(d1.medium)
        for i in range(20):  # acknowledged with one copy: the write quorum is 1
            s3.put_object(Bucket="storm", Key=f"k{i}", Body=os.urandom(300_000))
        assert len(repair_rows(server, "local/d1")) == 20
        wait_for("a first failure", lambda: status(server)["repair"]["failures"].get("target-full"))
        t0, start = time.monotonic(), status(server)["repair"]["attempts"]
        time.sleep(window)
        st = status(server)
        elapsed = time.monotonic() - t0 + 1.0  # the status file is rewritten every second
        attempts = st["repair"]["attempts"] - start
        bound = max_attempts(base, cap, elapsed) + 1  # +1: one may start as the window opens
        rate, steady = attempts / window, 2 / cap
        print(
            f"\nstorm check: {len(repair_rows(server, 'local/d1'))} copies owed to a full drive, "
            f"{attempts} repair attempts in {window:.0f} s ({rate:.2f}/s); bound {bound} "
            f"attempts, {steady:.2f}/s at the backoff cap; failures {st['repair']['failures']}"
        )
        assert 1 <= attempts <= bound
        assert st["repair"]["failures"]["target-full"] >= attempts

        # Room for a few copies above the repair reserve: repair takes it and stops there.
        st_d1 = os.statvfs(d1.path)
        total = st_d1.f_blocks * st_d1.f_frsize
        reserve = total * 5 // 100
        os.truncate(junk, junk.stat().st_size - reserve - MIB)
        wait_for("some copies made", lambda: len(repair_rows(server, "local/d1")) < 20, 20)
        time.sleep(2 * cap)
        st_d1 = os.statvfs(d1.path)
        assert st_d1.f_bavail * st_d1.f_frsize >= reserve, "repair ate into the reserve"
        assert repair_rows(server, "local/d1"), "repair must stop at the reserve"
        junk.unlink()
        wait_for("the owed copies made", lambda: not repair_rows(server, "local/d1"), 20)
    finally:
        server.stop()
