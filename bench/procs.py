"""Process and port helpers read straight from /proc.

Servers such as Holdfast fork worker processes, so every figure about a
server (RSS, CPU) is summed over the whole process tree, not just the pid
we started.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_ports(n: int) -> list[int]:
    """Return n distinct free loopback ports (bound together so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may hold spaces)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """The root pid and all its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def tree_cpu_seconds(root: int) -> float:
    """User+system CPU seconds consumed so far by the live process tree."""
    total = 0
    for pid in process_tree(root):
        fields = _stat_fields(pid)
        if fields:
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def rss_bytes(pid: int) -> int:
    """VmRSS of one process, 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss_bytes(root: int) -> int:
    """Summed VmRSS over the process tree (shared pages count once per process)."""
    return sum(rss_bytes(pid) for pid in process_tree(root))


@dataclass
class RssSampler:
    """Samples tree RSS in a background thread; keeps baseline and peak."""

    root: int
    interval: float = 0.02
    baseline: int = 0
    peak: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def _loop(self) -> None:
        # Walking all of /proc costs milliseconds; the tree rarely changes, so
        # rediscover it only every `rescan` samples and read just those pids.
        rescan, pids = 50, []
        while not self._stop.is_set():
            if self.samples % rescan == 0:
                pids = process_tree(self.root)
            self.peak = max(self.peak, sum(rss_bytes(pid) for pid in pids))
            self.samples += 1
            self._stop.wait(self.interval)

    @contextmanager
    def running(self) -> Iterator[RssSampler]:
        self.baseline = self.peak = tree_rss_bytes(self.root)
        self._stop.clear()
        thread = threading.Thread(target=self._loop, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()
            self.peak = max(self.peak, tree_rss_bytes(self.root))


@dataclass
class CpuMeter:
    """CPU used by a server tree and by this (client) process over a span of wall time."""

    server_pid: int | None
    wall: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    also: tuple[int, ...] = ()  # other trees the server uses (its own PostgreSQL)

    def _server(self) -> float:
        pids = ([self.server_pid] if self.server_pid else []) + list(self.also)
        return sum(tree_cpu_seconds(p) for p in pids)

    @contextmanager
    def running(self) -> Iterator[CpuMeter]:
        t0, c0 = time.perf_counter(), time.process_time()
        s0 = self._server()
        try:
            yield self
        finally:
            self.wall = time.perf_counter() - t0
            self.client_cpu = time.process_time() - c0
            if self.server_pid:
                with suppress(OSError):
                    self.server_cpu = self._server() - s0

    def cores(self, cpu_seconds: float) -> float:
        """CPU seconds per wall second: 1.0 means one core kept busy."""
        return cpu_seconds / self.wall if self.wall else 0.0


def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields), fields[3] + fields[4]  # total, idle + iowait


def machine_busy(seconds: float = 1.0) -> float:
    """Share of all CPUs busy over a short window, taken while none of ours run.

    Other work on a shared machine skews every figure; this says how much there was.
    """
    total0, idle0 = _cpu_times()
    time.sleep(seconds)
    total1, idle1 = _cpu_times()
    return 1 - (idle1 - idle0) / max(1, total1 - total0)
