"""Scale (issue 16): one Holdfast node with its index on PostgreSQL holding 10M objects,
against the same node holding 10k: PUT and GET 4 KiB ops/s (>= 0.8x), the first LIST page
(<= 1.2x the time), and restart to the first GET (< 1 s).

    python bench/scale_pg.py                       # 10k against 10,000,000
    python bench/scale_pg.py --objects 1000000     # a smaller "big" index
    python bench/scale_pg.py --smoke               # a few seconds
    bench/run.py --cluster --scale-objects N       # the same, inside the one-command run

**The fill.** Through the index API 1M rows took 1,648 s on a loaded machine (a row at a
time, each firing the bucket-totals trigger). Here Holdfast itself creates the bucket and
writes one template object through its index API (bench/populate.py), so the schema, the
bucket row, the owner and the row's encoding are exactly what the node writes; then
PostgreSQL copies that row server-side, ``INSERT ... SELECT`` over ``generate_series``
with only the key changed (``obj/00000001`` ...), in chunks of a million, with triggers off
for the session (``session_replication_role = replica``: the per-row totals trigger and the
per-row foreign-key check, whose only parent row is the bucket just created). The bucket's
totals then get the copied rows once, with the same expressions the trigger uses
(holdfast/index/postgres/schema.py ``_STORED``), and the fill checks that the totals equal
``count(*)``. ``VACUUM ANALYZE`` last, as autovacuum would have done on a live index. The
copied rows are inline objects of ``--fill-size`` bytes (4 KiB of one byte, which PostgreSQL
compresses to a few dozen bytes, so 10M fit in a few GB).

**The measurements**, the same for both index sizes, each on a fresh PostgreSQL database
(durable defaults: fsync, synchronous_commit on) and a fresh node (this checkout's code,
one ``holdfast serve --index-dsn``):

* ``put4k``: PUT 4 KiB to fresh keys in the big bucket, signed as SDKs sign (SigV4 in the
  header, bench/replay_signed.lua), wrk, 16 connections;
* ``get4k``: GET back the keys that PUT wrote (at least 10,000 distinct; topped up untimed
  if the PUT run wrote fewer), header-signed;
* ``list1``: the first ListObjectsV2 page (1,000 keys) of the big bucket, median of 5;
* ``restart``: spawn to the first 200 on a GET of the last filled key, median of 3 after
  one warm-up start.

Server CPU per operation counts the node's process tree and PostgreSQL's.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, replace
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))

import populate  # noqa: E402
import servers  # noqa: E402
import transfer  # noqa: E402
from loadgen import SIGNED_LUA_SCRIPT, HeaderSigner, Presigner, WrkResult, run_wrk  # noqa: E402
from procs import free_ports, tree_cpu_seconds  # noqa: E402
from report import Figure, Results  # noqa: E402
from settings import ACCESS_KEY, REGION, SECRET_KEY  # noqa: E402

SERVER = "holdfast-pg"
WORKLOAD = "scale"


@dataclass(frozen=True)
class ScaleSettings:
    small: int = 10_000  # the reference index
    big: int = 10_000_000
    fill_size: int = 4096
    chunk: int = 1_000_000  # rows per INSERT ... SELECT (one transaction each)
    duration: int = 10
    connections: int = 16
    size: int = 4096
    put_pool_per_second: int = 2_500
    put_pool_max: int = 40_000
    get_keys: int = 10_000
    list_repeats: int = 5
    list_page: int = 1000
    restart_repeats: int = 3
    restart_warmups: int = 1  # starts not counted (the first after a fill warms the caches)
    # "0" stops the scrubber, whose walk over 10M inline rows (paced at 16 MiB/s, 4,096 rows
    # a second here) runs through every figure of the big index and none of the small one's
    scrub_rate: str | None = None
    ready_timeout: float = 120.0

    def put_pool(self) -> int:
        return max(self.get_keys, min(self.duration * self.put_pool_per_second, self.put_pool_max))


FULL = ScaleSettings()
SMOKE = ScaleSettings(
    small=100,
    big=2_000,
    chunk=1_000,
    duration=1,
    connections=4,
    put_pool_per_second=500,
    get_keys=200,
    list_repeats=1,
    list_page=50,
    restart_repeats=1,
    restart_warmups=0,
    ready_timeout=60.0,
)


# ---- the fill -------------------------------------------------------------------------------


def fill(dsn: str, data_dir: Path, n: int, size: int, chunk: int) -> dict:
    """Put n inline objects ``populate.key_for(0..n-1)`` of ``size`` bytes in bucket
    ``populate.INDEX_BUCKET`` of a fresh index at ``dsn``; returns the timings."""
    import psycopg

    from holdfast.index.postgres.engine import _OBJECT_COLUMNS
    from holdfast.index.postgres.schema import _STORED

    t0 = time.perf_counter()
    # Holdfast writes the schema, the bucket and the first object itself.
    populate.populate_index(data_dir, 1, index_dsn=dsn, size=size)
    api = time.perf_counter() - t0
    bucket, first = populate.INDEX_BUCKET, populate.key_for(0)
    width = len(first) - len("obj/")
    assert populate.key_for(n - 1) == f"obj/{n - 1:0{width}d}", "keys outgrew key_for's width"
    copied = [c.strip() for c in _OBJECT_COLUMNS.split(",")]
    select = ", ".join(
        f"'obj/' || lpad(i::text, {width}, '0')" if c == "key" else f"t.{c}" for c in copied
    )
    insert = (
        f"INSERT INTO objects ({_OBJECT_COLUMNS}) SELECT {select} "
        "FROM objects t, generate_series(%(lo)s::bigint, %(hi)s::bigint) i "
        "WHERE t.bucket = %(bucket)s AND t.key = %(first)s"
    )
    t1 = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        # Off for this session only: the per-row totals trigger (the totals are added once
        # below) and the per-row foreign-key check against the one bucket row.
        conn.execute("SET session_replication_role = replica")
        for lo in range(1, n, chunk):
            hi = min(n - 1, lo + chunk - 1)
            with conn.transaction():
                conn.execute(insert, {"lo": lo, "hi": hi, "bucket": bucket, "first": first})
            done = hi + 1
            rate = (done - 1) / (time.perf_counter() - t1)
            print(f"  fill: {done:,} of {n:,} rows ({rate:,.0f} rows/s)", flush=True)
        conn.execute("SET session_replication_role = origin")
        with conn.transaction():
            # The copies, counted once as the trigger would have counted each (slot 0; the
            # readers sum the slots).
            conn.execute(
                "INSERT INTO bucket_totals (bucket, slot, objects, bytes, stored_bytes, not_ok) "
                f"SELECT t.bucket, 0, %(m)s, %(m)s * t.size, %(m)s * ({_STORED.format('t')}), "
                "%(m)s * (t.state <> 'ok')::int FROM objects t "
                "WHERE t.bucket = %(bucket)s AND t.key = %(first)s "
                "ON CONFLICT (bucket, slot) DO UPDATE SET "
                "objects = bucket_totals.objects + EXCLUDED.objects, "
                "bytes = bucket_totals.bytes + EXCLUDED.bytes, "
                "stored_bytes = bucket_totals.stored_bytes + EXCLUDED.stored_bytes, "
                "not_ok = bucket_totals.not_ok + EXCLUDED.not_ok",
                {"m": n - 1, "bucket": bucket, "first": first},
            )
        copy = time.perf_counter() - t1
        t2 = time.perf_counter()
        conn.execute("VACUUM ANALYZE objects")
        vacuum = time.perf_counter() - t2
        (rows,) = conn.execute(
            "SELECT count(*) FROM objects WHERE bucket = %s", (bucket,)
        ).fetchone()
        (totals,) = conn.execute(
            "SELECT sum(objects) FROM bucket_totals WHERE bucket = %s", (bucket,)
        ).fetchone()
        (db_bytes,) = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    if rows != n or totals != n:
        raise RuntimeError(f"fill: {rows} rows and totals of {totals}, expected {n}")
    took = time.perf_counter() - t0
    return {
        "objects": n,
        "seconds": round(took, 1),
        "api_s": round(api, 1),
        "copy_s": round(copy, 1),
        "vacuum_analyze_s": round(vacuum, 1),
        "rows_per_s": round((n - 1) / copy) if copy else None,
        "database_mib": round(db_bytes / 2**20),
    }


# ---- the node -------------------------------------------------------------------------------


class Node(servers.Holdfast):
    """``python -m holdfast.cli serve`` of this checkout on a given index DSN."""

    name = SERVER

    def __init__(self, dsn: str, extra: tuple[str, ...] = ()) -> None:
        super().__init__(None)
        self.dsn = dsn
        self.extra = extra

    def argv(self, port: int, data_dir: Path, work_dir: Path) -> list[str]:
        cmd = [sys.executable, "-m", "holdfast.cli", "serve", "--listen", f"127.0.0.1:{port}"]
        return cmd + ["--data", str(data_dir), "--index-dsn", self.dsn, *self.extra]

    def env(self) -> dict[str, str]:
        path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        return {**super().env(), "PYTHONPATH": path}


class Meter:
    """Wall time and the CPU of the node's tree plus PostgreSQL's over one timed part."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids

    def _cpu(self) -> float:
        return sum(tree_cpu_seconds(p) for p in self.pids)

    def __enter__(self) -> Meter:
        self.t0, self.c0 = time.perf_counter(), self._cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.cpu = self._cpu() - self.c0


