"""The supervisor's restart policy (holdfast/server.py): crashing workers are restarted with
a growing backoff, a worker that had been running for a while starts the backoff over, and a
stop request cuts a backoff wait short."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from holdfast.config import Config
from holdfast.server import STABLE_WORKER_SECONDS, Supervisor


def _supervisor(tmp_path) -> Supervisor:
    return Supervisor(Config(data_dirs=[str(tmp_path)]))


def _died_after(sup: Supervisor, seconds: float) -> float:
    worker = SimpleNamespace(sentinel=7)
    sup.started[worker.sentinel] = time.monotonic() - seconds
    return sup._restart_delay(worker)


def test_crash_looping_workers_back_off_and_a_stable_one_starts_over(tmp_path) -> None:
    sup = _supervisor(tmp_path)
    delays = [_died_after(sup, 0.1) for _ in range(7)]
    assert 0.25 <= delays[0] <= 0.5
    assert delays[-1] >= 15.0  # 0.5 * 2**6 = 32, capped at 30: uniform in [15, 30]
    assert all(d <= 30.0 for d in delays)
    assert 0.25 <= _died_after(sup, STABLE_WORKER_SECONDS + 1) <= 0.5


def test_a_stop_request_cuts_the_restart_wait_short(tmp_path) -> None:
    sup = _supervisor(tmp_path)
    threading.Timer(0.2, sup._stop).start()
    began = time.monotonic()
    sup._sleep(30.0)
    assert time.monotonic() - began < 1.0
