"""The eight workloads of issue 3.

Shared workloads run against one already-started server. Holdfast-only
workloads (restart, scale) start and stop their own instances because they
are about start-up and about what is already in the index.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import populate
import servers
import transfer
from loadgen import (
    LUA_SCRIPT,
    SIGNED_LUA_SCRIPT,
    HeaderSigner,
    Presigner,
    WrkResult,
    replay_threads,
    run_wrk,
)
from procs import CpuMeter, RssSampler, free_ports
from report import Figure, Results
from settings import ACCESS_KEY, BUCKET, LIST_BUCKET, MIB, REGION, SECRET_KEY, Settings

MAX_ERROR_RATIO = 0.01
TAIL = 4096  # unique tail per large object, so each one has its own MD5


class Skipped(Exception):
    """A figure that cannot be measured in this setup; the reason goes in the table."""


@dataclass
class Context:
    """What every workload shares across servers in one run."""

    settings: Settings
    work_dir: Path
    results: Results
    _large: list[transfer.LargeObject] = field(default_factory=list)
    _buffers: list[bytearray] = field(default_factory=list)
    _base: bytes = b""

    def base(self) -> memoryview:
        """One random block reused by every large payload (made once per run)."""
        if not self._base:
            self._base = os.urandom(self.settings.large_size)
        return memoryview(self._base)

    def large_objects(self) -> list[transfer.LargeObject]:
        """The large objects: the shared random block with a distinct tail each."""
        if not self._large:
            head = self.base()[:-TAIL]
            prefix = hashlib.md5(head)
            for i in range(self.settings.large_count):
                tail = memoryview(i.to_bytes(8, "big") * (TAIL // 8))
                digest = prefix.copy()
                digest.update(tail)
                size = len(head) + TAIL
                self._large.append(
                    transfer.LargeObject(f"large/{i:03d}", [head, tail], size, digest.hexdigest())
                )
        return self._large

    def buffers(self) -> list[bytearray]:
        """Receive buffers for large GETs, allocated once and reused for every server."""
        if not self._buffers:
            size = self.settings.large_size
            self._buffers = [bytearray(size + 1) for _ in range(self.settings.large_count)]
        return self._buffers


# ---- 4 KiB PUT and GET through wrk ----------------------------------------------


def _wrk_figures(
    server: str, workload: str, r: WrkResult, cpu: CpuMeter, extra: dict
) -> list[Figure]:
    """ops/s, p50 and p99 of one wrk run; a run with too many errors is marked invalid."""
    valid = r.error_ratio <= MAX_ERROR_RATIO
    ok = r.requests - r.errors
    note = "" if valid else f"{r.errors} of {r.requests} requests failed"
    if valid and r.wrapped and workload.startswith("put"):
        note = f"PUT URL list ran out {r.wrapped}x: later PUTs overwrite keys"
    common = dict(
        client_cpu=round(r.client_cores, 3),
        server_cpu=round(cpu.cores(cpu.server_cpu), 3),
        note=note,
        valid=valid,
        extra={
            **extra,
            "requests": r.requests,
            "errors": r.errors,
            "p90_ms": r.p90_ms,
            "cpu_ms_per_op": round(cpu.server_cpu / ok * 1000, 3) if ok else None,
        },
    )
    return [
        Figure(server, workload, "ops_per_s", round(r.ok_per_s, 1), "ops/s", **common),
        Figure(server, workload, "p50_ms", r.p50_ms, "ms", **common),
        Figure(server, workload, "p99_ms", r.p99_ms, "ms", **common),
        Figure(
            server,
            workload,
            "cpu_ms_per_op",
            common["extra"]["cpu_ms_per_op"],
            "ms",
            **{**common, "note": ""},
        ),
    ]


def _wrk(
    ctx: Context,
    srv: servers.RunningServer,
    method: str,
    paths: list[str],
    script: Path = LUA_SCRIPT,
) -> tuple[WrkResult, CpuMeter, dict]:
    """One timed wrk run of `paths` (presigned, or header-signed lines with
    SIGNED_LUA_SCRIPT), metering the server's CPU alongside."""
    s = ctx.settings
    body = s.small_size if method == "PUT" else 0
    with meter(srv).running() as cpu:
        r = run_wrk(
            srv.endpoint,
            method,
            paths,
            body_size=body,
            duration=s.duration,
            connections=s.connections,
            threads=s.wrk_threads,
            script=script,
        )
    signed = "header" if script == SIGNED_LUA_SCRIPT else "presigned"
    extra = {
        "connections": s.connections,
        "duration_s": s.duration,
        "urls": len(paths),
        "signed": signed,
    }
    return r, cpu, extra


