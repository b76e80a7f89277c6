"""Drives that go away: pulled during uploads and downloads, put back, turned read-only.

Each drive is a real tmpfs mount (support.Drive). While one is pulled the node keeps
serving every read and write from the other; what the missing drive should have received
(copies of new objects, deletes of old ones) waits in its hinted-handoff log. When it comes
back, exactly that is replayed: the bytes copied equal the bytes it missed, not the drive's
contents, and nothing deleted meanwhile comes back.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import threading
import time

from tests.conftest import Server
from tests.faults.support import (
    MIB,
    Drive,
    blob_files,
    query,
    repair_rows,
    segments_of,
    serve,
    slow_put,
    status,
    wait_for,
)

FAST = ("--drive-probe-cap", "0.5", "--gc-grace", "0", "--repair-backoff-base", "0.2")


def _drive_state(server: Server, store: str) -> str | None:
    return next((d["state"] for d in status(server).get("drives", []) if d["id"] == store), None)


class Downloader(threading.Thread):
    """GETs a fixed set of objects in a loop and checks every byte against its MD5."""

    def __init__(self, server: Server, bucket: str, expected: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.s3 = server.client(retries={"max_attempts": 1})
        self.bucket, self.expected = bucket, expected
        self.stop = threading.Event()
        self.done = 0
        self.errors: list[str] = []

    def run(self) -> None:
        keys = sorted(self.expected)
        while not self.stop.is_set():
            key = random.choice(keys)
            try:
                body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                if hashlib.md5(body).hexdigest() != self.expected[key]:
                    self.errors.append(f"{key}: wrong bytes")
            except Exception as e:
                self.errors.append(f"{key}: {e}")
            self.done += 1


def _published_after(server: Server, moment: float) -> dict:
    """The integrity status as published after ``moment`` (it is rewritten every second)."""
    return wait_for(
        "a fresh status", lambda: (st := status(server)) and st["written_at"] > moment and st, 5
    )


def _put(s3, bucket: str, key: str, size: int, versions: dict[str, str]) -> None:
    body = os.urandom(size)
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    versions[key] = hashlib.md5(body).hexdigest()


def _owed(server: Server, store: str) -> tuple[int, int]:
    """(bytes of live blobs owed to ``store``, deletes it missed) from its handoff log."""
    (owed,) = query(
        server,
        "SELECT coalesce(sum(size), 0) FROM repair_queue WHERE store_id=? AND op='copy' "
        "AND blob_id IN (SELECT blob_id FROM live_blobs)",
        store,
    )[0]
    (deletes,) = query(
        server, "SELECT count(*) FROM repair_queue WHERE store_id=? AND op='delete'", store
    )[0]
    return owed, deletes


def _fsck(server: Server, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "holdfast.cli", "fsck", "--no-progress"]
    for d in server.data_dirs:
        cmd += ["--data", str(d)]
    return subprocess.run(cmd + list(extra), capture_output=True, text=True, timeout=120)


def test_pull_drive_during_traffic_then_resync_only_what_was_missed(tmp_path, mounts):
    d0 = Drive(mounts, tmp_path, "drive0", 128)  # holds the index too: never pulled here
    d1 = Drive(mounts, tmp_path, "drive1", 192)  # more room: placed first, read first
    server = serve([d0.path, d1.path], *FAST)
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="pull")
        versions: dict[str, str] = {}
        for i in range(12):
            _put(s3, "pull", f"stable-{i}", random.randrange(100_000, 1_500_000), versions)
        for i in range(8):
            _put(s3, "pull", f"old-{i}", random.randrange(100_000, 600_000), versions)
        on_d1_before = set(blob_files(d1.path))
        assert len(on_d1_before) == 20, "every object has a copy on each drive"
        old_blobs = {
            f"old-{i}": {s["id"] for s in segments_of(server, "pull", f"old-{i}")} for i in range(8)
        }

        downloader = Downloader(
            server, "pull", {k: v for k, v in versions.items() if k.startswith("stable")}
        )
        downloader.start()
        big = os.urandom(6 * MIB)
        result: dict[str, int] = {}
        uploader = threading.Thread(
            target=lambda: result.setdefault("status", slow_put(server, "pull", "big", big, 1.5))
        )
        uploader.start()
        time.sleep(0.5)
        d1.pull()  # mid-upload, mid-downloads
        uploader.join(30)
        assert result.get("status") == 200, "an upload in flight survives the pull"
        versions["big"] = hashlib.md5(big).hexdigest()

        # Traffic while the drive is away: new objects, overwrites and deletes.
        for i in range(10):
            _put(s3, "pull", f"new-{i}", random.randrange(50_000, 900_000), versions)
        for i in range(4):
            _put(s3, "pull", f"old-{i}", random.randrange(50_000, 300_000), versions)
        s3.delete_objects(
            Bucket="pull", Delete={"Objects": [{"Key": f"old-{i}"} for i in range(4, 8)]}
        )
        for i in range(4, 8):
            versions.pop(f"old-{i}")
        assert wait_for("d1 marked down", lambda: _drive_state(server, "local/d1") == "down", 10)
        for key, digest in versions.items():  # every object reads whole from the other drive
            body = s3.get_object(Bucket="pull", Key=key)["Body"].read()
            assert hashlib.md5(body).hexdigest() == digest, key
        downloader.stop.set()
        downloader.join(30)
        assert downloader.errors == [], downloader.errors[:5]
        # The retired blobs' deletes reach d1's handoff log once the GC has run.
        wait_for("GC done", lambda: query(server, "SELECT count(*) FROM gc_queue")[0][0] == 0, 15)
        missed_bytes, missed_deletes = _owed(server, "local/d1")
        retired = set().union(*old_blobs.values())
        assert missed_deletes == len(retired), (missed_deletes, len(retired))
        assert missed_bytes > 0

        before = status(server)["repair"]["bytes_copied"]
        d1.insert()
        wait_for("d1 back up", lambda: _drive_state(server, "local/d1") == "up", 15)
        wait_for("d1's handoff log replayed", lambda: not repair_rows(server, "local/d1"), 30)
        resynced = _published_after(server, time.time())["repair"]["bytes_copied"] - before
        on_d1 = blob_files(d1.path)
        drive_bytes = sum(p.stat().st_size for p in on_d1.values())
        print(
            f"\npull/re-insert: downloads during the pull {downloader.done}, bytes missed "
            f"{missed_bytes}, bytes re-synced {resynced}, deletes missed and replayed "
            f"{missed_deletes}; drive holds {drive_bytes} bytes in {len(on_d1)} blobs"
        )
        assert resynced == missed_bytes, "re-sync copies exactly what was missed"
        assert resynced < drive_bytes
        assert not (retired & set(on_d1)), "a blob deleted while the drive was away came back"
        for i in range(4, 8):
            assert query(server, "SELECT 1 FROM objects WHERE key=?", f"old-{i}") == []
        check = _fsck(server)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        server.stop()


def test_read_only_drive_keeps_serving_and_catches_up(tmp_path, mounts):
    d0 = Drive(mounts, tmp_path, "drive0", 64)
    d1 = Drive(mounts, tmp_path, "drive1", 96)
    server = serve([d0.path, d1.path], *FAST)
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="rdonly")
        versions: dict[str, str] = {}
        for i in range(4):
            _put(s3, "rdonly", f"before-{i}", 300_000, versions)
        d1.readonly()
        for i in range(4):  # writes go on: the copies d1 cannot take are owed to it
            _put(s3, "rdonly", f"during-{i}", 200_000, versions)
        assert wait_for("d1 read-only", lambda: _drive_state(server, "local/d1") == "read-only", 10)
        for key, digest in versions.items():  # reads still use it
            assert (
                hashlib.md5(s3.get_object(Bucket="rdonly", Key=key)["Body"].read()).hexdigest()
                == digest
            )
        owed, _ = _owed(server, "local/d1")
        assert owed == 4 * 200_000
        d1.readonly(False)
        wait_for("d1 writable again", lambda: _drive_state(server, "local/d1") == "up", 15)
        wait_for("d1 caught up", lambda: not repair_rows(server, "local/d1"), 30)
        assert all(len(blob_files(d.path)) == 8 for d in (d0, d1))
        check = _fsck(server)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        server.stop()


def test_new_blank_disk_is_not_mistaken_for_the_pulled_one(tmp_path, mounts):
    """After a restart with a drive missing, its empty mount point is not adopted as a
    blank drive (that would put blobs on the wrong disk and lose track of the real one)."""
    d0 = Drive(mounts, tmp_path, "drive0", 64)
    d1 = Drive(mounts, tmp_path, "drive1", 64)
    server = serve([d0.path, d1.path], *FAST)
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="blank")
        s3.put_object(Bucket="blank", Key="k", Body=b"x" * 200_000)
        server.stop()
        d1.pull()
        server.start()
        wait_for("status", lambda: _drive_state(server, "local/d1") == "down", 5)
        s3.put_object(Bucket="blank", Key="k2", Body=b"y" * 200_000)
        assert not (d1.path / "drive").exists(), "wrote into the empty mount point"
        assert s3.get_object(Bucket="blank", Key="k")["Body"].read() == b"x" * 200_000
        d1.insert()
        wait_for("d1 back", lambda: _drive_state(server, "local/d1") == "up", 15)
        wait_for("d1 caught up", lambda: not repair_rows(server, "local/d1"), 30)
        assert len(blob_files(d1.path)) == 2
    finally:
        server.stop()
