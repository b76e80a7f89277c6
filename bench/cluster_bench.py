"""`bench/run.py --cluster`: a 3-node Holdfast cluster against a SeaweedFS cluster (issue 16).

Both clusters are described in bench/clusters.py. Each is started, driven by the same
client with the same parameters through one S3 endpoint, and stopped; then the next. The
small-object requests are signed the way SDKs sign them (SigV4 in the Authorization
header, a date and a signature of their own, the payload's SHA-256 signed), all before the
clock starts, and replayed by wrk (PUT, GET) or by Python threads (DELETE, which must hit
each key once). Every figure carries p50/p99 where it is per request, and the servers' CPU
per operation (or per GiB): the CPU of every server process tree of the cluster, the shared
PostgreSQL's included, from /proc, over the timed span.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cluster_faults
import clusters
import transfer
from loadgen import SIGNED_LUA_SCRIPT, replay_threads, run_wrk
from procs import machine_busy
from report import Figure, Results
from settings import KIB, MIB, Settings
from workloads import Context

HF, SW = clusters.HoldfastCluster.name, clusters.SeaweedCluster.name
PUT_BUCKET = "bench-put"
SMALL_BUCKET = "bench-small"  # exactly the small objects: GET, LIST, then DELETE them
LARGE_BUCKET = "bench-large"


@dataclass(frozen=True)
class ClusterSettings:
    objects: int = 10_000  # small objects for GET, LIST and DELETE
    small_size: int = 4 * KIB
    duration: int = 10  # seconds per wrk run
    connections: tuple[int, ...] = (16,)  # the first is the headline; more make a sweep
    put_pool_per_second: int = 2_500  # distinct signed PUTs per second of run
    put_pool_max: int = 60_000
    list_page: int = 1000
    list_repeats: int = 3
    large_size: int = 64 * MIB
    large_count: int = 8
    large_parallel: int = 4
    populate_connections: int = 16
    ready_timeout: float = 120.0
    smoke: bool = False

    def put_pool(self) -> int:
        return max(500, min(self.duration * self.put_pool_per_second, self.put_pool_max))

    def large(self) -> Settings:
        """The single-node settings object whose large-object helpers are reused."""
        return Settings(
            large_size=self.large_size,
            large_count=self.large_count,
            large_parallel=self.large_parallel,
        )


FULL = ClusterSettings()
SMOKE = ClusterSettings(
    objects=200,
    duration=1,
    connections=(4,),
    put_pool_per_second=500,
    list_page=50,
    list_repeats=1,
    large_size=1 * MIB,
    large_count=2,
    large_parallel=2,
    populate_connections=4,
    smoke=True,
)


# ---- the cluster targets of issue 16 ------------------------------------------------------


@dataclass(frozen=True)
class Target:
    text: str
    workload: str
    metric: str
    factor: float
    higher_is_better: bool = True

    def check(self, hf: float | None, sw: float | None) -> tuple[float | None, bool | None]:
        if hf is None or not sw:
            return None, None
        ratio = hf / sw
        return ratio, ratio >= self.factor if self.higher_is_better else ratio <= self.factor


TARGETS = [
    Target("Cluster PUT 4 KiB ops/s >= 1.5x SeaweedFS", "put4k", "ops_per_s", 1.5),
    Target(
        "Cluster GET 4 KiB ops/s (10,000+ objects, SDK-style signatures) >= 2x SeaweedFS",
        "get4k",
        "ops_per_s",
        2.0,
    ),
    Target("Cluster LIST 10k keys <= 0.5x SeaweedFS's time", "list", "seconds", 0.5, False),
    Target("Cluster PUT 64 MiB, 4 at once >= 1.5x SeaweedFS", "put64m", "mib_per_s", 1.5),
    Target(
        "Cluster GET 64 MiB, every block verified >= 1.5x SeaweedFS", "get64m", "mib_per_s", 1.5
    ),
]
NOT_HERE = [
    "Single node on PostgreSQL vs SQLite, and single node (SQLite) against SeaweedFS and "
    "rclone with SDK-style signatures: `bench/run.py`, the single-node mode (its own table)",
    "Scale: PostgreSQL index with 10M objects against 10k: measured after the clusters by "
    "bench/scale_pg.py, in `<run>-scale.md` next to this file",
]


# ---- measuring ----------------------------------------------------------------------------


@dataclass
class Span:
    """Wall time and the cluster's server CPU over one timed part."""

    system: clusters.System
    wall: float = 0.0
    cpu: float = 0.0
    client_cpu: float = 0.0

    by_process: dict[str, float] = field(default_factory=dict)

    def __enter__(self) -> Span:
        self._t0, self._c0 = time.perf_counter(), time.process_time()
        self._s0 = self.system.cpu_by_process()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._t0
        self.client_cpu = time.process_time() - self._c0
        after = self.system.cpu_by_process()
        self.by_process = {k: round(after[k] - self._s0.get(k, 0.0), 3) for k in after}
        self.cpu = sum(self.by_process.values())