def _wrk(srv, method: str, lines: list[str], s: ScaleSettings, pg_pid: int) -> tuple:
    with Meter([srv.pid, pg_pid]) as m:
        r = run_wrk(
            srv.endpoint,
            method,
            lines,
            body_size=s.size if method == "PUT" else 0,
            duration=s.duration,
            connections=s.connections,
            threads=1,
            script=SIGNED_LUA_SCRIPT,
        )
    return r, m


def _first_get(
    kind: Node, data_dir: Path, work: Path, key: str, timeout: float, pg_pid: int
) -> tuple[float, float]:
    """(seconds from spawning the node to the first 200 on a GET of ``key``, CPU seconds
    the node's tree and PostgreSQL used until then): on a loaded machine the wall time
    follows the load, the CPU much less."""
    port = free_ports(1)[0]
    url = Presigner(f"http://127.0.0.1:{port}", ACCESS_KEY, SECRET_KEY, REGION).url(
        "GET", populate.INDEX_BUCKET, key
    )
    pg0 = tree_cpu_seconds(pg_pid)
    srv = servers.start(kind, data_dir, work, port=port)
    try:
        while time.perf_counter() < srv.started_at + timeout:
            try:
                if transfer.request("GET", url)[0] == 200:
                    took = time.perf_counter() - srv.started_at
                    cpu = tree_cpu_seconds(srv.pid) + tree_cpu_seconds(pg_pid) - pg0
                    return took, cpu
            except OSError:
                pass
            if srv.proc.poll() is not None:
                raise RuntimeError(f"node exited during restart:\n{srv.log_tail()}")
            time.sleep(0.005)
        raise RuntimeError(f"no GET answered 200 within {timeout} s")
    finally:
        srv.stop()


