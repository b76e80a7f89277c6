"""The index's write-ahead log must stay bounded under a steady stream of commits: left to
PASSIVE checkpoints alone it grows without end (each one is overtaken by new commits), filling
the drive and making the next open after a crash replay all of it."""

from __future__ import annotations

import os
import time

from holdfast.index import sqlite as sqlite_index
from holdfast.index.records import BucketRecord, ObjectRecord, Segment
from holdfast.index.sqlite import SqliteIndex

LIMIT = 512 * 1024
WRITES = 2_000
BODY = b"x" * 4096


def _obj(key: str) -> ObjectRecord:
    seg = Segment(f"inline-{key}", len(BODY), 1 << 20, b"\0\0\0\0", ())
    return ObjectRecord("b", key, len(BODY), '"e"', 0.0, [seg], inline=BODY)


def _wal_bytes(index: SqliteIndex) -> int:
    try:
        return os.stat(f"{index.path}-wal").st_size
    except FileNotFoundError:
        return 0


def test_the_log_is_restarted_under_a_steady_stream_of_commits(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sqlite_index, "WAL_RESTART_BYTES", LIMIT)
    index = SqliteIndex(tmp_path / "index.db")
    index.create_bucket(BucketRecord("b", "root", 0.0, "us-east-1"))
    index.start_checkpointer(0.02)
    largest = 0
    deadline = time.monotonic() + 60
    for n in range(WRITES):
        index.put_object(_obj(f"k{n:05d}"))  # back to back: a commit is always under way
        if n % 20 == 0:
            largest = max(largest, _wal_bytes(index))
        assert time.monotonic() < deadline, f"only {n} writes in 60 s"
    written = WRITES * len(BODY)  # what an unbounded log would hold at least
    assert largest < 8 * LIMIT < written, f"the log reached {largest} bytes"
    # Restarting the log lost nothing: every write is still there, read back in full.
    assert index.get_object("b", f"k{WRITES - 1:05d}").inline == BODY
    assert sum(1 for _ in index.scan_objects(None, 10**6)) == WRITES