def header_signer(srv: servers.RunningServer) -> HeaderSigner:
    """SigV4 in the Authorization header, each request with its own date and signature, the
    payload's SHA-256 signed: how SDKs sign (the cluster mode's signer, bench/loadgen.py)."""
    return HeaderSigner(srv.endpoint, ACCESS_KEY, SECRET_KEY, REGION)


def signed_lines(
    srv: servers.RunningServer, method: str, bucket: str, keys: list[str], body: bytes = b""
) -> list[str]:
    """Requests for bench/replay_signed.lua, all signed before the clock starts."""
    signer = header_signer(srv)
    return [signer.line(method, bucket, k, body) for k in keys]


def _cache_lookups(srv: servers.RunningServer) -> tuple[float, float] | None:
    """(hits, misses) of Holdfast's presigned-URL cache so far, node-wide; None for a server
    without one. Its hit rate goes next to every small GET and HEAD figure (issue 16)."""
    if not isinstance(srv.kind, servers.Holdfast):
        return None
    path, headers = header_signer(srv).sign("GET", "_holdfast", "metrics")
    conn = http.client.HTTPConnection(srv.endpoint.split("//", 1)[1], timeout=30)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    transfer.expect(resp.status, (200,), "metrics", body)
    found: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line.startswith("holdfast_presigned_cache_lookups_total{"):
            series, _, value = line.rpartition(" ")
            for result in ("hit", "miss"):
                if f'result="{result}"' in series:
                    found[result] = found.get(result, 0.0) + float(value)
    if not found:  # a Holdfast older than the counter (exported as 0 from the start)
        return None
    return found.get("hit", 0.0), found.get("miss", 0.0)


def _with_hit_rate(
    figs: list[Figure], srv: servers.RunningServer, before: tuple[float, float] | None
) -> list[Figure]:
    """Adds the signature cache's hit rate over the run as a figure of its own, next to the
    throughput: hits over the requests the run sent (0 when none was looked up)."""
    after = _cache_lookups(srv)
    if before is None or after is None:
        if isinstance(srv.kind, servers.Holdfast):
            fig = figs[0]
            figs.append(Figure(fig.server, fig.workload, "sig_cache_hit_rate", None, "share",
                               note="this Holdfast does not export the cache's counter"))  # fmt: skip
        return figs
    hits, misses = after[0] - before[0], after[1] - before[1]
    sent = figs[0].extra.get("requests") or 0
    rate = round(hits / sent, 3) if sent else None
    for f in figs:
        f.extra["signature_cache"] = {"hits": hits, "misses": misses, "requests": sent}
    fig = figs[0]
    return figs + [
        Figure(fig.server, fig.workload, "sig_cache_hit_rate", rate, "share",
               extra={"hits": hits, "misses": misses, "requests": sent})
    ]  # fmt: skip


def meter(srv: servers.RunningServer) -> CpuMeter:
    """The server's CPU: its process tree, and for holdfast-pg its PostgreSQL's too."""
    pg = getattr(srv.kind, "pg", None)
    return CpuMeter(srv.pid, also=(pg.pid,) if pg is not None and pg.pid else ())


def put_paths(signer: Presigner, bucket: str, prefix: str, count: int) -> list[str]:
    """Presigned PUTs to `count` fresh keys under `prefix` (signing done before the clock)."""
    return [signer.path("PUT", bucket, f"{prefix}/{i:08d}") for i in range(count)]


def put4k(ctx: Context, srv: servers.RunningServer) -> list[Figure]:
    """1) PUT 4 KiB objects to fresh keys for a fixed time, signed as SDKs sign."""
    s = ctx.settings
    keys = [f"put4k/{i:08d}" for i in range(s.put_pool())]
    body = b"x" * s.small_size  # what replay_signed.lua sends
    lines = signed_lines(srv, "PUT", BUCKET, keys, body)
    r, cpu, extra = _wrk(ctx, srv, "PUT", lines, SIGNED_LUA_SCRIPT)
    return _wrk_figures(srv.kind.name, "put4k", r, cpu, extra)