def measure(kind: Node, data_dir: Path, work: Path, n: int, s: ScaleSettings, pg_pid: int) -> dict:
    """The four figures at one index size."""
    out: dict = {}
    srv = servers.start(kind, data_dir, work)
    try:
        servers.wait_ready(srv, s.ready_timeout)
        signer = HeaderSigner(srv.endpoint, ACCESS_KEY, SECRET_KEY, REGION)
        body = b"x" * s.size  # what replay_signed.lua sends
        keys = [f"put/{i:08d}" for i in range(s.put_pool())]
        lines = [signer.line("PUT", populate.INDEX_BUCKET, k, body) for k in keys]
        put, m = _wrk(srv, "PUT", lines, s, pg_pid)
        out["put4k"] = _summary(put, m, len(lines))
        # The keys that PUT wrote, read back (untimed): wrk deals the lines out round-robin
        # to its threads, which do not finish equal shares, so no prefix of `keys` is sure.
        done = set(_listed(srv, "put/"))
        written_keys = [k for k in keys if k in done]
        topped = 0
        if len(written_keys) < s.get_keys:  # untimed: GET reads at least get_keys objects
            more = [k for k in keys if k not in done][: s.get_keys - len(written_keys)]
            topped = len(more)
            transfer.populate(srv.signer, populate.INDEX_BUCKET, more, s.size, 8)
            written_keys += more
        lines = [signer.line("GET", populate.INDEX_BUCKET, k) for k in written_keys]
        get, m = _wrk(srv, "GET", lines, s, pg_pid)
        out["get4k"] = {**_summary(get, m, len(lines)), "topped_up_untimed": topped}
        times = []
        query = {"list-type": "2", "max-keys": str(s.list_page)}
        with Meter([srv.pid, pg_pid]) as m:
            for _ in range(s.list_repeats):
                url = srv.signer.url("GET", populate.INDEX_BUCKET, query=query)
                t0 = time.perf_counter()
                status, _, page = transfer.request("GET", url)
                times.append(time.perf_counter() - t0)
                transfer.expect(status, (200,), "ListObjectsV2", page)
                assert isinstance(page, bytes) and page.count(b"<Key>") == min(s.list_page, n)
        out["list1"] = {
            "seconds": round(statistics.median(times), 4),
            "times": [round(t, 4) for t in times],
            "cpu_ms_per_list": round(m.cpu / s.list_repeats * 1000, 1),
        }
    finally:
        srv.stop()
    last = populate.key_for(n - 1)
    starts = [
        _first_get(kind, data_dir, work, last, s.ready_timeout, pg_pid)
        for _ in range(s.restart_repeats + s.restart_warmups)
    ]
    counted = starts[s.restart_warmups :]
    out["restart"] = {
        "seconds": round(statistics.median(t for t, _ in counted), 3),
        "cpu_s": round(statistics.median(c for _, c in counted), 3),
        "times": [round(t, 3) for t, _ in starts],
        "cpu_s_each": [round(c, 3) for _, c in starts],
        "warm_ups": s.restart_warmups,
    }
    return out


