"""Invariant 8: nothing large is held in memory. Server RSS stays flat during a 1 GiB PUT and
GET, because bodies are streamed in both directions."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

from tests.conftest import start_server

GIB = 1024**3
LIMIT = 64 * 1024 * 1024


def group_rss(pgid: int) -> int:
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.getpgid(int(pid)) != pgid:
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, ProcessLookupError):
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
