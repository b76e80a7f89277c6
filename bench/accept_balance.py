"""Does each worker get its share of the connections? GET and PUT 4 KiB with wrk (1 thread,
16 connections, 8 s each) against a 2-worker `holdfast serve` of this checkout, printing
req/s and the CPU seconds each worker process used during the run (docs/performance.md,
"One socket instead of SO_REUSEPORT"). Run from the repository root:

    .venv/bin/python bench/accept_balance.py

To compare two builds, run it from each checkout in turn, interleaved.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.getcwd())

from tests.conftest import Server, free_port, group_pids  # noqa: E402

PUT_SCRIPT = 'wrk.method = "PUT"\nwrk.body = string.rep("a", 4096)\n'


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def workers(pgid: int) -> list[int]:
    """The processes the supervisor started: the workers and the index committer (which
    idles during GETs), by the names they give themselves (holdfast/server.py)."""
    found = []
    for pid in group_pids(pgid):
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        if comm in ("holdfast-worker", "holdfast-commit"):
            found.append(pid)
    return found


def main() -> None:
    work = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="hf-accept-"))
    script = work / "put.lua"
    script.write_text(PUT_SCRIPT)
    server = Server(data_dirs=[work / "d0"], port=free_port(), workers=2).start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="bench")
        s3.put_object(Bucket="bench", Key="k", Body=os.urandom(4096))
        get = s3.generate_presigned_url("get_object", Params={"Bucket": "bench", "Key": "k"})
        put = s3.generate_presigned_url("put_object", Params={"Bucket": "bench", "Key": "p"})
        procs = workers(server.proc.pid)
        for name, url, extra in (("get4k", get, []), ("put4k", put, ["-s", str(script)])):
            before = {p: cpu_seconds(p) for p in procs}
            out = subprocess.run(
                ["wrk", "-t1", "-c16", "-d8s", *extra, url], capture_output=True, text=True
            ).stdout
            used = sorted(round(cpu_seconds(p) - before[p], 2) for p in procs)
            rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
            print(json.dumps({"workload": name, "rps": rps, "cpu_s_per_process": used}))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
