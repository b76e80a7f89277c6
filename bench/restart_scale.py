"""Restart time with a large index (issue #13, "Restart at scale"): from spawning the process
to the first successful GET of an object that was already stored.

    python bench/restart_scale.py                          # all three, 1,000,000 objects
    python bench/restart_scale.py --engine sqlite --objects 100000
    python bench/restart_scale.py --engine cluster --keep DIR   # keep the loaded cluster

* ``sqlite``: one ``holdfast serve`` on the embedded index.
* ``postgres``: one ``holdfast serve --index-dsn`` on a PostgreSQL of its own.
* ``cluster``: a 3-node ``holdfast cluster dev``. Two figures: one node killed (SIGKILL of
  its process group) and started again from ``cluster.json`` while the others run, until it
  serves a GET; and the whole cluster cold-started (PostgreSQL and 3 nodes, nothing running
  before), until every node serves a GET.

The rows are written straight through the index API in batches (bench/populate.py), not by
S3 PUTs: small inline objects (``--size``, default 64 bytes), so a million fit in a few
hundred MB. Each figure is the median of ``--repeats`` starts, after one start that is not
counted (the first start after a bulk load warms the page cache, as any restart of a
running machine has it). Loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import populate  # noqa: E402
import servers  # noqa: E402
import transfer  # noqa: E402
from loadgen import Presigner  # noqa: E402
from procs import free_ports, tree_cpu_seconds  # noqa: E402
from settings import ACCESS_KEY, REGION, SECRET_KEY  # noqa: E402

READY_TIMEOUT = 120.0


CPU: list[float] = []  # CPU seconds the started process trees had used at each first GET


def _first_get(urls: list[str], started: float, procs: list[subprocess.Popen]) -> float:
    """Seconds from ``started`` until every URL has answered one GET with 200. The CPU the
    process trees used until then goes to CPU: on a shared machine the wall time follows the
    load, the CPU time much less."""
    pending = list(urls)
    deadline = started + READY_TIMEOUT
    while pending and time.perf_counter() < deadline:
        for url in list(pending):
            try:
                status, _, _ = transfer.request("GET", url)
                if status == 200:
                    pending.remove(url)
            except OSError:
                pass
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"process {proc.args!r} exited during the start")
        if pending:
            time.sleep(0.005)
    if pending:
        raise RuntimeError(f"no successful GET within {READY_TIMEOUT}s from {pending}")
    took = time.perf_counter() - started
    CPU.append(sum(tree_cpu_seconds(p.pid) for p in procs))
    return took


def _load(data_dir: Path, n: int, size: int, dsn: str | None) -> float:
    t0 = time.perf_counter()
    populate.populate_index(data_dir, n, index_dsn=dsn, size=size)
    took = time.perf_counter() - t0
    print(f"  loaded {n} object rows in {took:.1f} s", flush=True)
    return took


def single(engine: str, n: int, size: int, repeats: int, work: Path) -> dict:
    kind: servers.Holdfast = ThisCheckoutPostgres() if engine == "postgres" else ThisCheckout()
    kind.install()
    data_dir = work / f"{engine}-data"
    dsn = None
    if engine == "postgres":
        dsn = kind.pg.create_database(f"restart_{os.getpid()}")  # type: ignore[attr-defined]
        kind.argv = _fixed_dsn(kind, dsn)  # every start opens the loaded database
    load = _load(data_dir, n, size, dsn)
    key = populate.key_for(n - 1)
    times = []
    for i in range(repeats + 1):
        port = free_ports(1)[0]
        signer = Presigner(f"http://127.0.0.1:{port}", ACCESS_KEY, SECRET_KEY, REGION)
        srv = servers.start(kind, data_dir, work, port=port)
        try:
            took = _first_get(
                [signer.url("GET", populate.INDEX_BUCKET, key)], srv.started_at, [srv.proc]
            )
        finally:
            srv.stop()
        if i:
            times.append(took)
        print(
            f"  start {i}: first GET after {took:.3f} s, {CPU[-1]:.2f} CPU s"
            f"{' (warm-up)' if not i else ''}"
        )
    return {"engine": engine, "objects": n, "load_s": round(load, 1), "times": times}


def _fixed_dsn(kind: servers.Holdfast, dsn: str):  # type: ignore[no-untyped-def]
    base = ThisCheckout.argv

    def argv(port: int, data_dir: Path, work_dir: Path) -> list[str]:
        return base(kind, port, data_dir, work_dir) + ["--index-dsn", dsn]

    return argv


class ThisCheckout(servers.Holdfast):
    """``python -m holdfast.cli`` of this checkout (PYTHONPATH is set in main), not whatever
    console script is installed."""

    def executable(self) -> str:
        return f"{sys.executable} -m holdfast.cli"

    def argv(self, port: int, data_dir: Path, work_dir: Path) -> list[str]:
        cmd = [sys.executable, "-m", "holdfast.cli", "serve", "--listen", f"127.0.0.1:{port}"]
        return cmd + ["--data", str(data_dir)]


class ThisCheckoutPostgres(servers.HoldfastPostgres, ThisCheckout):
    pass


class DevCluster:
    """``holdfast cluster dev`` as a child process, started and stopped whole."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.proc: subprocess.Popen | None = None

    def start(self) -> float:
        started = time.perf_counter()
        log = open(self.dir.parent / "cluster-dev.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "holdfast.cli", "cluster", "dev", "--dir", str(self.dir)],
            env={
                **os.environ,
                "HOLDFAST_ACCESS_KEY": ACCESS_KEY,
                "HOLDFAST_SECRET_KEY": SECRET_KEY,
            },
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return started

    def doc(self) -> dict:
        return json.loads((self.dir / "cluster.json").read_text())

    def written(self) -> int | None:
        """cluster.json's modification time (ns), None before there is one: taken before a
        start, so that :meth:`wait_written` waits for the file that start writes."""
        path = self.dir / "cluster.json"
        return path.stat().st_mtime_ns if path.exists() else None

    def wait_written(self, before: int | None) -> dict:
        """The cluster.json written after ``before`` (:meth:`written`). A check against the
        clock with a second's slack took the previous start's file when starts came less
        than a second apart, with its PostgreSQL port, since changed."""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            now = self.written()
            if now is not None and now != before:
                return self.doc()
            time.sleep(0.1)
        raise RuntimeError("cluster dev wrote no cluster.json")

    READY_LINE = b"Ctrl-C stops it"  # the banner `cluster dev` prints once every node is ready

    def ready_count(self) -> int:
        path = self.dir.parent / "cluster-dev.log"
        return path.read_bytes().count(self.READY_LINE) if path.exists() else 0

    def wait_ready(self, before: int) -> None:
        """Until ``cluster dev`` has printed its banner once more than ``before`` times: its
        own start is over. A node killed while it still waits for the nodes to be ready
        stops the whole dev cluster, PostgreSQL included (a node answers GETs before then)."""
        deadline = time.monotonic() + READY_TIMEOUT
        while self.ready_count() <= before:
            if time.monotonic() > deadline:
                raise RuntimeError("cluster dev did not finish starting")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(60)
        self.proc = None


def cluster(n: int, size: int, repeats: int, work: Path) -> dict:
    directory = work / "cluster"
    dev = DevCluster(directory)
    before, banners = dev.written(), dev.ready_count()
    dev.start()
    doc = dev.wait_written(before)
    dev.wait_ready(banners)
    load = _load(work / "loader", n, size, doc["index"]["dsn"])
    key = populate.key_for(n - 1)

    def urls_of(doc: dict) -> list[str]:
        return [
            Presigner(node["s3"], ACCESS_KEY, SECRET_KEY, REGION).url(
                "GET", populate.INDEX_BUCKET, key
            )
            for node in doc["nodes"]
        ]

    urls = urls_of(doc)
    _first_get(urls, time.perf_counter(), [])  # the loaded objects are served
    # One node killed and started again by hand while the others run.
    node_times = []
    for i in range(repeats + 1):
        # Read again each time: the cluster is started again for each try, and PostgreSQL
        # may come back on another port (the node's --index-dsn says which).
        doc = dev.doc()
        node, urls = doc["nodes"][0], urls_of(doc)
        pid = node["pid"]
        os.killpg(pid, signal.SIGKILL)
        time.sleep(0.5)
        started = time.perf_counter()
        restart_log = Path(node["data"]).parent / "restart.log"
        with open(restart_log, "ab") as out:  # what a start that failed said
            proc = subprocess.Popen(
                node["argv"],
                env={**os.environ, **node["env"]},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        took = _first_get(urls[:1], started, [proc])
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        if i:
            node_times.append(took)
        print(
            f"  node restart {i}: first GET after {took:.3f} s, {CPU[-1]:.2f} CPU s"
            f"{' (warm-up)' if not i else ''}"
        )
        # cluster dev does not restart a node: start the whole cluster again for the next try
        dev.stop()
        before, banners = dev.written(), dev.ready_count()
        dev.start()
        dev.wait_written(before)
        dev.wait_ready(banners)
        _first_get(urls, time.perf_counter(), [])
    # The whole cluster cold-started: PostgreSQL and 3 nodes, nothing running before.
    cold_times = []
    for i in range(repeats + 1):
        dev.stop()
        started = dev.start()
        took = _first_get(urls, started, [dev.proc])  # type: ignore[list-item]
        if i:
            cold_times.append(took)
        print(
            f"  cluster cold start {i}: every node's first GET after {took:.3f} s,"
            f" {CPU[-1]:.2f} CPU s"
        )
    dev.stop()
    return {
        "engine": "cluster",
        "objects": n,
        "load_s": round(load, 1),
        "node_times": node_times,
        "cold_times": cold_times,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", action="append", choices=["sqlite", "postgres", "cluster"])
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=64, help="bytes per object (inline)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="work here and keep it")
    args = parser.parse_args()
    engines = args.engine or ["sqlite", "postgres", "cluster"]
    work = args.keep or Path(tempfile.mkdtemp(prefix="holdfast-restart-"))
    work.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        work.chmod(0o711)  # PostgreSQL runs as postgres under it
    repo = str(Path(__file__).resolve().parent.parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))
    os.environ.setdefault("HOLDFAST_ACCESS_KEY", ACCESS_KEY)
    os.environ.setdefault("HOLDFAST_SECRET_KEY", SECRET_KEY)
    results = []
    try:
        for engine in engines:
            print(f"{engine}: {args.objects} objects", flush=True)
            if engine == "cluster":
                result = cluster(args.objects, args.size, args.repeats, work)
            else:
                result = single(engine, args.objects, args.size, args.repeats, work)
            results.append(result)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print()
    for r in results:
        if r["engine"] == "cluster":
            print(
                f"cluster  {r['objects']:>9} objects: one node {statistics.median(r['node_times']):.3f} s,"
                f" whole cluster cold {statistics.median(r['cold_times']):.3f} s"
                f" (median of {args.repeats}; load {r['load_s']} s)"
            )
        else:
            print(
                f"{r['engine']:<8} {r['objects']:>9} objects: first GET after"
                f" {statistics.median(r['times']):.3f} s (median of {args.repeats}; load {r['load_s']} s)"
            )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
