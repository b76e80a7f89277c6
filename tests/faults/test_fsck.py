"""``holdfast fsck``: finds what is wrong between the index and the drives, fixes what can
be fixed with --repair, shows progress, keeps to its rate, and runs beside a live node.
Also ``holdfast bucket policy``, the other integrity admin command."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time

from tests.conftest import Server, start_server
from tests.faults.support import MIB, blob_files, flip, query, segments_of

FLAGS = ["--scrub-rate", "0", "--orphan-age", "60"]


def _cli(server: Server, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "holdfast.cli", *args]
    for d in server.data_dirs:
        cmd += ["--data", str(d)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _copy(server: Server, key: str, drive: int):
    seg = segments_of(server, "fsck", key)[0]
    return blob_files(server.data_dirs[drive])[seg["id"]]


def test_fsck_finds_and_repairs(tmp_path):
    server = start_server(tmp_path, drives=2, extra_args=FLAGS)
    s3 = server.client()
    s3.create_bucket(Bucket="fsck")
    for i in range(8):
        s3.put_object(Bucket="fsck", Key=f"k{i}", Body=os.urandom(MIB + i * 100_000))
    # A live node: fsck checks beside it without disturbing it.
    live = _cli(server, "fsck", "--json")
    assert live.returncode == 0, live.stdout + live.stderr
    assert json.loads(live.stdout)["objects"] == 8
    server.stop()

    flip(_copy(server, "k0", 0), 1000)  # bit rot
    _copy(server, "k1", 1).unlink()  # a lost copy
    os.truncate(_copy(server, "k2", 0), 10)  # a torn copy
    for drive in (0, 1):  # no good copy at all
        flip(_copy(server, "k3", drive), 5)
    k4 = _copy(server, "k4", 0)
    orphan = k4.with_name(k4.name[:8] + "f" * 22 + k4.name[30:])
    orphan.write_bytes(b"orphan")
    os.utime(orphan, (time.time() - 7200, time.time() - 7200))
    k5 = segments_of(server, "fsck", "k5")[0]["id"]
    db = sqlite3.connect(server.data_dirs[0] / "index" / "holdfast.db")
    db.execute("DELETE FROM live_blobs WHERE blob_id=?", (k5,))  # the sweeper would eat it
    db.commit()
    db.close()

    check = _cli(server, "fsck", "--json", "--orphan-age", "3600")
    report = json.loads(check.stdout)
    assert check.returncode == 1
    assert report["faults"] == {"corrupt": 4, "missing": 1}, report["faults"]
    assert report["damaged"] == ["fsck/k3"]
    assert report["orphans"] == 1 and report["unmarked"] == 1
    assert orphan.exists(), "a check without --repair changes nothing"

    started = time.monotonic()
    fixed = _cli(server, "fsck", "--repair", "--progress", "--rate", "8MiB", "--orphan-age", "3600")
    elapsed = time.monotonic() - started
    print(f"\nfsck --repair ({elapsed:.1f} s):\n{fixed.stdout}")
    assert fixed.returncode == 1, "k3 has no good copy: a problem remains"
    assert "fsck [" in fixed.stderr and "100.0%" in fixed.stderr, fixed.stderr[-500:]
    assert "fixed: 3 copies" in fixed.stdout and "1 orphans removed" in fixed.stdout
    assert "not fixed: 2" in fixed.stdout  # both copies of k3
    verified = 2 * sum(MIB + i * 100_000 for i in range(8))
    assert elapsed >= (verified - 8 * MIB) / (8 * MIB) * 0.8, "fsck ignored its rate"
    assert not orphan.exists()
    assert query(server, "SELECT 1 FROM live_blobs WHERE blob_id=?", k5)

    again = json.loads(_cli(server, "fsck", "--json").stdout)
    assert again["faults"] == {"corrupt": 2} and again["damaged"] == ["fsck/k3"]
    assert again["orphans"] == 0 and again["unmarked"] == 0
    server.start()
    try:
        assert len(s3.get_object(Bucket="fsck", Key="k1")["Body"].read()) == MIB + 100_000
        state = query(server, "SELECT state FROM objects WHERE key='k3'")[0][0]
        assert state == "corrupt", "fsck marks the object it found damaged"
    finally:
        server.stop()


def test_bucket_policy_command(tmp_path):
    server = start_server(tmp_path, drives=2, workers=1)
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="single")
        s3.create_bucket(Bucket="double")
        shown = _cli(server, "bucket", "policy", "single", "--copies", "1", "--json")
        assert json.loads(shown.stdout) == {
            "bucket": "single", "copies": 1, "min_copies": 1, "spread": "", "source": "bucket",
        }  # fmt: skip
        assert _cli(server, "bucket", "policy", "double", "--copies", "3").returncode == 2
        assert _cli(server, "bucket", "policy", "nope", "--copies", "1").returncode == 1
        time.sleep(2.5)  # workers reload policies every 2 s
        s3.put_object(Bucket="single", Key="big", Body=os.urandom(200_000))
        s3.put_object(Bucket="double", Key="big", Body=os.urandom(200_000))
        s3.put_object(Bucket="single", Key="small", Body=b"inline")
        assert len(segments_of(server, "single", "big")[0]["st"]) == 1
        assert len(segments_of(server, "double", "big")[0]["st"]) == 2
        small = query(server, "SELECT inline FROM objects WHERE bucket='single' AND key='small'")
        assert small[0][0] == b"inline", "a one-copy bucket keeps small objects inline"
        cleared = _cli(server, "bucket", "policy", "single", "--clear", "--json")
        assert json.loads(cleared.stdout)["source"] == "server"
    finally:
        server.stop()