def get4k(ctx: Context, srv: servers.RunningServer) -> list[Figure]:
    """2) GET and HEAD 4 KiB objects over `get_keys` (10,000) distinct ones.

    The headline `get4k` and `head4k` are signed as SDKs sign (SigV4 in the header, a date
    and a signature of their own each, so no signature repeats); `get4k-presigned` replays
    presigned URLs of the same keys, a separate figure. Each carries the presigned-URL
    cache's hit rate over its run (Holdfast only)."""
    s = ctx.settings
    keys = [f"get4k/{i:08d}" for i in range(s.get_keys)]
    transfer.populate(srv.signer, BUCKET, keys, s.small_size, s.populate_connections)
    figs: list[Figure] = []
    for workload, lines, script in (
        ("get4k", signed_lines(srv, "GET", BUCKET, keys), SIGNED_LUA_SCRIPT),
        ("get4k-presigned", [srv.signer.path("GET", BUCKET, k) for k in keys], LUA_SCRIPT),
    ):
        before = _cache_lookups(srv)
        r, cpu, extra = _wrk(ctx, srv, "GET", lines, script)
        extra["objects"] = len(keys)
        figs += _with_hit_rate(_wrk_figures(srv.kind.name, workload, r, cpu, extra), srv, before)
    before = _cache_lookups(srv)
    figs += _with_hit_rate(head4k(ctx, srv, keys), srv, before)
    return figs


def head4k(ctx: Context, srv: servers.RunningServer, keys: list[str]) -> list[Figure]:
    """HEAD each object once, header-signed, from Python threads (wrk waits for the body a
    HEAD's Content-Length announces): a slower client than wrk, so compare HEAD figures with
    each other, not with get4k's."""
    signer = header_signer(srv)
    reqs = [signer.sign("HEAD", BUCKET, k) for k in keys]
    with meter(srv).running() as cpu:
        r = replay_threads(srv.endpoint, "HEAD", reqs, ctx.settings.connections, ok=(200,))
    sent = len(r.latencies)
    ok = sent - r.failed
    valid = sent > 0 and r.failed <= MAX_ERROR_RATIO * sent
    common = dict(
        client_cpu=round(r.client_cpu_s / r.wall, 3) if r.wall else None,
        server_cpu=round(cpu.cores(cpu.server_cpu), 3),
        note="" if valid else f"{r.failed} of {sent} requests failed",
        valid=valid,
        extra={
            "connections": ctx.settings.connections,
            "signed": "header",
            "client": "python threads, each key once",
            "objects": len(keys),
            "requests": sent,
            "errors": r.failed,
            "seconds": round(r.wall, 3),
            "cpu_ms_per_op": round(cpu.server_cpu / ok * 1000, 3) if ok else None,
        },
    )
    name = srv.kind.name
    return [
        Figure(name, "head4k", "ops_per_s", round(ok / r.wall, 1) if r.wall else None, "ops/s",
               **common),
        Figure(name, "head4k", "p50_ms", round(r.quantile_ms(50), 3), "ms", **common),
        Figure(name, "head4k", "p99_ms", round(r.quantile_ms(99), 3), "ms", **common),
        Figure(name, "head4k", "cpu_ms_per_op", common["extra"]["cpu_ms_per_op"], "ms",
               **{**common, "note": ""}),
    ]  # fmt: skip


# ---- listing --------------------------------------------------------------------


def list_keys(ctx: Context, srv: servers.RunningServer) -> list[Figure]:
    """3) ListObjectsV2 over the whole key set, page by page; median of repeats."""
    s = ctx.settings
    transfer.create_bucket(srv.signer, LIST_BUCKET)
    keys = [f"list/{i:08d}" for i in range(s.list_keys)]
    transfer.populate(srv.signer, LIST_BUCKET, keys, 16, s.populate_connections)
    times, counts = [], []
    with meter(srv).running() as cpu:
        for _ in range(s.list_repeats):
            t0 = time.perf_counter()
            pages, n = transfer.list_all(srv.signer, LIST_BUCKET, s.list_page)
            times.append(time.perf_counter() - t0)
            counts.append(n)
    valid = all(n == s.list_keys for n in counts)
    return [
        Figure(
            srv.kind.name,
            "list",
            "seconds",
            round(statistics.median(times), 4),
            "s",
            client_cpu=round(cpu.cores(cpu.client_cpu), 3),
            server_cpu=round(cpu.cores(cpu.server_cpu), 3),
            note="" if valid else f"listed {counts} keys, expected {s.list_keys}",
            valid=valid,
            extra={"keys": s.list_keys, "page": s.list_page, "pages": pages, "times": times},
        )
    ]


