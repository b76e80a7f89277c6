"""Helpers for the fault-injection suite: real mounts for drives, fault injectors, and a
view of the node's state from outside (its integrity status file and its index).

Drives that get pulled, remounted read-only or filled are tmpfs mounts (this machine runs
the tests as root). A drive is a tmpfs "medium" bind-mounted onto the data directory the
server is given: unmounting the bind is pulling the drive (the medium keeps its contents,
as a pulled disk does), mounting it again is re-inserting it.
"""

from __future__ import annotations

import http.client
import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import Server, free_port

MIB = 1024 * 1024


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True)


def mounted(path: Path) -> bool:
    target = str(path.resolve())
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


class Mounts:
    """Mounts made by one test, all undone at teardown whatever happened."""

    def __init__(self) -> None:
        self.points: list[Path] = []

    def _mount(self, *args: str) -> None:
        r = _run("mount", *args)
        if r.returncode != 0:
            raise RuntimeError(f"mount {' '.join(args)}: {r.stderr.strip()}")

    def tmpfs(self, path: Path, size_mib: int) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        self._mount("-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(path))
        self.points.append(path)
        return path

    def bind(self, source: Path, target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        self._mount("--bind", str(source), str(target))
        self.points.append(target)

    def pull(self, target: Path) -> None:
        """Unmount at once, even with files open (as yanking a disk would)."""
        r = _run("umount", "-l", str(target))
        assert r.returncode == 0, r.stderr

    def readonly(self, target: Path, ro: bool = True, timeout: float = 10.0) -> None:
        """Remount read-only (retrying while a file is open for writing: EBUSY)."""
        deadline = time.monotonic() + timeout
        opts = "remount,bind," + ("ro" if ro else "rw")
        while True:
            r = _run("mount", "-o", opts, str(target))
            if r.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"remount {opts} {target}: {r.stderr.strip()}")
            time.sleep(0.05)

    def cleanup(self) -> None:
        for point in reversed(self.points):
            while mounted(point):
                if _run("umount", "-l", str(point)).returncode != 0:
                    break


@pytest.fixture
def mounts():
    if os.geteuid() != 0:
        pytest.skip("drive fault tests mount tmpfs: they need root")
    m = Mounts()
    try:
        probe = Path(f"/tmp/holdfast-mount-probe-{os.getpid()}")
        m.tmpfs(probe, 1)
    except RuntimeError as e:
        m.cleanup()
        pytest.skip(f"cannot mount tmpfs here: {e}")
    try:
        yield m
    finally:
        m.cleanup()
        if probe.exists() and not mounted(probe):
            probe.rmdir()


class Drive:
    """A removable drive: a tmpfs medium bind-mounted at ``path``."""

    def __init__(self, mounts: Mounts, base: Path, name: str, size_mib: int) -> None:
        self.mounts = mounts
        self.medium = mounts.tmpfs(base / f"medium-{name}", size_mib)
        self.path = base / name
        self.insert()

    def insert(self) -> None:
        self.mounts.bind(self.medium, self.path)

    def pull(self) -> None:
        self.mounts.pull(self.path)

    def readonly(self, ro: bool = True) -> None:
        self.mounts.readonly(self.path, ro)


def serve(data_dirs: list[Path], *args: str, workers: int = 2) -> Server:
    server = Server(data_dirs=data_dirs, port=free_port(), workers=workers, extra_args=list(args))
    return server.start()


def status(server: Server) -> dict:
    """The integrity snapshot the node's background workers publish every second."""
    path = server.data_dirs[0] / "index" / "integrity-status.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def query(server: Server, sql: str, *args) -> list[tuple]:
    db = sqlite3.connect(server.data_dirs[0] / "index" / "holdfast.db", timeout=30)
    try:
        return list(db.execute(sql, args))
    finally:
        db.close()


def wait_for(what: str, check: Callable[[], object], timeout: float = 30.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def drive_index(store_id: str) -> int:
    """Which --data directory a store id of this node names: "local/d1" (or "d1") -> 1."""
    return int(store_id.rpartition("/")[2][1:])


def blob_files(data_dir: Path) -> dict[str, Path]:
    root = data_dir / "drive" / "blobs"
    return {p.name: p for p in root.rglob("*") if p.is_file()} if root.exists() else {}


def quarantined(data_dir: Path) -> list[Path]:
    root = data_dir / "drive" / "quarantine"
    return sorted(root.iterdir()) if root.exists() else []


def segments_of(server: Server, bucket: str, key: str) -> list[dict]:
    rows = query(server, "SELECT segments FROM objects WHERE bucket=? AND key=?", bucket, key)
    return json.loads(rows[0][0]) if rows else []


def repair_rows(server: Server, store: str | None = None) -> list[tuple]:
    sql = "SELECT blob_id, store_id, op, reason, size FROM repair_queue"
    return query(server, sql + " WHERE store_id=?", store) if store else query(server, sql)


def flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
        f.flush()
        os.fsync(f.fileno())


def truncate(path: Path, length: int) -> None:
    os.truncate(path, length)


def fill(directory: Path, chunk: int = MIB) -> Path:
    """Fill a filesystem to the brim with one junk file (returns it, to free the space)."""
    junk = directory / "junk"
    fd = os.open(junk, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while chunk >= 512:
            try:
                os.write(fd, b"\0" * chunk)
            except OSError:
                chunk //= 2
    finally:
        os.close(fd)
    return junk


def slow_put(server: Server, bucket: str, key: str, body: bytes, seconds: float) -> int:
    """PUT ``body`` over ``seconds``, so a drive can be pulled while it is being written."""
    s3 = server.client()
    url = urlsplit(s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key}))
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    conn.putrequest("PUT", f"{url.path}?{url.query}")
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders()
    step = 64 * 1024
    pause = seconds / max(1, len(body) // step)
    for i in range(0, len(body), step):
        conn.send(body[i : i + step])
        time.sleep(pause)
    status_code = conn.getresponse().status
    conn.close()
    return status_code
