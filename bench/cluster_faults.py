"""The targets of issue 16 that are about the Holdfast cluster alone, measured by
`bench/run.py --cluster` on its 3-node Holdfast cluster once the comparison workloads
(bench/cluster_bench.py) are done:

* **rss**: every node's RSS (its whole process tree, sampled every 20 ms, as the single-node
  mode does: bench/procs.py's RssSampler) during one 1 GiB PUT, streamed through node n1,
  then its GET; the growth over each node's RSS just before. Target: < 64 MiB on every node.
* **node-kill**: a GET load (SDK-style signed GETs replayed by wrk, the same generator as
  get4k) over 10,000 objects of 4 KiB with 2 copies each, sent to n1; first ``duration``
  seconds with every node up ("before"), then ``duration`` seconds during which n3 gets
  SIGKILL (its whole process group) ``kill_after`` seconds in ("during"). Beside it, on
  fewer connections, a second load over only the objects whose two copies are on n2 and n3,
  so that n1 must read them from another node and, for about half of them, tried n3
  first. Every object keeps a copy on a live node, so every failed GET counts. Target:
  p99 during <= 3x p99 before, no failed GET.
* **repair**: with n3 still down, objects are written to a bucket whose policy wants 3 copies
  (its copy is owed: the hinted-handoff rows of the repair queue); then n3 starts again and
  repair copies them to it, node to node over mutual TLS. The figure is the copying rate
  (bytes owed over the time from the first repair done to the queue empty; the time from
  n3 answering until then is shown too), against one blocking ``ssl`` socket between two
  processes with the cluster's certificates (bench/internal_tls.py's baseline) in the same
  run, and the CPU per GiB of both (every node and PostgreSQL; both processes). Repair is
  rate-limited by default (64 MiB/s, 50 repairs/s, 2 at once): the nodes run with the limits
  raised (:data:`REPAIR_FLAGS`) and the figure says so.

The nodes are restarted first with :data:`REPAIR_FLAGS`, which also gives the RSS figure
fresh processes (earlier workloads' heap would hide growth). Only Holdfast is measured:
these targets are not ratios against SeaweedFS.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import clusters
import transfer
from loadgen import SIGNED_LUA_SCRIPT, Presigner, WrkResult, run_wrk
from procs import RssSampler
from report import Figure
from settings import GIB, KIB, MIB, REGION

HF = clusters.HoldfastCluster.name
RSS_BUCKET = "bench-rss"
FAULT_BUCKET = "bench-fault"
REPAIR_BUCKET = "bench-repair"
VICTIM = 2  # dev.nodes[2], n3; the client talks to dev.nodes[0], n1
# Repair's flow control raised so the figure is the copying path, not the token bucket.
REPAIR_FLAGS = ["--repair-rate", "16GiB", "--repair-ops", "100000", "--repair-concurrency", "4"]
WORKLOADS = ("rss", "node-kill", "node-kill-held", "node-kill-probe", "repair")
RSS_LIMIT_MIB = 64
DOWN_AFTER = 5.0  # s after the kill: n1 judges n3 down by then (liveness: 3 s at least)


@dataclass(frozen=True)
class FaultSettings:
    rss_size: int = 1 * GIB
    objects: int = 10_000
    object_size: int = 4 * KIB
    duration: int = 10  # seconds of each wrk run, before and during
    connections: int = 16
    kill_after: float = 1.0  # seconds into the "during" run
    repair_objects: int = 128
    repair_object_size: int = 4 * MIB
    tls_mib: int = 512
    tls_runs: int = 2
    repair_timeout: float = 600.0

    @classmethod
    def of(cls, s) -> FaultSettings:  # noqa: ANN001 - cluster_bench.ClusterSettings
        if s.smoke:
            return cls(
                rss_size=16 * MIB, objects=s.objects, duration=2, connections=s.connections[0],
                kill_after=0.5, repair_objects=24, repair_object_size=1 * MIB, tls_mib=16,
                tls_runs=1, repair_timeout=120.0,
            )  # fmt: skip
        return cls(objects=s.objects, duration=s.duration, connections=s.connections[0])


# ---- the nodes ----------------------------------------------------------------------------


class Nodes:
    """The dev cluster's nodes as this module drives them: restart, kill, start one."""

    def __init__(self, hf: clusters.HoldfastCluster) -> None:
        self.hf = hf
        self.dev = hf.dev
        self.killed_at = 0.0  # monotonic time n3 got SIGKILL
        self.flags: list[str] = []  # added to every node's command line (restart_all)

    def live(self) -> list:  # noqa: ANN201 - DevNode
        return [n for n in self.dev.nodes if n.proc is not None and n.proc.poll() is None]

    def system(self) -> clusters.System:
        live = self.live()
        n1 = self.dev.nodes[0]
        return clusters.System(
            HF, n1.s3, self.dev.creds.access_key, self.dev.creds.secret_key,
            [n.proc.pid for n in live] + [self.hf.pg.pid],
            [n.data.parent / "node.log" for n in self.dev.nodes],
            [n.data for n in self.dev.nodes],
            [n.name for n in live] + ["postgres"],
        )  # fmt: skip

    def cpu(self) -> float:
        return sum(self.system().cpu_by_process().values())

    def restart_all(self, extra: list[str], timeout: float) -> list[Figure]:
        clusters._stop_procs([n.proc for n in self.live()])
        for node in self.dev.nodes:
            if not any(a == extra[0] for a in node.argv):
                node.argv += extra
            self.dev._spawn(node)
        for node in self.dev.nodes:
            self.dev._wait_ready(node)
        self.hf.wait_peers()
        clusters.wait_serving(self.system(), "bench-ready", timeout)
        self.flags = list(extra)
        return []

    def kill(self, i: int) -> None:
        """kill -9 of the node's whole process group (serve, its workers, its agent)."""
        proc = self.dev.nodes[i].proc
        clusters._signal_group(proc.pid, signal.SIGKILL)
        proc.wait(30)

    def start(self, i: int) -> None:
        self.dev._spawn(self.dev.nodes[i])
        self.dev._wait_ready(self.dev.nodes[i])