# ---- large objects --------------------------------------------------------------


def _parallel(ctx: Context, srv: servers.RunningServer, fn: Callable, args: list) -> tuple:
    """Run fn over args with the configured parallelism, metering CPU on both sides."""
    with (
        meter(srv).running() as cpu,
        ThreadPoolExecutor(ctx.settings.large_parallel) as pool,
    ):
        out = list(pool.map(fn, *zip(*args, strict=True)))
    return out, cpu


def _upload_large(ctx: Context, srv: servers.RunningServer) -> tuple[list[str], CpuMeter]:
    objs = ctx.large_objects()
    args = [(srv.signer.url("PUT", BUCKET, o.key), o.chunks, o.size) for o in objs]
    return _parallel(ctx, srv, transfer.put_stream, args)


def _mb_figure(ctx: Context, srv, workload: str, cpu: CpuMeter, **kw) -> Figure:
    total = sum(o.size for o in ctx.large_objects())
    s = ctx.settings
    extra = {
        "objects": s.large_count,
        "size_mib": s.large_size / MIB,
        "parallel": s.large_parallel,
        "seconds": round(cpu.wall, 3),
        **kw.pop("extra", {}),
    }
    return Figure(
        srv.kind.name,
        workload,
        "mb_per_s",
        round(total / cpu.wall / 1e6, 1),
        "MB/s",
        client_cpu=round(cpu.cores(cpu.client_cpu), 3),
        server_cpu=round(cpu.cores(cpu.server_cpu), 3),
        extra=extra,
        **kw,
    )


def put64m(ctx: Context, srv: servers.RunningServer) -> list[Figure]:
    """4) PUT the large objects, a few in parallel; MB/s (1 MB = 10^6 bytes)."""
    transfer.retried.clear()
    etags, cpu = _upload_large(ctx, srv)
    bad = sum(e != o.md5 for e, o in zip(etags, ctx.large_objects(), strict=True))
    notes = [f"{bad} ETags differ from the MD5"] if bad else []
    if transfer.retried["put"]:
        notes.append(f"{transfer.retried['put']} PUTs retried after a 5xx (time included)")
    note = "; ".join(notes)
    return [_mb_figure(ctx, srv, "put64m", cpu, note=note)]


def get64m(ctx: Context, srv: servers.RunningServer) -> list[Figure]:
    """5) GET the large objects into memory; MD5 compared after the clock stops."""
    objs = ctx.large_objects()
    if not ctx.results.value(srv.kind.name, "put64m", "mb_per_s"):
        _upload_large(ctx, srv)
    bufs = ctx.buffers()
    args = [
        (srv.signer.url("GET", BUCKET, o.key), memoryview(b))
        for o, b in zip(objs, bufs, strict=True)
    ]
    sizes, cpu = _parallel(ctx, srv, transfer.get_into, args)
    bad = [
        o.key
        for o, b, n in zip(objs, bufs, sizes, strict=True)
        if n != o.size or hashlib.md5(memoryview(b)[:n]).hexdigest() != o.md5
    ]
    note = f"content mismatch: {bad}" if bad else ""
    return [
        _mb_figure(ctx, srv, "get64m", cpu, note=note, valid=not bad, extra={"verified": "md5"})
    ]


# ---- memory during a very large transfer ----------------------------------------