def _listed(srv, prefix: str) -> list[str]:
    """Every key under `prefix` in the bench's bucket, by ListObjectsV2 pages."""
    keys: list[str] = []
    token = ""
    while True:
        query = {"list-type": "2", "prefix": prefix, "max-keys": "1000"}
        if token:
            query["continuation-token"] = token
        status, _, page = transfer.request(
            "GET", srv.signer.url("GET", populate.INDEX_BUCKET, query=query)
        )
        transfer.expect(status, (200,), "ListObjectsV2", page)
        assert isinstance(page, bytes)
        keys += [html.unescape(k) for k in re.findall(r"<Key>([^<]*)</Key>", page.decode())]
        m = re.search(r"<NextContinuationToken>([^<]*)</NextContinuationToken>", page.decode())
        if not m:
            return keys
        token = html.unescape(m.group(1))


def _summary(r: WrkResult, m: Meter, distinct: int) -> dict:
    ok = r.requests - r.errors
    return {
        "ops_per_s": round(r.ok_per_s, 1),
        "p50_ms": r.p50_ms,
        "p99_ms": r.p99_ms,
        "cpu_ms_per_op": round(m.cpu / ok * 1000, 3) if ok else None,
        "requests": r.requests,
        "errors": r.errors,
        "error_kinds": r.error_kinds,
        "distinct": distinct,
        "wrapped": r.wrapped,
        "client_cores": round(r.client_cores, 3),
        "signed": "header",
        "signature_cache_hits": 0,  # the presigned-URL cache never sees header auth
    }


# ---- one run --------------------------------------------------------------------------------