def _index(dsn: str, fn: Callable):  # noqa: ANN202 - fn's answer
    """Run ``fn(index)`` on a tool connection to the cluster's index."""
    from holdfast.config import Config
    from holdfast.index import open_index

    async def go():  # noqa: ANN202
        index = open_index(Config(index_dsn=dsn), role="tool")
        await index.start()
        try:
            return await fn(index)
        finally:
            await index.close()

    return asyncio.run(go())


def copies_by_key(dsn: str, bucket: str) -> dict[str, list[str]]:
    """The nodes holding a copy of each object of ``bucket``, in the index's order."""

    async def scan(ix) -> dict[str, list[str]]:  # noqa: ANN001
        out: dict[str, list[str]] = {}
        after = (bucket, "")
        while True:
            batch = await ix.scan_objects(after, 1000)
            for obj in batch:
                if obj.bucket != bucket:
                    return out
                out[obj.key] = [sid.partition("/")[0] for seg in obj.segments for sid in seg.stores]
            if len(batch) < 1000:
                return out
            after = (batch[-1].bucket, batch[-1].key)

    return _index(dsn, scan)


# ---- RSS during 1 GiB transfers ----------------------------------------------------------


def _sampled(
    nodes: Nodes, fn: Callable[[], object]
) -> tuple[dict[str, tuple[int, int]], float, object]:
    """Run ``fn`` while sampling every live node's tree RSS; (name: (baseline, peak)), wall."""
    samplers = {n.name: RssSampler(n.proc.pid) for n in nodes.live()}
    with contextlib.ExitStack() as stack:
        for sampler in samplers.values():
            stack.enter_context(sampler.running())
        t0 = time.perf_counter()
        result = fn()
        wall = time.perf_counter() - t0
    return {k: (s.baseline, s.peak) for k, s in samplers.items()}, wall, result