def _fig(system: clusters.System, workload: str, metric: str, value, unit: str, **kw) -> Figure:
    return Figure(system.name, workload, metric, value, unit, **kw)


def _per_request(
    system: clusters.System,
    workload: str,
    ok: int,
    total: int,
    wall: float,
    p50: float,
    p99: float,
    cpu: float,
    client_cores: float,
    extra: dict,
) -> list[Figure]:
    errors = total - ok
    valid = total > 0 and errors <= 0.01 * total
    common = dict(
        client_cpu=round(client_cores, 3),
        server_cpu=round(cpu / wall, 3) if wall else None,
        note="" if valid else f"{errors} of {total} requests failed",
        valid=valid,
        extra={**extra, "requests": total, "errors": errors, "seconds": round(wall, 3)},
    )
    per_op = round(cpu / ok * 1000, 3) if ok else None
    return [
        _fig(
            system, workload, "ops_per_s", round(ok / wall, 1) if wall else None, "ops/s", **common
        ),
        _fig(system, workload, "p50_ms", round(p50, 3), "ms", **common),
        _fig(system, workload, "p99_ms", round(p99, 3), "ms", **common),
        _fig(system, workload, "cpu_ms_per_op", per_op, "ms", **common),
    ]


def _wrk(
    system: clusters.System, workload: str, method: str, lines: list[str], body: int, conns: int,
    s: ClusterSettings, extra: dict,
) -> list[Figure]:  # fmt: skip
    with Span(system) as span:
        r = run_wrk(
            system.endpoint,
            method,
            lines,
            body_size=body,
            duration=s.duration,
            connections=conns,
            threads=1,
            script=SIGNED_LUA_SCRIPT,
        )
    extra = {
        **extra,
        "connections": conns,
        "signed": "header",
        "distinct": len(lines),
        "cpu_s_by_process": span.by_process,
    }
    if r.wrapped:
        extra["wrapped"] = r.wrapped
    figs = _per_request(
        system, workload, r.requests - r.errors, r.requests, r.duration_s, r.p50_ms, r.p99_ms,
        span.cpu, r.client_cores, extra,
    )  # fmt: skip
    if r.wrapped and method == "PUT":
        for f in figs:
            f.note = f.note or f"signed PUT list ran out {r.wrapped}x: later PUTs overwrite keys"
    return figs


def put4k(system: clusters.System, s: ClusterSettings, conns: int) -> list[Figure]:
    signer, body = system.signer, b"x" * s.small_size  # replay_signed.lua sends "x" * size
    lines = [signer.line("PUT", PUT_BUCKET, f"c{conns}/{i:08d}", body) for i in range(s.put_pool())]
    name = "put4k" if conns == s.connections[0] else f"put4k-c{conns}"
    return _wrk(system, name, "PUT", lines, s.small_size, conns, s, {})


def populate(system: clusters.System, s: ClusterSettings) -> list[Figure]:
    """The small objects GET, LIST and DELETE use (presigned PUTs, Python threads)."""
    keys = [f"small/{i:08d}" for i in range(s.objects)]
    with Span(system) as span:
        transfer.populate(
            system.presigner, SMALL_BUCKET, keys, s.small_size, s.populate_connections
        )
    return [
        _fig(system, "populate", "ops_per_s", round(s.objects / span.wall, 1), "ops/s",
             server_cpu=round(span.cpu / span.wall, 3),
             extra={"objects": s.objects, "connections": s.populate_connections,
                    "signed": "presigned", "cpu_ms_per_op": round(span.cpu / s.objects * 1000, 3),
                    "cpu_s_by_process": span.by_process})
    ]  # fmt: skip


def get4k(system: clusters.System, s: ClusterSettings, conns: int) -> list[Figure]:
    signer = system.signer
    lines = [signer.line("GET", SMALL_BUCKET, f"small/{i:08d}") for i in range(s.objects)]
    name = "get4k" if conns == s.connections[0] else f"get4k-c{conns}"
    figs = _wrk(system, name, "GET", lines, 0, conns, s, {"objects": s.objects})
    for f in figs:
        # Holdfast's presigned-URL cache serves query-auth GET/HEAD only: never these.
        f.extra["signature_cache_hits"] = 0
    return figs