def run(s: ScaleSettings, work_dir: Path | None, results: Results | None = None) -> dict:
    """Fill and measure the small index, then the big one; figures into ``results``."""
    from holdfast.index.postgres.devserver import DevPostgres

    os.environ.setdefault("HOLDFAST_ACCESS_KEY", ACCESS_KEY)
    os.environ.setdefault("HOLDFAST_SECRET_KEY", SECRET_KEY)
    top = Path(tempfile.mkdtemp(prefix="holdfast-scale-", dir=work_dir))
    top.chmod(0o755)  # PostgreSQL runs as the postgres user under it when we are root
    pg = DevPostgres(top / "pg", fast=False).start()
    by_size: dict[str, dict] = {}
    try:
        for label, n in (("small", s.small), ("big", s.big)):
            print(f"scale: {n:,} objects in the index", flush=True)
            dsn = pg.create_database(f"scale_{n}")
            data_dir = top / f"data-{n}"
            filled = fill(dsn, data_dir, n, s.fill_size, s.chunk)
            print(f"  filled in {filled['seconds']} s: {filled}", flush=True)
            extra = ("--scrub-rate", s.scrub_rate) if s.scrub_rate is not None else ()
            got = measure(Node(dsn, extra), data_dir, top, n, s, pg.pid)
            by_size[label] = {"objects": n, "fill": filled, **got}
            print(f"  {json.dumps(got)}", flush=True)
            pg.drop_database(f"scale_{n}")
            shutil.rmtree(data_dir, ignore_errors=True)
    finally:
        pg.stop()
        shutil.rmtree(top, ignore_errors=True)
    summary = {"settings": asdict(s), **by_size, "ratios": ratios(by_size)}
    if results is not None:
        for fig in figures(by_size, summary["ratios"]):
            results.add(fig)
    return summary