def rss(ctx: Context, srv: servers.RunningServer) -> list[Figure]:
    """7) Server RSS growth (whole process tree) during one large PUT, then its GET."""
    base = ctx.base()
    chunks = [base] * (ctx.settings.rss_size // len(base))
    size = len(base) * len(chunks)
    url = srv.signer.url("PUT", BUCKET, "rss/big")
    put = _sampled(srv, size, lambda: transfer.put_stream(url, chunks, size))
    scratch = memoryview(bytearray(MIB))
    url = srv.signer.url("GET", BUCKET, "rss/big")
    get = _sampled(srv, size, lambda: transfer.get_discard(url, scratch))
    ok = get.pop("result") == size
    put.pop("result")
    return [
        _rss_figure(srv, "put_growth_mib", put),
        _rss_figure(srv, "get_growth_mib", get, ok, "" if ok else "GET length differs"),
    ]


def _sampled(srv: servers.RunningServer, size: int, fn: Callable) -> dict:
    """Run one transfer of `size` bytes while sampling the server's RSS and both CPUs."""
    sampler = RssSampler(srv.pid)
    with meter(srv).running() as cpu, sampler.running():
        result = fn()
    return {
        "baseline": sampler.baseline,
        "peak": sampler.peak,
        "samples": sampler.samples,
        "seconds": round(cpu.wall, 2),
        "mb_per_s": round(size / cpu.wall / 1e6, 1),
        "object_mib": size / MIB,
        "client_cpu": round(cpu.cores(cpu.client_cpu), 3),
        "server_cpu": round(cpu.cores(cpu.server_cpu), 3),
        "result": result,
    }


def _rss_figure(srv, metric: str, span: dict, ok: bool = True, note: str = "") -> Figure:
    baseline, peak = span.pop("baseline"), span.pop("peak")
    client_cpu, server_cpu = span.pop("client_cpu"), span.pop("server_cpu")
    extra = {"baseline_mib": round(baseline / MIB, 1), "peak_mib": round(peak / MIB, 1), **span}
    growth = round((peak - baseline) / MIB, 1)
    return Figure(
        srv.kind.name, "rss", metric, growth, "MiB", client_cpu, server_cpu, note, ok, extra
    )


# Run order on one server instance. rss goes first, on a server that has done
# nothing yet, so earlier workloads' high-water marks cannot hide its growth.
SHARED: dict[str, Callable[[Context, servers.RunningServer], list[Figure]]] = {
    "rss": rss,
    "put4k": put4k,
    "get4k": get4k,
    "list": list_keys,
    "put64m": put64m,
    "get64m": get64m,
}


# ---- Holdfast only: restart and scale -------------------------------------------


def _fresh_dir(ctx: Context, name: str) -> Path:
    path = ctx.work_dir / name
    shutil.rmtree(path, ignore_errors=True)
    return path


def prepare_index(ctx: Context, kind: servers.ServerKind, data_dir: Path, n: int) -> str:
    """Fill a fresh data dir with n objects and leave it after one clean stop.

    Uses the populate_index() hook when Holdfast provides it, else HTTP for
    counts small enough to PUT in reasonable time. Returns the method used.
    """
    try:
        populate.populate_index(data_dir, n)
        method = "populate_index"
    except NotImplementedError as exc:
        if n > ctx.settings.http_populate_max:
            raise Skipped(
                f"{n} objects need populate_index() in bench/populate.py ({exc})"
            ) from None
        method = "http"
    srv = servers.start(kind, data_dir, ctx.work_dir)
    try:
        servers.wait_ready(srv, ctx.settings.ready_timeout)
        if method == "http":
            transfer.create_bucket(srv.signer, populate.INDEX_BUCKET)
            keys = [populate.key_for(i) for i in range(n)]
            transfer.populate(
                srv.signer,
                populate.INDEX_BUCKET,
                keys,
                populate.OBJECT_SIZE,
                ctx.settings.populate_connections,
            )
    finally:
        srv.stop()
    return method


def time_to_first_get(ctx: Context, kind: servers.ServerKind, data_dir: Path, key: str) -> float:
    """Seconds from spawning the server to the first 200 on a GET of `key`."""
    port = free_ports(1)[0]
    signer = Presigner(f"http://127.0.0.1:{port}", ACCESS_KEY, SECRET_KEY, REGION)
    url = signer.url("GET", populate.INDEX_BUCKET, key)
    srv = servers.start(kind, data_dir, ctx.work_dir, port=port)
    try:
        deadline = srv.started_at + ctx.settings.ready_timeout
        while time.perf_counter() < deadline:
            try:
                status, _, _ = transfer.request("GET", url)
                if status == 200:
                    return time.perf_counter() - srv.started_at
            except OSError:
                pass
            if srv.proc.poll() is not None:
                raise RuntimeError(f"server exited during restart:\n{srv.log_tail()}")
            time.sleep(0.005)
        raise RuntimeError(f"no successful GET within {ctx.settings.ready_timeout}s")
    finally:
        srv.stop()


def _labels(ctx: Context) -> list[tuple[str, int]]:
    small, big = ctx.settings.index_counts
    return [("10k", small), ("1m", big)]


def restart(ctx: Context, kind: servers.ServerKind) -> list[Figure]:
    """6) Restart to first GET with a small and a large index (median of repeats)."""
    figures = []
    for label, n in _labels(ctx):
        metric = f"seconds_{label}"
        data_dir = _fresh_dir(ctx, f"restart-{label}")
        try:
            method = prepare_index(ctx, kind, data_dir, n)
            times = [
                time_to_first_get(ctx, kind, data_dir, populate.key_for(n - 1))
                for _ in range(ctx.settings.restart_repeats)
            ]
            figures.append(
                Figure(
                    kind.name,
                    "restart",
                    metric,
                    round(statistics.median(times), 3),
                    "s",
                    extra={"objects": n, "populated_by": method, "times": times},
                )
            )
        except Skipped as why:
            figures.append(Figure(kind.name, "restart", metric, None, "s", note=str(why)))
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
    return figures


def _scale_run(ctx: Context, kind: servers.ServerKind, data_dir: Path, n: int) -> list[WrkResult]:
    """PUT to fresh keys, then GET keys spread over the whole populated range."""
    srv = servers.start(kind, data_dir, ctx.work_dir)
    try:
        servers.wait_ready(srv, ctx.settings.ready_timeout)
        paths = put_paths(srv.signer, populate.INDEX_BUCKET, "scale-put", ctx.settings.put_pool())
        put, _, _ = _wrk(ctx, srv, "PUT", paths)
        step = max(1, n // ctx.settings.get_keys)
        keys = [populate.key_for(i) for i in range(0, n, step)]
        paths = [srv.signer.path("GET", populate.INDEX_BUCKET, k) for k in keys]
        get, _, _ = _wrk(ctx, srv, "GET", paths)
    finally:
        srv.stop()
    for r in (put, get):
        if r.error_ratio > MAX_ERROR_RATIO:
            raise RuntimeError(f"{r.errors} of {r.requests} requests failed at {n} objects")
    return [put, get]


def scale(ctx: Context, kind: servers.ServerKind) -> list[Figure]:
    """8) 4 KiB PUT and GET ops/s with a small and a large index already stored."""
    figures, ops = [], {}
    for label, n in _labels(ctx):
        data_dir = _fresh_dir(ctx, f"scale-{label}")
        try:
            prepare_index(ctx, kind, data_dir, n)
            runs = _scale_run(ctx, kind, data_dir, n)
            ops[label] = [r.ok_per_s for r in runs]
            for op, r in zip(("put", "get"), runs, strict=True):
                figures.append(
                    Figure(
                        kind.name,
                        "scale",
                        f"{op}_ops_{label}",
                        round(r.ok_per_s, 1),
                        "ops/s",
                        client_cpu=round(r.client_cores, 3),
                        extra={"objects": n, "p99_ms": r.p99_ms},
                    )
                )
        except Skipped as why:
            for op in ("put", "get"):
                figures.append(
                    Figure(kind.name, "scale", f"{op}_ops_{label}", None, "ops/s", note=str(why))
                )
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
    for i, op in enumerate(("put", "get")):
        value = round(ops["1m"][i] / ops["10k"][i], 3) if len(ops) == 2 and ops["10k"][i] else None
        figures.append(
            Figure(
                kind.name,
                "scale",
                f"{op}_ratio",
                value,
                "x",
                note="" if value is not None else "needs both index sizes",
            )
        )
    return figures


OWN_LIFECYCLE: dict[str, Callable[[Context, servers.ServerKind], list[Figure]]] = {
    "restart": restart,
    "scale": scale,
}
ALL_WORKLOADS = ["put4k", "get4k", "list", "put64m", "get64m", "restart", "rss", "scale"]