def rss(nodes: Nodes, f: FaultSettings) -> list[Figure]:
    system = nodes.system()
    transfer.create_bucket(system.presigner, RSS_BUCKET)
    block = memoryview(os.urandom(MIB))
    chunks = [block] * (f.rss_size // MIB)
    size = len(chunks) * MIB
    url = system.presigner.url("PUT", RSS_BUCKET, "big")
    put, put_wall, _ = _sampled(nodes, lambda: transfer.put_stream(url, chunks, size))
    scratch = memoryview(bytearray(MIB))
    url = system.presigner.url("GET", RSS_BUCKET, "big")
    get, get_wall, got = _sampled(nodes, lambda: transfer.get_discard(url, scratch))
    figures = []
    for direction, spans, wall, ok in (
        ("put", put, put_wall, True),
        ("get", get, get_wall, got == size),
    ):
        growths = {}
        for name, (baseline, peak) in spans.items():
            growths[name] = round((peak - baseline) / MIB, 1)
            figures.append(Figure(
                HF, "rss", f"{direction}_growth_mib_{name}", growths[name], "MiB",
                valid=ok, note="" if ok else "GET length differs",
                extra={"node": name, "baseline_mib": round(baseline / MIB, 1),
                       "peak_mib": round(peak / MIB, 1), "object_mib": size / MIB,
                       "seconds": round(wall, 2), "mib_per_s": round(size / MIB / wall, 1)},
            ))  # fmt: skip
        worst = max(growths, key=growths.get)
        figures.append(Figure(
            HF, "rss", f"{direction}_growth_mib", growths[worst], "MiB", valid=ok,
            extra={"node": worst, "by_node": growths, "object_mib": size / MIB,
                   "seconds": round(wall, 2), "mib_per_s": round(size / MIB / wall, 1),
                   "through": "n1", "streamed": True},
        ))  # fmt: skip
    return figures


# ---- one node killed during a GET load ---------------------------------------------------


def _wrk_get(system: clusters.System, lines: list[str], duration: int, conns: int) -> WrkResult:
    return run_wrk(
        system.endpoint, "GET", lines, body_size=0, duration=duration, connections=conns,
        threads=1, script=SIGNED_LUA_SCRIPT,
    )  # fmt: skip


def _both(system, loads: dict[str, tuple[list[str], int]], duration: int, during=None):  # noqa: ANN001, ANN202
    """Run the loads at once (one wrk each); ``during`` runs in this thread meanwhile."""
    with ThreadPoolExecutor(len(loads)) as pool:
        futures = {
            name: pool.submit(_wrk_get, system, lines, duration, conns)
            for name, (lines, conns) in loads.items()
        }
        if during is not None:
            during()
        return {name: fut.result() for name, fut in futures.items()}


def node_kill(nodes: Nodes, f: FaultSettings) -> list[Figure]:
    system = nodes.system()
    me, victim = nodes.dev.nodes[0].name, nodes.dev.nodes[VICTIM].name
    transfer.create_bucket(system.presigner, FAULT_BUCKET)
    # Written through every node in turn, as clients spread over endpoints: a node keeps
    # the first copy of what it receives, so only objects written through n2 or n3 can
    # lack a copy on n1.
    count = len(nodes.dev.nodes)

    def populate(i: int) -> None:
        node = nodes.dev.nodes[i]
        signer = Presigner(node.s3, system.access_key, system.secret_key, REGION)
        transfer.populate(signer, FAULT_BUCKET, keys[i::count], f.object_size, 6)

    for attempt in range(3):
        # A node places copies on a peer only once a heartbeat has brought the peer's
        # drives and their free space, which can come a while after the status page shows
        # the peer up: then every copy lands on the writing node and the peer it knew
        # first. Then a new set of keys is written after a pause (the old ones stay).
        if attempt:
            time.sleep(3)
        keys = [f"f/{attempt}/{i:08d}" for i in range(f.objects)]
        with ThreadPoolExecutor(count) as pool:
            list(pool.map(populate, range(count)))
        where = copies_by_key(nodes.dev.dsn, FAULT_BUCKET)
        on_victim = [k for k in keys if victim in where.get(k, ())]
        held = [k for k in on_victim if me not in where[k]]  # n1 must read them from a peer
        if held:
            break
    first_on_victim = [k for k in held if where[k][0] == victim]
    first_on_other = [k for k in held if where[k][0] != victim]
    victim_first = len(first_on_victim)
    two_copies = sum(len(set(where.get(k, ()))) == 2 for k in keys)
    if not held:  # the "held" load and the probes are left out; the "all" load still runs
        patterns = collections.Counter(tuple(v) for v in where.values())
        print(
            f"  node-kill: no object has its copies on the two other nodes ({len(where)} seen: "
            f"{dict(patterns.most_common(6))}); only the load over every object is measured",
            flush=True,
        )
    signer = system.signer
    held_conns = max(2, f.connections // 4)

    def loads() -> dict[str, tuple[list[str], int]]:  # fresh signatures for each run
        runs = {"all": ([signer.line("GET", FAULT_BUCKET, k) for k in keys], f.connections)}
        if held:
            runs["held"] = ([signer.line("GET", FAULT_BUCKET, k) for k in held], held_conns)
        return runs

    before = _both(system, loads(), f.duration)
    during_loads = loads()
    killed = {}

    probes = [
        (group, signer.sign("GET", FAULT_BUCKET, k))
        for pair in zip(first_on_victim, first_on_other, strict=False)  # alternating
        for group, k in zip(("victim-first", "other-first"), pair, strict=True)
    ]

    def kill() -> None:
        time.sleep(f.kill_after)
        killed["at"] = time.monotonic()
        nodes.kill(VICTIM)
        # Until heartbeats could judge n3 down (3 s at least), one connection GETs objects
        # whose first listed copy is on n3, alternating with objects whose first copy is on
        # n2 (both lack a copy on n1): what trying the dead node first costs, beside the
        # same request that does not, whatever the machine's load.
        killed["probes"] = _probe(system, probes, killed["at"] + PROBE_SECONDS)

    t0 = time.monotonic()
    during = _both(system, during_loads, f.duration, kill)
    nodes.killed_at = killed["at"]  # repair() waits until n1 has judged n3 down
    kill_offset = round(killed["at"] - t0, 2)
    figures = _probe_figures(killed["probes"], kill_offset)
    for name, workload in (("all", "node-kill"), ("held", "node-kill-held")):
        if name not in before:
            continue
        b, d = before[name], during[name]
        failed = d.errors + b.errors
        ratio = d.p99_ms / b.p99_ms if b.p99_ms else None
        extra = {
            "endpoint": me, "killed": victim, "kill_after_s": kill_offset,
            "objects": len(during_loads[name][0]), "connections": during_loads[name][1],
            "duration_s": f.duration, "signed": "header",
            "objects_with_a_copy_on_killed_node": len(on_victim),
            "objects_only_on_peers_incl_killed": len(held),
            "of_those_killed_node_listed_first": victim_first,
            "objects_with_two_copies": two_copies, "objects_total": len(keys),
            "before": _summary(b), "during": _summary(d),
        }  # fmt: skip
        common = dict(valid=d.requests > 0 and b.requests > 0, extra=extra)
        figures += [
            Figure(HF, workload, "p99_before_ms", round(b.p99_ms, 3), "ms", **common),
            Figure(HF, workload, "p99_during_ms", round(d.p99_ms, 3), "ms", **common),
            Figure(HF, workload, "p99_ratio", None if ratio is None else round(ratio, 3), "x",
                   **common),
            Figure(HF, workload, "p50_before_ms", round(b.p50_ms, 3), "ms", **common),
            Figure(HF, workload, "p50_during_ms", round(d.p50_ms, 3), "ms", **common),
            Figure(HF, workload, "ops_before", round(b.ok_per_s, 1), "ops/s", **common),
            Figure(HF, workload, "ops_during", round(d.ok_per_s, 1), "ops/s", **common),
            Figure(HF, workload, "failed_gets", failed, "GETs",
                   note=f"{failed} GETs failed (every object had a copy on a live node)"
                   if failed else "", **common),
        ]  # fmt: skip
    return figures


PROBE_SECONDS = 3.0  # after the kill: liveness judges a silent peer down after 3 s at least


def _probe(system: clusters.System, probes: list, until: float) -> dict[str, list]:
    """GET ``probes`` ((group, signed request)) one after the other on one keep-alive
    connection until ``until``; latencies (s) and failures by group."""
    import http.client

    netloc = system.endpoint.split("//", 1)[1]
    conn = http.client.HTTPConnection(netloc, timeout=60)
    out: dict[str, list] = {}
    try:
        for group, (path, headers) in probes:
            if time.monotonic() >= until:
                break
            t0 = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(netloc, timeout=60)
                ok = False
            out.setdefault(group, []).append((time.perf_counter() - t0, ok))
    finally:
        conn.close()
    return out


def _probe_figures(probes: dict[str, list], kill_offset: float) -> list[Figure]:
    figures = []
    for group in ("victim-first", "other-first"):
        got = probes.get(group, [])
        lat = sorted(t for t, _ in got)
        failed = sum(not ok for _, ok in got)
        p50 = statistics.median(lat) * 1000 if lat else None
        figures.append(Figure(
            HF, "node-kill-probe", f"{group}_p50_ms", None if p50 is None else round(p50, 2),
            "ms", valid=bool(lat),
            note=f"{failed} probe GETs failed" if failed else "",
            extra={"gets": len(lat), "failed": failed, "kill_after_s": kill_offset,
                   "window_s": PROBE_SECONDS,
                   "max_ms": round(lat[-1] * 1000, 2) if lat else None,
                   "latencies_ms": [round(t * 1000, 1) for t in lat]},
        ))  # fmt: skip
    figures.append(Figure(
        HF, "node-kill-probe", "probe_failed_gets", sum(f.extra["failed"] for f in figures),
        "GETs", extra={"window_s": PROBE_SECONDS},
    ))  # fmt: skip
    return figures


def _summary(r: WrkResult) -> dict:
    return {
        "requests": r.requests, "errors": r.errors, "status_errors": r.status_errors,
        "seconds": round(r.duration_s, 2), "p50_ms": round(r.p50_ms, 3),
        "p90_ms": round(r.p90_ms, 3), "p99_ms": round(r.p99_ms, 3),
    }  # fmt: skip


# ---- repair over mutual TLS, against Python's ssl between two processes -------------------


def tls_baseline(pki_dir: Path, mib: int) -> tuple[float, float]:
    """(bytes/s, CPU s/GiB of both processes) of one blocking ``ssl`` socket between this
    process and a child (:func:`serve_tls`), 1 MiB sendall/recv_into, TLS 1.3 with the
    cluster's node certificates, as bench/internal_tls.py's baseline."""
    import socket

    from internal_tls import ident

    from holdfast.net.tls import client_context

    total = mib * MIB
    child = subprocess.Popen(
        [sys.executable, __file__, "serve-tls", str(pki_dir), str(mib)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout is not None
    try:
        port = int(child.stdout.readline())
        raw = socket.create_connection(("127.0.0.1", port))
        sock = client_context(ident(pki_dir, "n1")).wrap_socket(raw)
        data = os.urandom(MIB)
        sock.sendall(b"x")  # the handshake done on both sides before the clock
        sock.recv(1)
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(total // MIB):
            sock.sendall(data)
        theirs = float(sock.recv(64).decode())
        wall = time.perf_counter() - t0
        mine = time.process_time() - c0
        sock.close()
    finally:
        child.wait(30)
    return total / wall, (mine + theirs) / (total / GIB)


def serve_tls(pki_dir: Path, mib: int) -> None:
    """The other end of :func:`tls_baseline`: receive ``mib`` MiB, answer with the CPU
    seconds that took."""
    import socket

    from internal_tls import ident

    from holdfast.net.tls import server_context

    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    conn, _ = listener.accept()
    sock = server_context(ident(pki_dir, "n2")).wrap_socket(conn, server_side=True)
    sock.recv(1)
    sock.sendall(b"k")
    view = memoryview(bytearray(MIB))
    c0, got, total = time.process_time(), 0, mib * MIB
    while got < total:
        n = sock.recv_into(view)
        if not n:
            break
        got += n
    sock.sendall(f"{time.process_time() - c0:.6f}".encode())
    sock.close()


def _owed(dsn: str, node: str, blobs: list[str] | None = None) -> tuple[int, int, list[str]]:
    """(rows, bytes, blob ids) of the repair queue for ``node``'s drives (only ``blobs``)."""
    import psycopg

    sql = "SELECT blob_id, size FROM repair_queue WHERE store_id LIKE %s"
    args: tuple = (node + "/%",)
    if blobs is not None:
        sql += " AND blob_id = ANY(%s)"
        args += (blobs,)
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(sql, args).fetchall()
    return len(rows), sum(int(size) for _, size in rows), [b for b, _ in rows]


def repair(nodes: Nodes, f: FaultSettings) -> list[Figure]:
    victim = nodes.dev.nodes[VICTIM]
    if victim.proc is not None and victim.proc.poll() is None:
        nodes.kill(VICTIM)
        nodes.killed_at = time.monotonic()
    system = nodes.system()
    dsn = nodes.dev.dsn
    transfer.create_bucket(system.presigner, REPAIR_BUCKET)
    _index(dsn, lambda ix: ix.set_bucket_policy(REPAIR_BUCKET, 3, 1))
    # Worker processes reload bucket policies every couple of seconds; n1 must also have
    # judged n3 down, so the third copy is owed (a handoff row), not tried.
    wait = max(4.0, nodes.killed_at + DOWN_AFTER - time.monotonic())
    time.sleep(wait)
    _, _, before = _owed(dsn, victim.name)
    size = f.repair_object_size
    urls = [
        system.presigner.url("PUT", REPAIR_BUCKET, f"r/{i:05d}") for i in range(f.repair_objects)
    ]
    payload = os.urandom(size)

    def put(i_url: tuple[int, str]) -> None:
        i, url = i_url
        body = [memoryview(payload[:-8]), memoryview(i.to_bytes(8, "big"))]
        status, _, resp = transfer.put_retrying(url, body, size)
        transfer.expect(status, (200,), "repair PUT", resp)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(put, enumerate(urls)))
    _, _, now = _owed(dsn, victim.name)
    ours = sorted(set(now) - set(before))  # the copies owed for these PUTs
    rows, owed, _ = _owed(dsn, victim.name, ours)
    if rows < f.repair_objects:
        raise RuntimeError(f"{rows} repair rows for {victim.name}, {f.repair_objects} expected")

    pki_dir = nodes.dev.dir / "pki"
    # The nodes do nothing meanwhile but their background work (heartbeats, state files,
    # status refreshes): its CPU rate, per process, is subtracted from repair's below.
    idle0, t_idle = nodes.system().cpu_by_process(), time.monotonic()
    runs = [tls_baseline(pki_dir, f.tls_mib) for _ in range(f.tls_runs)]
    idle1, t_idle = nodes.system().cpu_by_process(), time.monotonic() - t_idle
    idle = {k: max(0.0, idle1[k] - idle0.get(k, 0.0)) / t_idle for k in idle1}
    nodes_idle = [v for k, v in idle.items() if k != "postgres"]
    idle[victim.name] = sum(nodes_idle) / max(1, len(nodes_idle))  # n3 is down: like the others
    base_rate, base_cpu = max(runs)

    # n3 starts again; the queue is watched from the spawn on (repair may begin before its
    # S3 port answers). The copying rate and its CPU are taken from the first repair done
    # to the queue empty, so n3's start-up is in neither.
    t_spawn = time.monotonic()
    nodes.dev._spawn(victim)
    ready = ThreadPoolExecutor(1)
    answered = ready.submit(lambda: (nodes.dev._wait_ready(victim), time.monotonic())[1])
    samples = [(t_spawn, rows, owed)]
    cpu_first: float | None = None
    deadline = t_spawn + f.repair_timeout
    while True:
        n, left, _ = _owed(dsn, victim.name, ours)
        samples.append((time.monotonic(), n, left))
        if n < rows and cpu_first is None:
            cpu_first = nodes.cpu()
        if n == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    cpu_end = nodes.cpu()
    t_ready = answered.result(timeout=120)
    ready.shutdown()
    t_done = samples[-1][0]
    done = samples[-1][1] == 0
    i_first = next((i for i, s in enumerate(samples) if s[1] < rows), len(samples) - 1)
    first = samples[i_first]  # the first look that found a repair finished
    steady_bytes = first[2] - samples[-1][2]  # bytes copied after it
    steady_s = t_done - first[0]
    how = "from the first repair done to the queue empty"
    cpu: float | None = cpu_end - (cpu_first if cpu_first is not None else cpu_end)
    if not (steady_s > 0 and steady_bytes > 0) and i_first > 0:
        # Too quick to see two looks apart (a smoke run): every byte, from the look before.
        steady_bytes, steady_s = owed - samples[-1][2], t_done - samples[i_first - 1][0]
        how, cpu = "every byte, from the last look before the first repair done", None
    rate = steady_bytes / steady_s if steady_s > 0 and steady_bytes > 0 else None
    end_to_end = (owed - samples[-1][2]) / (t_done - t_spawn)
    steady_gib = steady_bytes / GIB
    background = sum(idle.values()) * steady_s
    per_gib = None if cpu is None or not steady_gib else round(cpu / steady_gib, 3)
    less_idle = None if per_gib is None else round(max(0.0, cpu - background) / steady_gib, 3)
    common = dict(
        valid=done,
        note="" if done else f"{samples[-1][1]} repairs still queued after {f.repair_timeout:.0f} s",
        extra={
            "copies_owed": rows, "bytes_owed": owed, "object_mib": size / MIB,
            "repair_flags": " ".join(nodes.flags) or "defaults",
            "rate_limited": "raised (see repair_flags)" if nodes.flags else "default limits",
            "n3_answered_after_s": round(t_ready - t_spawn, 2),
            "first_done_after_s": round(first[0] - t_spawn, 2),
            "queue_empty_after_s": round(t_done - t_spawn, 2),
            "steady_bytes": steady_bytes, "steady_seconds": round(steady_s, 3),
            "rate_measured": how,
            "end_to_end_mib_per_s": round(end_to_end / MIB, 1),
            "tls_baseline_mib_per_s": round(base_rate / MIB, 1),
            "tls_baseline_runs_mib_per_s": [round(r / MIB, 1) for r, _ in runs],
            "tls_baseline_cpu_s_per_gib": round(base_cpu, 3),
            "tls_mib": f.tls_mib,
            "cpu_s_per_gib": per_gib,
            "cpu_counted": "every node's process tree and PostgreSQL, from the first repair "
                           "done to the queue empty, over the bytes copied meanwhile",
            "idle_cpu_cores": {k: round(v, 3) for k, v in idle.items()},
            "cpu_s_per_gib_less_idle": less_idle,
        },
    )  # fmt: skip
    return [
        Figure(HF, "repair", "mib_per_s", None if rate is None else round(rate / MIB, 1),
               "MiB/s", **common),
        Figure(HF, "repair", "tls_baseline_mib_per_s", round(base_rate / MIB, 1), "MiB/s",
               **common),
        Figure(HF, "repair", "ratio_to_tls", None if rate is None else round(rate / base_rate, 3),
               "x", **common),
        Figure(HF, "repair", "cpu_s_per_gib", per_gib, "s/GiB", **common),
        Figure(HF, "repair", "tls_baseline_cpu_s_per_gib", round(base_cpu, 3), "s/GiB", **common),
    ]  # fmt: skip


# ---- running them, judging them, showing them ---------------------------------------------


def run(
    hf: clusters.HoldfastCluster,
    s,  # noqa: ANN001 - cluster_bench.ClusterSettings
    add: Callable[[Figure], None],
    only: set[str] | None = None,
    f: FaultSettings | None = None,
) -> bool:
    """All three (or ``only`` those) on the Holdfast cluster, left with n3 restarted;
    False if one failed."""
    f = f or FaultSettings.of(s)
    nodes = Nodes(hf)
    ok = True
    steps = [("rss", lambda: rss(nodes, f))]
    if not s.smoke:  # the smoke run keeps its nodes (and repair's default limits): ~30 s less
        steps.insert(0, ("restart", lambda: nodes.restart_all(REPAIR_FLAGS, s.ready_timeout)))
    steps += [
        ("node-kill", lambda: node_kill(nodes, f)),
        ("repair", lambda: repair(nodes, f)),
    ]
    for label, fn in steps:
        if only is not None and label not in only and label != "restart":
            continue
        print(f"{HF}: {label}", flush=True)
        t0 = time.perf_counter()
        try:
            for fig in fn():
                add(fig)
        except Exception as exc:  # one failure is a figure; the next steps still run
            ok = False
            add(Figure(HF, label, "error", None, "", note=str(exc)[:300], valid=False))
            print(f"  failed: {exc}", flush=True)
            if label == "restart":
                return False
            continue
        print(f"  ({time.perf_counter() - t0:.1f} s)", flush=True)
    return ok


@dataclass(frozen=True)
class Target:
    text: str
    judge: Callable[[Callable[[str, str], float | None]], tuple[float | None, bool | None]]


def _kill_target(workload: str) -> Callable:
    def judge(value: Callable[[str, str], float | None]) -> tuple[float | None, bool | None]:
        ratio, failed = value(workload, "p99_ratio"), value(workload, "failed_gets")
        if ratio is None or failed is None:
            return None, None
        if workload == "node-kill-held":  # the probe GETs are of those objects too
            failed += value("node-kill-probe", "probe_failed_gets") or 0
        return ratio, ratio <= 3.0 and failed == 0

    return judge


def _rss_judge(value: Callable[[str, str], float | None]) -> tuple[float | None, bool | None]:
    put, get = value("rss", "put_growth_mib"), value("rss", "get_growth_mib")
    if put is None or get is None:
        return None, None
    worst = max(put, get)
    return worst, worst < RSS_LIMIT_MIB


def _repair_judge(value: Callable[[str, str], float | None]) -> tuple[float | None, bool | None]:
    ratio = value("repair", "ratio_to_tls")
    return ratio, None if ratio is None else ratio >= 0.5


TARGETS = [
    Target(
        "One of 3 nodes killed during a GET load (10,000 objects): p99 during/before <= 3, "
        "no GET fails",
        _kill_target("node-kill"),
    ),
    Target(
        "Same, GETs of the objects whose copies are on the killed node and one other peer: "
        "p99 during/before <= 3, no GET fails",
        _kill_target("node-kill-held"),
    ),
    Target("Server RSS, each node, during 1 GiB transfers: growth (MiB) < 64", _rss_judge),
    Target(
        "Repair between 2 nodes over mutual TLS >= 0.5x Python ssl between 2 processes",
        _repair_judge,
    ),
]


def judge(figures: list[Figure]) -> list[dict]:
    def value(workload: str, metric: str) -> float | None:
        for f in figures:
            if (f.server, f.workload, f.metric) == (HF, workload, metric):
                return f.value if f.valid else None
        return None

    out = []
    for t in TARGETS:
        ratio, met = t.judge(value)
        out.append({"target": t.text, "ratio": None if ratio is None else round(ratio, 3),
                    "met": met, "holdfast_only": True})  # fmt: skip
    return out


def markdown(figures: list[Figure]) -> list[str]:
    """The rows of this module's figures, for cluster_bench's report."""
    by = {(f.workload, f.metric): f for f in figures if f.server == HF and f.workload in WORKLOADS}
    if not by:
        return []

    def v(w: str, m: str, fmt: str = "{:.1f}") -> str:
        f = by.get((w, m))
        return "-" if f is None or f.value is None else fmt.format(f.value)

    rows = ["", "Holdfast cluster under faults (bench/cluster_faults.py):", "",
            "| figure | value | detail |", "|---|---|---|"]  # fmt: skip
    for w, label in (("node-kill", "all 10,000 objects"), ("node-kill-held", "objects on n2+n3")):
        if (w, "p99_ratio") not in by:
            continue
        e = by[(w, "p99_ratio")].extra
        rows.append(
            f"| n3 killed during GETs via n1, {label} | p99 {v(w, 'p99_before_ms', '{:.2f}')} → "
            f"{v(w, 'p99_during_ms', '{:.2f}')} ms ({v(w, 'p99_ratio', '{:.2f}')}×), "
            f"{v(w, 'failed_gets', '{:.0f}')} failed | p50 {v(w, 'p50_before_ms', '{:.2f}')} → "
            f"{v(w, 'p50_during_ms', '{:.2f}')} ms; {v(w, 'ops_before', '{:,.0f}')} → "
            f"{v(w, 'ops_during', '{:,.0f}')} ops/s; {e['objects']} objects, "
            f"{e['connections']} conns, kill {e['kill_after_s']} s into {e['duration_s']} s |"
        )
    vf, of = (
        by.get(("node-kill-probe", "victim-first_p50_ms")),
        by.get(("node-kill-probe", "other-first_p50_ms")),
    )
    if vf is not None and of is not None:
        rows.append(
            f"| the first {vf.extra['window_s']:.0f} s after the kill, one connection, objects "
            f"on n2+n3 | p50 {v('node-kill-probe', 'victim-first_p50_ms', '{:.1f}')} ms with "
            f"n3's copy listed first vs {v('node-kill-probe', 'other-first_p50_ms', '{:.1f}')} "
            f"ms with n2's | max {vf.extra['max_ms']} vs {of.extra['max_ms']} ms; "
            f"{vf.extra['gets']} + {of.extra['gets']} GETs, "
            f"{v('node-kill-probe', 'probe_failed_gets', '{:.0f}')} failed |"
        )
    for d in ("put", "get"):
        f = by.get(("rss", f"{d}_growth_mib"))
        if f is not None:
            nodes = ", ".join(f"{k} {x}" for k, x in f.extra["by_node"].items())
            rows.append(
                f"| RSS growth, {d.upper()} {f.extra['object_mib']:.0f} MiB via n1 "
                f"| {v('rss', f'{d}_growth_mib')} MiB (max) | {nodes} MiB; "
                f"{f.extra['mib_per_s']} MiB/s |"
            )
    f = by.get(("repair", "tls_baseline_mib_per_s"))
    if f is not None:
        e = f.extra
        rows.append(
            f"| repair to n3 over mTLS ({e['copies_owed']} × {e['object_mib']:.0f} MiB) "
            f"| {v('repair', 'mib_per_s')} MiB/s vs ssl {v('repair', 'tls_baseline_mib_per_s')} "
            f"MiB/s ({v('repair', 'ratio_to_tls', '{:.2f}')}×) | CPU "
            f"{v('repair', 'cpu_s_per_gib', '{:.2f}')} s/GiB vs ssl "
            f"{v('repair', 'tls_baseline_cpu_s_per_gib', '{:.2f}')} s/GiB (repair less the "
            f"nodes' idle CPU: {e['cpu_s_per_gib_less_idle']} s/GiB); queue empty "
            f"{e['queue_empty_after_s']} s after n3 was started ({e['end_to_end_mib_per_s']} "
            f"MiB/s; it answered S3 after {e['n3_answered_after_s']} s); "
            f"repair limits: `{e['repair_flags']}` |"
        )
    return rows


def main(argv: list[str]) -> int:
    """Only this module's figures, on a Holdfast cluster of its own (no comparison run):
    ``python bench/cluster_faults.py [--smoke] [--objects N] [--duration S]``."""
    import argparse
    import json
    import shutil
    import tempfile
    from dataclasses import asdict, replace

    from cluster_bench import FULL, SMOKE

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--objects", type=int)
    ap.add_argument("--duration", type=int)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--steps", help="comma-separated: rss,node-kill,repair (default all)")
    ap.add_argument("--repair-objects", type=int, help="4 MiB objects repaired (128)")
    args = ap.parse_args(argv)
    s = SMOKE if args.smoke else FULL
    if args.objects:
        s = replace(s, objects=args.objects)
    if args.duration:
        s = replace(s, duration=args.duration)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the cluster on the way
    top = Path(tempfile.mkdtemp(prefix="holdfast-cfaults-"))
    top.chmod(0o755)
    hf = clusters.HoldfastCluster(top)
    figures: list[Figure] = []
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    try:
        hf.start(s.ready_timeout)
        f = FaultSettings.of(s)
        if args.repair_objects:
            f = replace(f, repair_objects=args.repair_objects)
        only = set(args.steps.split(",")) if args.steps else None
        ok = run(hf, s, figures.append, only, f)
    finally:
        hf.stop()
        if not args.keep:
            shutil.rmtree(top, ignore_errors=True)
    print("\n".join(markdown(figures)))
    for t in judge(figures):
        print(f"- {t['target']}: {t['ratio']} -> {t['met']}")
    print(f"load average before: {load}")
    out = Path(tempfile.gettempdir()) / f"cluster-faults-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps([asdict(f) for f in figures], indent=1))
    print(f"figures: {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve-tls"]:
        serve_tls(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit(main(sys.argv[1:]))
