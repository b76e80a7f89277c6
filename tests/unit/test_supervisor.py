"""The supervisor's restart policy (holdfast/server.py): crashing workers are restarted with
a growing backoff, a worker that had been running for a while starts the backoff over, each
kind of process backs off on its own, a restart waiting out its backoff holds up no other,
and a stop is noticed at once."""

from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace

from holdfast.config import Config
from holdfast.server import (
    COMMITTER_NAME,
    STABLE_WORKER_SECONDS,
    WORKER_NAME,
    Supervisor,
    run_worker,
)


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


class _Proc:
    """Stands in for a multiprocessing.Process in the restart bookkeeping."""

    def __init__(self, name: str, alive: bool = True) -> None:
        self.name, self.alive, self.pid, self.exitcode = name, alive, 0, None
        self.sentinel, self._w = os.pipe()  # a descriptor that never becomes ready

    def is_alive(self) -> bool:
        return self.alive


def test_a_process_waiting_out_its_backoff_holds_up_no_other(tmp_path) -> None:
    sup = _supervisor(tmp_path)
    spawned = []
    sup._spawn = lambda target=None: spawned.append(target) or _Proc("new")  # type: ignore
    committer = _Proc(COMMITTER_NAME, alive=False)
    for _ in range(6):  # the committer has been crash-looping: its next wait is long
        sup.started[committer.sentinel] = time.monotonic()
        sup._restart_delay(committer)
    sup.workers = [_Proc(WORKER_NAME, alive=False), _Proc(WORKER_NAME)]
    sup.committer = committer
    for proc in (committer, sup.workers[0]):  # both died at once, just after they started
        sup.started[proc.sentinel] = time.monotonic()
    sup._schedule_restarts()
    assert set(sup.restarts) == {0, "committer"}
    assert sup.restarts["committer"] - time.monotonic() > 10  # long, but scheduled, not slept
    assert sup.restarts[0] - time.monotonic() <= 0.5  # the worker's own backoff is fresh
    began = time.monotonic()
    while not spawned and time.monotonic() - began < 2:
        sup._wait()
        sup._restart_due()
    assert time.monotonic() - began < 1.0
    assert spawned == [run_worker] and sup.workers[0].name == "new"
    assert "committer" in sup.restarts  # still waiting, on its own


def test_a_stop_is_noticed_within_half_a_second_whatever_is_pending(tmp_path) -> None:
    sup = _supervisor(tmp_path)
    sup.workers = [_Proc(WORKER_NAME)]
    sup.restarts["committer"] = time.monotonic() + 30
    threading.Timer(0.1, sup._stop).start()
    began = time.monotonic()
    while not sup.stopping:
        sup._wait()
    assert time.monotonic() - began < 0.7