def list_keys(system: clusters.System, s: ClusterSettings) -> list[Figure]:
    times, counts = [], []
    with Span(system) as span:
        for _ in range(s.list_repeats):
            t0 = time.perf_counter()
            pages, n = transfer.list_all(system.presigner, SMALL_BUCKET, s.list_page)
            times.append(time.perf_counter() - t0)
            counts.append(n)
    valid = all(n == s.objects for n in counts)
    return [
        _fig(system, "list", "seconds", round(statistics.median(times), 4), "s",
             server_cpu=round(span.cpu / span.wall, 3),
             note="" if valid else f"listed {counts} keys, expected {s.objects}", valid=valid,
             extra={"keys": s.objects, "page": s.list_page, "pages": pages, "times": times,
                    "cpu_ms_per_list": round(span.cpu / s.list_repeats * 1000, 1),
                    "cpu_s_by_process": span.by_process,
                    "signed": "presigned"})
    ]  # fmt: skip


def _large_figure(system, workload: str, ctx: Context, span: Span, s, **kw) -> Figure:
    total = sum(o.size for o in ctx.large_objects())
    gib = total / (1024 * MIB)
    return _fig(
        system, workload, "mib_per_s", round(total / MIB / span.wall, 1), "MiB/s",
        client_cpu=round(span.client_cpu / span.wall, 3),
        server_cpu=round(span.cpu / span.wall, 3),
        extra={"objects": s.large_count, "size_mib": s.large_size / MIB,
               "parallel": s.large_parallel, "seconds": round(span.wall, 3),
               "cpu_s_per_gib": round(span.cpu / gib, 3), "signed": "presigned",
               "cpu_s_by_process": span.by_process,
               **kw.pop("extra", {})},
        **kw,
    )  # fmt: skip


def put64m(system: clusters.System, s: ClusterSettings, ctx: Context) -> list[Figure]:
    objs = ctx.large_objects()
    signer = system.presigner
    args = [(signer.url("PUT", LARGE_BUCKET, o.key), o.chunks, o.size) for o in objs]
    before = system.stored_bytes()
    with Span(system) as span, ThreadPoolExecutor(s.large_parallel) as pool:
        etags = list(pool.map(transfer.put_stream, *zip(*args, strict=True)))
    bad = sum(e != o.md5 for e, o in zip(etags, objs, strict=True))
    # Both systems must keep 2 copies: the bytes added to the data directories say so.
    copies = (system.stored_bytes() - before) / sum(o.size for o in objs)
    notes = [f"{bad} ETags differ from the MD5"] if bad else []
    if not 1.9 <= copies <= 2.3:
        notes.append(f"{copies:.2f} bytes stored per byte PUT, not 2 copies")
    return [
        _large_figure(
            system, "put64m", ctx, span, s, note="; ".join(notes),
            extra={"stored_per_byte": round(copies, 3)},
        )
    ]  # fmt: skip


def get64m(system: clusters.System, s: ClusterSettings, ctx: Context) -> list[Figure]:
    objs, bufs = ctx.large_objects(), ctx.buffers()
    signer = system.presigner
    args = [
        (signer.url("GET", LARGE_BUCKET, o.key), memoryview(b))
        for o, b in zip(objs, bufs, strict=True)
    ]
    with Span(system) as span, ThreadPoolExecutor(s.large_parallel) as pool:
        sizes = list(pool.map(transfer.get_into, *zip(*args, strict=True)))
    bad = [
        o.key
        for o, b, n in zip(objs, bufs, sizes, strict=True)
        if n != o.size or hashlib.md5(memoryview(b)[:n]).hexdigest() != o.md5
    ]
    return [
        _large_figure(
            system, "get64m", ctx, span, s, note=f"content mismatch: {bad}" if bad else "",
            valid=not bad, extra={"verified": "md5 by the client"},
        )
    ]  # fmt: skip


def delete4k(system: clusters.System, s: ClusterSettings, conns: int) -> list[Figure]:
    """DELETE every small object once (signed up front), `conns` threads with keep-alive
    connections; the same Python client for both systems."""
    signer = system.signer
    reqs = [signer.sign("DELETE", SMALL_BUCKET, f"small/{i:08d}") for i in range(s.objects)]
    with Span(system) as span:
        r = replay_threads(system.endpoint, "DELETE", reqs, conns)
    lat = r.latencies
    name = "delete4k" if conns == s.connections[0] else f"delete4k-c{conns}"
    return _per_request(
        system, name, len(lat) - r.failed, len(lat), span.wall, r.quantile_ms(50), r.quantile_ms(99),
        span.cpu, span.client_cpu / span.wall, {"connections": conns, "signed": "header",
                                                "client": "python threads",
                                                "cpu_s_by_process": span.by_process},
    )  # fmt: skip


