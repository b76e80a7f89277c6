"""Invariant 1, the order of the syncs: kill -9 keeps the page cache, so a crash test cannot
tell a PUT whose data was fsync'd before its commit from one whose wasn't. Here every sync
and rename of the running server's processes is logged with its time (a ``sitecustomize``
on the server's path wraps ``os.fsync``, ``os.fdatasync`` and ``os.rename``), and one PUT's
must come in this order: each copy's data fsync'd, renamed into place, its directory fsync'd,
then the index log synced, then the answer."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.conftest import start_server

MIB = 1024 * 1024

HOOK = """
import os, time
_log = os.environ["HOLDFAST_TEST_SYNC_LOG"]

def _record(op, what):
    line = f"{time.monotonic_ns()} {os.getpid()} {op} {what}\\n".encode()
    fd = os.open(_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)

def _path(fd):
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"

def _wrap_sync(name):
    real = getattr(os, name)
    def sync(fd):
        path = _path(fd)
        real(fd)
        _record(name, path)
    setattr(os, name, sync)

_wrap_sync("fsync")
_wrap_sync("fdatasync")
_real_rename = os.rename

def _rename(src, dst, *args, **kwargs):
    _real_rename(src, dst, *args, **kwargs)
    _record("rename", f"{src} {dst}")

os.rename = _rename
"""


def _server_with_sync_log(tmp_path: Path, drives: int):
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(HOOK)
    log = tmp_path / "syncs.log"
    env = {
        "HOLDFAST_TEST_SYNC_LOG": str(log),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(hook_dir), os.environ.get("PYTHONPATH")])),
    }
    # The order of syncs checked is SQLite's (its WAL file).
    return start_server(tmp_path, drives=drives, env=env, index="sqlite"), log


def _events(log: Path, start: int, end: int) -> list[tuple[int, str, str]]:
    """(time, operation, what) of every sync or rename between ``start`` and ``end``."""
    out = []
    for line in log.read_text().splitlines():
        stamp, _pid, op, what = line.split(" ", 3)
        if start <= int(stamp) <= end:
            out.append((int(stamp), op, what))
    return out


def _put(s3, key: str, body: bytes) -> tuple[int, int]:
    sent = time.monotonic_ns()
    s3.put_object(Bucket="order", Key=key, Body=body)
    return sent, time.monotonic_ns()


def _first(events, op: str, where: str) -> int:
    stamps = [t for t, o, what in events if o == op and where in what]
    assert stamps, f"no {op} of {where} in {events}"
    return stamps[0]


def test_each_copy_is_synced_and_renamed_before_the_index_commit_and_the_answer(tmp_path):
    server, log = _server_with_sync_log(tmp_path, drives=2)  # two copies by default
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="order")
        sent, answered = _put(s3, "large", os.urandom(3 * MIB))  # a blob, not inline
        events = _events(log, sent, answered)
        wal_synced = _first(events, "fdatasync", "holdfast.db-wal")
        for drive in server.data_dirs:
            data_synced = _first(events, "fsync", f"{drive}/drive/tmp/")
            renamed = [
                (t, what.split(" ")[1]) for t, op, what in events
                if op == "rename" and what.startswith(f"{drive}/drive/tmp/")
            ]  # fmt: skip
            assert len(renamed) == 1, events
            renamed_at, final = renamed[0]
            dir_synced = _first(events, "fsync", str(Path(final).parent))
            assert data_synced < renamed_at < dir_synced < wal_synced, events
    finally:
        server.stop()


def test_a_small_object_is_acknowledged_only_after_the_index_log_is_synced(tmp_path):
    server, log = _server_with_sync_log(tmp_path, drives=1)
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="order")
        sent, answered = _put(s3, "small", b"x" * 4096)  # inline: its bytes are in the row
        events = _events(log, sent, answered)
        _first(events, "fdatasync", "holdfast.db-wal")
        assert not [e for e in events if "/drive/" in e[2]], "an inline object touches no file"
    finally:
        server.stop()
