"""Per-process state that must not be shared by workers forked from one process (the node's
forkserver imports the app once, then forks every worker: holdfast/server.py)."""

from __future__ import annotations

import os
import time

from holdfast.ops import endpoints
from holdfast.s3 import app


def _in_child(expression) -> str:  # type: ignore[no-untyped-def]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(write, str(expression()).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as f:
        return f.read().decode()


def test_each_forked_worker_has_its_own_request_id_prefix_and_start_time() -> None:
    ours = app.next_request_id()
    theirs = [_in_child(app.next_request_id) for _ in range(2)]
    prefixes = {ours[:10], theirs[0][:10], theirs[1][:10]}
    assert len(prefixes) == 3, (ours, theirs)
    assert all(t.endswith("00000001") for t in theirs)  # each counts from 1
    started = endpoints.STARTED
    time.sleep(0.01)
    assert float(_in_child(lambda: endpoints.STARTED)) > started
