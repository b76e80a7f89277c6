"""The background runner and its lease (holdfast/workers/runner.py): the jobs run only while
the lease is held, stop within about a second of losing it, and stop with the runner."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from holdfast.workers.runner import BackgroundWorkers


class FakeLease:
    def __init__(self) -> None:
        self.held = True
        self.released = False

    async def release(self) -> None:
        self.held, self.released = False, True


class FakeIndex:
    def __init__(self) -> None:
        self.leases: list[FakeLease] = []

    async def lead(self, job: str, retry_seconds: float) -> FakeLease:
        assert job == "workers"
        self.leases.append(FakeLease())
        return self.leases[-1]


class Job:
    def __init__(self) -> None:
        self.running = 0
        self.cancelled = 0

    async def run(self) -> None:
        self.running += 1
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1

    def close(self) -> None:
        pass


def _runner() -> tuple[BackgroundWorkers, FakeIndex, list[Job]]:
    index = FakeIndex()
    runner = object.__new__(BackgroundWorkers)
    runner.service = SimpleNamespace(node=SimpleNamespace(index=index))
    jobs = [Job(), Job(), Job(), Job()]
    runner.jobs = jobs[:3]
    runner.scrubber = SimpleNamespace(job=None)  # a single node: scrubbing is a leader's job
    runner._publish = jobs[3].run  # type: ignore[method-assign]
    runner._lease = None
    runner._task = runner._monitor_task = runner._scrub_task = None
    runner.leader = False
    runner.transfers = SimpleNamespace(close=lambda: None)
    return runner, index, jobs


def test_jobs_stop_when_the_lease_is_lost_and_when_the_runner_stops() -> None:
    async def main() -> None:
        runner, index, jobs = _runner()
        runner._task = asyncio.create_task(runner._run())
        await asyncio.sleep(0.1)
        assert runner.leader and all(j.running == 1 for j in jobs)

        index.leases[0].held = False  # e.g. the engine session that held it dropped
        await asyncio.sleep(1.5)
        assert all(j.cancelled == 1 for j in jobs)
        assert index.leases[0].released and len(index.leases) == 2  # queued for it again
        assert runner.leader and all(j.running == 1 for j in jobs)  # and leads again

        await runner.stop()
        assert all(j.running == 0 and j.cancelled == 2 for j in jobs)
        assert index.leases[1].released and not runner.leader

    asyncio.run(main())
