"""What a node's processes import when they start (issue #13, "Restart at scale").

A start costs the CPU of importing Python. A node is a supervisor, its workers and the index
committer; each child is forked from one forkserver, which imports the workers' and the
committer's code once, while the supervisor prepares the node (holdfast/server.py). This
test fails if any of what made starts slow comes back:

* a child importing the workers' code itself (each child was a ``spawn``ed interpreter that
  imported it all again: three times the CPU on a 2-worker node, one process after the
  other on a small machine), or the supervisor importing it (it never serves HTTP);
* every child importing the whole command line (multiprocessing re-imports the parent's
  ``__main__``, here ``holdfast.cli``);
* boto3 and botocore (a third of a process's import time) imported by any process, though
  only an S3 back-end store uses them.

Python's own import trace (``PYTHONPROFILEIMPORTTIME``, inherited by every process) is read
from the node's log: one line per module and per process that imported it. The process tree
is read from /proc.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import start_server

WORKERS = 2


def _imports(log: str, module: str) -> int:
    """How many processes imported ``module`` (one trace line each)."""
    return len(re.findall(rf"^import time:.*\|\s+{re.escape(module)}$", log, re.M))


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_children_are_forked_with_the_code_imported_once(tmp_path):
    server = start_server(
        tmp_path, workers=WORKERS, index="sqlite", env={"PYTHONPROFILEIMPORTTIME": "1"}
    )
    try:
        client = server.client()
        client.create_bucket(Bucket="startup")  # a write: through the committer, so it has started
        assert [b["Name"] for b in client.list_buckets()["Buckets"]] == ["startup"]
        supervisor = server.proc.pid
        forkservers = [
            p for p in _children(supervisor) if "multiprocessing.forkserver" in _cmdline(p)
        ]
        assert len(forkservers) == 1, [_cmdline(p) for p in _children(supervisor)]
        # Every worker and the committer: children of the forkserver, none of the supervisor.
        assert len(_children(forkservers[0])) == WORKERS + 1
        assert not [p for p in _children(supervisor) if "multiprocessing.spawn" in _cmdline(p)]
        log = server.log()
    finally:
        server.stop()
    # The workers' code: imported by one process, the forkserver; not by the supervisor, not
    # by a worker (one has answered, so it has started) nor the committer (it has committed).
    for module in ("uvicorn", "holdfast.s3.app", "holdfast.ops.runtime", "websockets"):
        assert _imports(log, module) == 1, module
    # Modules both need: the supervisor and the forkserver, no child.
    for module in ("holdfast.config", "holdfast.index.sqlite_engine", "holdfast.service"):
        assert _imports(log, module) == 2, module
    # The command line's own modules: in the supervisor only (it runs holdfast.cli).
    assert _imports(log, "holdfast.cluster.commands") == 1
    assert _imports(log, "holdfast.workers.store_commands") == 1
    # No S3 back-end store, no PostgreSQL, no cluster: none of their libraries anywhere.
    for heavy in ("boto3", "botocore", "psycopg", "cryptography.x509"):
        assert _imports(log, heavy) == 0, heavy
