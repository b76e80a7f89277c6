"""What a node's processes import when they start (issue #13, "Restart at scale").

A start costs the CPU of importing Python in every process of the node: the supervisor, each
worker and the index committer, each a ``spawn``ed interpreter. Two things made that three
times what it needs to be, and this test fails if either comes back:

* every child imported the whole command line again (multiprocessing re-imports the parent's
  ``__main__``, here ``holdfast.cli``): the supervisor now hides it while starting a child;
* boto3 and botocore (a third of a process's import time) were imported by every process,
  though only an S3 back-end store uses them.

Python's own import trace (``PYTHONPROFILEIMPORTTIME``, inherited by every child) is read from
the node's log: one line per module and per process that imported it.
"""

from __future__ import annotations

import re
import time

from tests.conftest import start_server

WORKERS = 2
# The committer runs when several workers share the embedded index (SQLite).
PROCESSES = 1 + WORKERS + 1


def _imports(log: str, module: str) -> int:
    """How many processes imported ``module`` (one trace line each)."""
    return len(re.findall(rf"^import time:.*\|\s+{re.escape(module)}$", log, re.M))


def test_children_import_neither_the_command_line_nor_boto3_without_an_s3_store(tmp_path):
    server = start_server(
        tmp_path, workers=WORKERS, index="sqlite", env={"PYTHONPROFILEIMPORTTIME": "1"}
    )
    try:
        # Every process has started importing (holdfast.config: the first thing each needs)
        # and every worker has finished its start (the ops runtime is its last step).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            log = server.log()
            if (
                _imports(log, "holdfast.config") >= PROCESSES
                and _imports(log, "holdfast.ops.runtime") >= WORKERS
            ):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"the node's processes did not all start:\n{log[-3000:]}")
        assert server.client().list_buckets()["Buckets"] == []
        log = server.log()
    finally:
        server.stop()
    # The command line's own modules: in the supervisor only (it runs holdfast.cli).
    assert _imports(log, "holdfast.cluster.commands") <= 1
    assert _imports(log, "holdfast.workers.store_commands") <= 1
    # No S3 back-end store, no PostgreSQL, no cluster: none of their libraries anywhere.
    for heavy in ("boto3", "botocore", "psycopg", "cryptography.x509"):
        assert _imports(log, heavy) == 0, heavy