def run_system(
    system: clusters.System, s: ClusterSettings, ctx: Context, add: Callable[[Figure], None]
) -> None:
    for bucket in (PUT_BUCKET, SMALL_BUCKET, LARGE_BUCKET):
        transfer.create_bucket(system.presigner, bucket)
    steps: list[tuple[str, Callable[[], list[Figure]]]] = []
    for c in s.connections:
        steps.append((f"put4k c{c}", lambda c=c: put4k(system, s, c)))
    steps.append(("populate", lambda: populate(system, s)))
    for c in s.connections:
        steps.append((f"get4k c{c}", lambda c=c: get4k(system, s, c)))
    steps.append(("list", lambda: list_keys(system, s)))
    steps.append(("put64m", lambda: put64m(system, s, ctx)))
    steps.append(("get64m", lambda: get64m(system, s, ctx)))
    steps.append(("delete4k", lambda: delete4k(system, s, s.connections[0])))
    failed = False
    for label, fn in steps:
        print(f"{system.name}: {label}", flush=True)
        t0 = time.perf_counter()
        try:
            figures = fn()
        except Exception as exc:  # one workload's failure is a figure; the others still run
            failed = True
            workload = label.split()[0]
            add(Figure(system.name, workload, "error", None, "", note=str(exc)[:300], valid=False))
            continue
        for fig in figures:
            add(fig)
        print(f"  ({time.perf_counter() - t0:.1f} s)", flush=True)
    if failed:
        raise RuntimeError(f"{system.name}: a workload failed (see its error figure)")


# ---- the report ---------------------------------------------------------------------------


@dataclass
class Report:
    figures: list[Figure]
    busy: dict[str, float]
    load: dict[str, str]
    targets: list[dict] = field(default_factory=list)

    def value(self, server: str, workload: str, metric: str) -> float | None:
        for f in self.figures:
            if (f.server, f.workload, f.metric) == (server, workload, metric):
                return f.value if f.valid else None
        return None

    def judge(self) -> None:
        self.targets = []
        for t in TARGETS:
            ratio, met = t.check(
                self.value(HF, t.workload, t.metric), self.value(SW, t.workload, t.metric)
            )
            self.targets.append(
                {"target": t.text, "ratio": None if ratio is None else round(ratio, 3), "met": met}
            )
        self.targets += cluster_faults.judge(self.figures)

    def markdown(self) -> str:
        rows = [
            "| workload | Holdfast | SeaweedFS | HF/SW | p50 / p99 ms HF | p50 / p99 ms SW "
            "| server CPU HF | server CPU SW | CPU HF/SW |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        workloads = list(
            dict.fromkeys(
                f.workload
                for f in self.figures
                if f.metric != "error" and f.workload not in cluster_faults.WORKLOADS
            )
        )
        for w in workloads:
            metric, unit, cpu_key = _headline(w)
            hf, sw = self.value(HF, w, metric), self.value(SW, w, metric)
            cpu_hf, cpu_sw = self._cpu(HF, w, cpu_key), self._cpu(SW, w, cpu_key)
            rows.append(
                f"| {w} | {_num(hf)} {unit} | {_num(sw)} {unit} | {_ratio(hf, sw)} "
                f"| {self._lat(HF, w)} | {self._lat(SW, w)} "
                f"| {_num(cpu_hf)} {_cpu_unit(cpu_key)} | {_num(cpu_sw)} {_cpu_unit(cpu_key)} "
                f"| {_ratio(cpu_hf, cpu_sw)} |"
            )
        rows += cluster_faults.markdown(self.figures)
        rows += [
            "",
            "| target | ratio (HF/SW; Holdfast alone: as the target says) | met |",
            "|---|---|---|",
        ]
        for t in self.targets:
            verdict = {True: "met", False: "**not met**", None: "n/a"}[t["met"]]
            ratio = "-" if t["ratio"] is None else f"{t['ratio']:.2f}×"
            rows.append(f"| {t['target']} | {ratio} | {verdict} |")
        rows += ["", "Not measured by `--cluster` (issue 16's other targets):"]
        rows += [f"- {n}" for n in NOT_HERE]
        busy = ", ".join(f"{k} {v:.0%}" for k, v in self.busy.items())
        rows += ["", f"Machine CPU busy just before each cluster started: {busy}."]
        rows += [f"Load average ({k}): {v}" for k, v in self.load.items()]
        notes = list(dict.fromkeys(f"- {f.server} {f.workload}: {f.note}" for f in self.figures
                                   if f.note))  # fmt: skip
        return "\n".join(rows + (["", "Notes:", *notes] if notes else []))

    def _lat(self, server: str, w: str) -> str:
        p50, p99 = self.value(server, w, "p50_ms"), self.value(server, w, "p99_ms")
        return "" if p50 is None else f"{p50:.2f} / {p99:.2f}"

    def _cpu(self, server: str, w: str, key: str) -> float | None:
        if key == "cpu_ms_per_op" and (v := self.value(server, w, key)) is not None:
            return v
        for f in self.figures:
            if (f.server, f.workload) == (server, w) and key in f.extra:
                return f.extra[key]
        return None


