"""Crash safety: kill -9 the whole server mid-upload, restart, and find only whole objects.

Invariant 1 of DESIGN.md: an object becomes visible only through one index commit made after
its data is durable, so after any crash a key holds either the old object or the new one,
whole (its MD5 matches a version that was sent), never a partial one; and the orphans a crash
leaves are collected in the background.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import threading
import time
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig

from tests.conftest import Server, start_server

SIZE = 6 * 1024 * 1024


def _client(server: Server):
    return server.client(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10)


def _blob_files(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "drive" / "blobs").rglob("*") if p.is_file()]


def _upload_in_background(server: Server, bucket: str, key: str, body: bytes, multipart: bool):
    def run() -> None:
        try:
            s3 = _client(server)
            if multipart:
                cfg = TransferConfig(
                    multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024
                )
                s3.upload_fileobj(io.BytesIO(body), bucket, key, Config=cfg)
            else:
                s3.put_object(Bucket=bucket, Key=key, Body=body)
        except Exception:
            pass  # the server is being killed under us: failure is expected

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def crash_cycles(tmp_path: Path, cycles: int, seed: int) -> dict:
    rng = random.Random(seed)
    # SQLite: the check afterwards reads the index file (_referenced_blobs).
    server = start_server(
        tmp_path, index="sqlite", extra_args=["--orphan-age", "0", "--sweep-interval", "1"]
    )
    versions: dict[str, set[str]] = {}
    stats = {"cycles": 0, "new": 0, "old": 0, "absent": 0}
    try:
        s3 = _client(server)
        s3.create_bucket(Bucket="crash")
        for i in range(cycles):
            key = f"obj-{i % 3}"
            body = os.urandom(SIZE + rng.randrange(1024 * 1024))
            digest = hashlib.md5(body).hexdigest()
            versions.setdefault(key, set())
            uploader = _upload_in_background(server, "crash", key, body, multipart=i % 2 == 1)
            time.sleep(rng.uniform(0.0, 0.2))
            server.kill9()
            uploader.join(timeout=15)
            server.start()
            s3 = _client(server)
            try:
                got = s3.get_object(Bucket="crash", Key=key)["Body"].read()
            except s3.exceptions.NoSuchKey:
                assert not versions[key], f"{key}: an acknowledged version vanished"
                stats["absent"] += 1
            else:
                got_digest = hashlib.md5(got).hexdigest()
                if got_digest == digest:
                    stats["new"] += 1
                else:
                    assert got_digest in versions[key], f"{key}: partial or unknown content"
                    stats["old"] += 1
                versions[key] = {hashlib.md5(got).hexdigest()}
            stats["cycles"] += 1
        # Every blob file left must be referenced (after the sweeper ran), or be one in the
        # GC grace window.
        s3 = _client(server)
        live = sum(1 for o in s3.list_objects_v2(Bucket="crash").get("Contents", []))
        deadline = time.monotonic() + 20
        files = _blob_files(server.data_dirs[0])
        while time.monotonic() < deadline:
            files = _blob_files(server.data_dirs[0])
            index_blobs = _referenced_blobs(server.data_dirs[0])
            if {f.name for f in files} <= index_blobs:
                break
            time.sleep(0.5)
        stats["blob_files"] = len(files)
        stats["objects"] = live
        assert {f.name for f in files} <= _referenced_blobs(server.data_dirs[0]), (
            "orphan blobs were not collected"
        )
    finally:
        server.stop()
    return stats


def _referenced_blobs(data_dir: Path) -> set[str]:
    """Blobs the index still knows: live ones and ones queued for deletion."""
    import sqlite3

    db = sqlite3.connect(data_dir / "index" / "holdfast.db")
    try:
        live = {r[0] for r in db.execute("SELECT blob_id FROM live_blobs")}
        queued = {r[0] for r in db.execute("SELECT blob_id FROM gc_queue")}
    finally:
        db.close()
    return live | queued


def test_kill9_during_uploads_leaves_only_whole_objects(tmp_path):
    stats = crash_cycles(tmp_path, cycles=8, seed=1)
    print("crash cycles:", stats)
    assert stats["cycles"] == 8


@pytest.mark.slow
def test_kill9_soak(tmp_path):
    stats = crash_cycles(tmp_path, cycles=100, seed=2)
    print("crash cycles:", stats)
    assert stats["cycles"] == 100


def test_orphan_blob_is_swept(tmp_path):
    """A blob file with no index row (a crash between rename and commit) is removed by the
    background sweeper, without any start-up scan. A replaced blob still waiting out its GC
    grace (a GET may be reading it) is not an orphan and stays."""
    server = start_server(
        tmp_path,
        extra_args=["--orphan-age", "0", "--sweep-interval", "1", "--gc-grace", "600"],
    )
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="orphans")
        body = b"x" * (256 * 1024)  # above the inline limit, so it lives in a blob file
        s3.put_object(Bucket="orphans", Key="keep", Body=body)
        kept = _blob_files(server.data_dirs[0])
        assert len(kept) == 1
        s3.put_object(Bucket="orphans", Key="replaced", Body=b"y" * (256 * 1024))
        replaced = [p for p in _blob_files(server.data_dirs[0]) if p not in kept]
        s3.put_object(Bucket="orphans", Key="replaced", Body=b"z" * (256 * 1024))
        assert len(replaced) == 1
        fake = kept[0].parent / (kept[0].name[:8] + "f" * 22 + kept[0].name[30:])
        fake.write_bytes(b"orphan")
        deadline = time.monotonic() + 15
        while fake.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not fake.exists(), "orphan survived"
        assert kept[0].exists(), "a live blob was deleted"
        assert replaced[0].exists(), "a blob queued for GC was swept before its grace ended"
        assert s3.get_object(Bucket="orphans", Key="keep")["Body"].read() == body
    finally:
        server.stop()
