"""Invariant 8: nothing large is held in memory. Server RSS stays flat during a 1 GiB PUT and
GET, because bodies are streamed in both directions."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

from tests.conftest import group_pids, start_server

GIB = 1024**3
LIMIT = 64 * 1024 * 1024


def group_rss(pgid: int) -> int:
    total = 0
    for pid in group_pids(pgid):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


class RssSampler:
    def __init__(self, pgid: int) -> None:
        self.pgid = pgid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, group_rss(self.pgid))
            time.sleep(0.05)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def test_rss_flat_during_1gib_put_and_get(tmp_path):
    src = tmp_path / "big.bin"
    md5 = hashlib.md5()
    with open(src, "wb") as f:
        block = os.urandom(4 * 1024 * 1024)
        for i in range(GIB // len(block)):
            chunk = block[i % 7 :] + block[: i % 7]  # vary blocks cheaply
            md5.update(chunk)
            f.write(chunk)
    server = start_server(tmp_path / "srv")
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="mem")
        s3.put_object(Bucket="mem", Key="warm", Body=b"x")
        s3.get_object(Bucket="mem", Key="warm")["Body"].read()
        baseline = group_rss(server.proc.pid)
        with RssSampler(server.proc.pid) as sampler, open(src, "rb") as f:
            s3.put_object(Bucket="mem", Key="big", Body=f)
            got = hashlib.md5()
            body = s3.get_object(Bucket="mem", Key="big")["Body"]
            for chunk in iter(lambda: body.read(1024 * 1024), b""):
                got.update(chunk)
        growth = sampler.peak - baseline
        print(
            f"baseline {baseline / 2**20:.1f} MiB, peak {sampler.peak / 2**20:.1f} MiB, "
            f"growth {growth / 2**20:.1f} MiB"
        )
        assert got.hexdigest() == md5.hexdigest()
        assert growth < LIMIT, f"server RSS grew by {growth / 2**20:.1f} MiB"
    finally:
        server.stop()


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_workers_start_with_the_allocator_settings(tmp_path):
    """The large-body path relies on glibc reusing freed 1 MiB blocks instead of mapping and
    zeroing fresh pages for each one (holdfast/server.py ALLOCATOR_ENV); an operator's own
    value for any of the settings is kept."""
    from holdfast.server import ALLOCATOR_ENV

    server = start_server(tmp_path / "srv", env={"MALLOC_ARENA_MAX": "4"})
    try:
        workers = [pid for pid in group_pids(server.proc.pid) if pid != server.proc.pid]
        assert workers, "no worker processes found"
        for pid in workers:
            env = _environ(pid)
            assert env["MALLOC_ARENA_MAX"] == "4"
            for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
                assert env[name] == ALLOCATOR_ENV[name]
    finally:
        server.stop()


def test_rss_flat_during_concurrent_transfers(tmp_path):
    """Eight 64 MiB uploads and then eight downloads at once: what the server holds grows
    with the number of transfers, never with their size (512 MiB here). Measured: ~80 MiB
    for the eight, most of it each GET's read-ahead (4 MiB per hop, the next hop in flight)."""
    streams, size = 8, 64 * 1024 * 1024
    src = tmp_path / "src.bin"
    block = os.urandom(size // 16)
    src.write_bytes(block * 16)
    expected = hashlib.md5(src.read_bytes()).hexdigest()
    server = start_server(tmp_path / "srv")
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="mem")
        s3.put_object(Bucket="mem", Key="warm", Body=b"x")
        s3.get_object(Bucket="mem", Key="warm")["Body"].read()
        baseline = group_rss(server.proc.pid)
        digests: list[str] = []
        errors: list[BaseException] = []

        def put(i: int) -> None:
            with open(src, "rb") as f:
                server.client().put_object(Bucket="mem", Key=f"o{i}", Body=f)

        def get(i: int) -> None:
            md5 = hashlib.md5()
            body = server.client().get_object(Bucket="mem", Key=f"o{i}")["Body"]
            for chunk in iter(lambda: body.read(1024 * 1024), b""):
                md5.update(chunk)
            digests.append(md5.hexdigest())

        def run_all(fn) -> None:
            def guarded(i: int) -> None:
                try:
                    fn(i)
                except BaseException as e:  # reported below, not lost in a thread
                    errors.append(e)

            threads = [threading.Thread(target=guarded, args=(i,)) for i in range(streams)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=300)

        with RssSampler(server.proc.pid) as sampler:
            run_all(put)
            run_all(get)
        assert not errors, errors
        assert digests == [expected] * streams
        growth = sampler.peak - baseline
        print(f"{streams} streams: growth {growth / 2**20:.1f} MiB")
        assert growth < 2 * LIMIT < streams * size, f"server RSS grew by {growth / 2**20:.1f} MiB"
    finally:
        server.stop()