def _headline(workload: str) -> tuple[str, str, str]:
    if workload == "list":
        return "seconds", "s", "cpu_ms_per_list"
    if workload in ("put64m", "get64m"):
        return "mib_per_s", "MiB/s", "cpu_s_per_gib"
    if workload == "populate":
        return "ops_per_s", "ops/s", "cpu_ms_per_op"
    return "ops_per_s", "ops/s", "cpu_ms_per_op"


def _cpu_unit(key: str) -> str:
    return {"cpu_ms_per_op": "ms/op", "cpu_ms_per_list": "ms/list", "cpu_s_per_gib": "s/GiB"}[key]


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}×" if a is not None and b else "-"


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(args) -> int:  # noqa: ANN001 - run.py's namespace
    s = SMOKE if args.smoke else FULL
    if args.duration:
        s = replace(s, duration=args.duration)
    if args.connections:
        s = replace(s, connections=tuple(int(c) for c in args.connections.split(",")))
    if args.objects:
        s = replace(s, objects=args.objects)
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-cluster" + ("-smoke" if args.smoke else "")
    results = Results(args.results_dir / f"{run_id}.jsonl", run_id)
    only = [x for x in (args.only or f"{HF},{SW}").split(",") if x]
    top = Path(tempfile.mkdtemp(prefix="holdfast-cbench-", dir=args.work_dir))
    top.chmod(0o755)  # PostgreSQL runs as the postgres user under it
    ctx = Context(s.large(), top, results)
    busy: dict[str, float] = {}
    load: dict[str, str] = {}
    failed = False
    hf = clusters.HoldfastCluster(top)
    try:
        for name in (HF, SW):
            if name not in only and not (name == HF and SW in only):
                continue  # Holdfast's cluster starts anyway for SeaweedFS: its PostgreSQL
            busy[name] = machine_busy()
            load[name] = _loadavg()
            if name == HF:
                system = hf.start(s.ready_timeout)
                stop = hf.stop_nodes
                if HF not in only:
                    stop()
                    continue
            else:
                weed = clusters.SeaweedCluster(top, clusters.weed_executable(), hf.pg)
                system = weed.start(s.ready_timeout)
                stop = weed.stop
            print(f"{name} serving on {system.endpoint}", flush=True)
            try:
                run_system(system, s, ctx, results.add)
            except Exception as exc:  # a failure is a figure, then the other system runs
                failed = True
                if not any(f.metric == "error" for f in results.figures if f.server == name):
                    results.add(Figure(name, "error", "error", None, "", note=str(exc)[:300],
                                       valid=False))  # fmt: skip
                print(system.log_tails(), flush=True)
            finally:
                if name == HF:  # the targets about Holdfast alone: RSS, a node killed, repair
                    failed |= not cluster_faults.run(hf, s, results.add)
                stop()
    finally:
        hf.stop()
        if args.keep:
            print(f"kept {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)
    report = Report(results.figures, busy, load)
    report.judge()
    text = report.markdown()
    md = results.path.with_suffix(".md")
    md.write_text(f"# Cluster benchmark {run_id}\n\n{text}\n")
    summary = {
        "run": run_id,
        "settings": asdict(s),
        "busy_before": busy,
        "loadavg_before": load,
        "targets": report.targets,
        "figures": [asdict(f) for f in results.figures],
    }
    results.path.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    print("\n" + text)
    print(f"\nresults: {results.path} (.json, .md)")
    return 1 if failed or any(f.metric == "error" for f in results.figures) else 0