def ratios(by: dict) -> dict:
    if "small" not in by or "big" not in by:
        return {}
    sm, bg = by["small"], by["big"]

    def div(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a is not None and b else None

    return {
        "put4k": div(bg["put4k"]["ops_per_s"], sm["put4k"]["ops_per_s"]),
        "get4k": div(bg["get4k"]["ops_per_s"], sm["get4k"]["ops_per_s"]),
        "list1": div(bg["list1"]["seconds"], sm["list1"]["seconds"]),
        "restart_s": bg["restart"]["seconds"],
    }


TARGETS = {
    "put4k": ("PUT 4 KiB ops/s, big index >= 0.8x small", lambda r: r >= 0.8),
    "get4k": ("GET 4 KiB ops/s, big index >= 0.8x small", lambda r: r >= 0.8),
    "list1": ("first LIST page, big index <= 1.2x small's time", lambda r: r <= 1.2),
    "restart_s": ("restart to first GET with the big index < 1 s", lambda r: r < 1.0),
}


def verdicts(rat: dict) -> list[tuple[str, float | None, bool | None]]:
    return [
        (text, rat.get(k), None if rat.get(k) is None else ok(rat[k]))
        for k, (text, ok) in TARGETS.items()
    ]


def figures(by: dict, rat: dict) -> list[Figure]:
    out = []
    for label in ("small", "big"):
        if label not in by:
            continue
        d, n = by[label], by[label]["objects"]
        extra = {"objects": n, "fill": d["fill"]}
        for op in ("put4k", "get4k"):
            x = d[op]
            out.append(Figure(SERVER, WORKLOAD, f"{op}_ops_{label}", x["ops_per_s"], "ops/s",
                              client_cpu=x["client_cores"], extra={**extra, **x},
                              valid=x["errors"] <= 0.01 * x["requests"]))  # fmt: skip
        out.append(Figure(SERVER, WORKLOAD, f"list1_s_{label}", d["list1"]["seconds"], "s",
                          extra={**extra, **d["list1"]}))  # fmt: skip
        out.append(Figure(SERVER, WORKLOAD, f"restart_s_{label}", d["restart"]["seconds"], "s",
                          extra={**extra, **d["restart"]}))  # fmt: skip
    for k, v in rat.items():
        out.append(Figure(SERVER, WORKLOAD, f"ratio_{k}", v, "s" if k == "restart_s" else "x"))
    return out


def markdown(summary: dict) -> str:
    """The scale section of a report: both index sizes side by side, then the targets."""
    sm, bg = summary.get("small"), summary.get("big")
    if not sm or not bg:
        return "Scale (PostgreSQL index): not measured."
    rows = [
        f"Scale: one node, index on PostgreSQL, {sm['objects']:,} against {bg['objects']:,} "
        f"objects (fill of the big index: {bg['fill']['seconds']} s, "
        f"{bg['fill']['rows_per_s']:,} rows/s copied, {bg['fill']['database_mib']:,} MiB)",
        "",
        "| figure | small index | big index | big/small | p50 / p99 ms small | p50 / p99 ms big "
        "| CPU ms/op small | CPU ms/op big |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for op, name in (("put4k", "PUT 4 KiB ops/s"), ("get4k", "GET 4 KiB ops/s")):
        a, b = sm[op], bg[op]
        rows.append(
            f"| {name} | {a['ops_per_s']:,.0f} | {b['ops_per_s']:,.0f} "
            f"| {summary['ratios'][op]:.2f}× | {a['p50_ms']:.2f} / {a['p99_ms']:.2f} "
            f"| {b['p50_ms']:.2f} / {b['p99_ms']:.2f} | {a['cpu_ms_per_op']} "
            f"| {b['cpu_ms_per_op']} |"
        )
    rows.append(
        f"| first LIST page s | {sm['list1']['seconds']:.4f} | {bg['list1']['seconds']:.4f} "
        f"| {summary['ratios']['list1']:.2f}× | | | {sm['list1']['cpu_ms_per_list']} ms/list "
        f"| {bg['list1']['cpu_ms_per_list']} ms/list |"
    )
    rows.append(
        f"| restart to first GET s | {sm['restart']['seconds']:.3f} "
        f"| {bg['restart']['seconds']:.3f} | | | | {sm['restart']['cpu_s']} CPU s "
        f"| {bg['restart']['cpu_s']} CPU s |"
    )
    rows += ["", "| scale target | value | met |", "|---|---|---|"]
    for text, value, met in verdicts(summary["ratios"]):
        verdict = {True: "met", False: "**not met**", None: "n/a"}[met]
        rows.append(f"| {text} | {'-' if value is None else value} | {verdict} |")
    return "\n".join(rows)


def settings_from(smoke: bool, objects: int | None, duration: int | None) -> ScaleSettings:
    s = SMOKE if smoke else FULL
    if objects:
        s = replace(s, big=objects)
    if duration:
        s = replace(s, duration=duration)
    return s


def run_from_cli(args: argparse.Namespace) -> int:
    """``bench/run.py --cluster``'s scale part: its own results files next to the cluster's
    (``<run>-scale.jsonl``, ``.json``, ``.md``)."""
    s = settings_from(args.smoke, args.scale_objects, args.duration)
    return _run_and_report(s, args.smoke, args.work_dir, args.results_dir)


def _run_and_report(s: ScaleSettings, smoke: bool, work_dir: Path | None, out: Path) -> int:
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-scale" + ("-smoke" if smoke else "")
    results = Results(out / f"{run_id}.jsonl", run_id)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    try:
        summary = {"run": run_id, "loadavg_before": load, **run(s, work_dir, results)}
    except Exception as exc:  # a failure is a figure, as in the other modes
        traceback.print_exc()
        results.add(Figure(SERVER, WORKLOAD, "error", None, "", note=str(exc)[:300], valid=False))
        return 1
    results.path.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    text = markdown(summary)
    results.path.with_suffix(".md").write_text(f"# Scale {run_id}\n\n{text}\n")
    print("\n" + text + f"\n\nload average before: {load}\nresults: {results.path}")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--objects", type=int, help="objects in the big index (10,000,000)")
    p.add_argument("--small", type=int, help="objects in the reference index (10,000)")
    p.add_argument("--duration", type=int, help="seconds per wrk run (10)")
    p.add_argument("--scrub-rate", help="passed to the node (0: the scrubber off)")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--work-dir", type=Path)
    p.add_argument("--results-dir", type=Path, default=BENCH / "results")
    args = p.parse_args()
    s = settings_from(args.smoke, args.objects, args.duration)
    if args.small:
        s = replace(s, small=args.small)
    if args.scrub_rate is not None:
        s = replace(s, scrub_rate=args.scrub_rate)
    return _run_and_report(s, args.smoke, args.work_dir, args.results_dir)


if __name__ == "__main__":
    sys.exit(main())
