"""The forkserver a node's children are forked from (holdfast/server.py) killed with -9: the
node keeps serving with exactly its workers and one committer.

The supervisor learns of its children's exits through the forkserver, so when the forkserver
dies every child reads as exited though it still runs. Restarting them without stopping the
old ones left extra workers and a second committer crash-looping on the socket the first
still held."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from holdfast.index.committer import COMMITTER_PROCESS_NAME
from holdfast.server import WORKER_NAME
from tests.conftest import group_pids, start_server
from tests.faults.support import wait_for

WORKERS = 2


def _named(pgid: int, name: str) -> set[int]:
    found = set()
    for pid in group_pids(pgid):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == name:
                found.add(pid)
        except OSError:
            continue
    return found


def _forkserver(pgid: int) -> int | None:
    for pid in group_pids(pgid):
        try:
            if b"multiprocessing.forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes():
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
                if comm not in (WORKER_NAME, COMMITTER_PROCESS_NAME):  # its children's too
                    return pid
        except OSError:
            continue
    return None


def test_a_killed_forkserver_leaves_no_extra_worker_nor_second_committer(tmp_path) -> None:
    server = start_server(tmp_path, workers=WORKERS, index="sqlite")
    try:
        pgid = os.getpgid(server.proc.pid)
        s3 = server.client()
        s3.create_bucket(Bucket="forkserver")
        old = wait_for(
            "the workers and the committer",
            lambda: (
                len(w := _named(pgid, WORKER_NAME)) == WORKERS
                and len(c := _named(pgid, COMMITTER_PROCESS_NAME)) == 1
                and w | c
            ),
        )
        os.kill(wait_for("the forkserver", lambda: _forkserver(pgid)), signal.SIGKILL)
        # The old children are stopped and replaced: exactly the node's processes again.
        wait_for(
            "new workers and one new committer, the old ones gone",
            lambda: (
                len(w := _named(pgid, WORKER_NAME)) == WORKERS
                and len(c := _named(pgid, COMMITTER_PROCESS_NAME)) == 1
                and not (w | c) & old
            ),
            30,
        )
        for i in range(10):  # writes go through the (new) committer
            server.client().put_object(Bucket="forkserver", Key=f"k{i}", Body=b"x")
        assert s3.list_objects_v2(Bucket="forkserver")["KeyCount"] == 10
        assert "still runs though reported exited" in server.log()
    finally:
        server.stop()
