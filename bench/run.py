#!/usr/bin/env python3
"""Holdfast benchmark: Holdfast against SeaweedFS and rclone, same client, same run.

    .venv/bin/python bench/run.py              # everything (installs the peers)
    .venv/bin/python bench/run.py --smoke      # a few seconds, tiny counts
    .venv/bin/python bench/run.py --cluster    # 3-node Holdfast against a SeaweedFS cluster

See bench/README.md for what each workload measures and the targets.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers  # noqa: E402
from loadgen import ensure_wrk  # noqa: E402
from procs import machine_busy  # noqa: E402
from report import Figure, Results, table  # noqa: E402
from settings import settings_for  # noqa: E402
from workloads import ALL_WORKLOADS, OWN_LIFECYCLE, SHARED, Context  # noqa: E402

RESULTS_DIR = servers.BENCH_DIR / "results"
CLUSTER_SYSTEMS = ["holdfast-cluster", "seaweedfs-cluster"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--cluster",
        action="store_true",
        help="a 3-node Holdfast cluster against a SeaweedFS cluster (bench/cluster_bench.py)",
    )
    p.add_argument(
        "--connections",
        help="--cluster: comma-separated connection counts for the 4 KiB workloads, the first "
        "being the headline (default 16; smoke 4)",
    )
    p.add_argument(
        "--objects", type=int, help="--cluster: small objects for GET/LIST/DELETE (10000)"
    )
    p.add_argument(
        "--scale-objects",
        type=int,
        help="--cluster: objects in the big PostgreSQL index of the scale rows "
        "(bench/scale_pg.py; default 10,000,000, smoke 2,000; 0 skips them)",
    )
    p.add_argument(
        "--only",
        help="comma-separated servers (default holdfast,holdfast-pg,seaweedfs,rclone; "
        "holdfast-pg: the same node with its index on PostgreSQL); with --cluster: "
        "holdfast-cluster,seaweedfs-cluster",
    )
    p.add_argument(
        "--workloads",
        default=",".join(ALL_WORKLOADS),
        help=f"comma-separated workloads ({','.join(ALL_WORKLOADS)})",
    )
    p.add_argument("--duration", type=int, help="seconds per wrk run (default 10, smoke 1)")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="tiny counts, a few seconds; peers only if already installed",
    )
    p.add_argument("--holdfast-workers", type=int, help="pass --workers N to holdfast serve")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    p.add_argument(
        "--work-dir", type=Path, help="parent of the temporary data dirs (default: $TMPDIR)"
    )
    p.add_argument("--keep", action="store_true", help="keep data dirs and server logs")
    args = p.parse_args(argv)
    if args.cluster:
        if args.only is not None:
            args.only = ",".join(_choices(args.only, CLUSTER_SYSTEMS, "--only"))
        return args
    default = "holdfast,holdfast-pg,seaweedfs,rclone"
    args.only = _choices(args.only or default, list(servers.KINDS), "--only")
    args.workloads = _choices(args.workloads, ALL_WORKLOADS, "--workloads")
    return args


def _choices(value: str, allowed: list[str], flag: str) -> list[str]:
    picked = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in picked if v not in allowed]
    if unknown:
        raise SystemExit(f"{flag}: unknown {unknown}; choose from {allowed}")
    return [v for v in allowed if v in picked]  # canonical order


def make_kinds(args: argparse.Namespace, results: Results) -> list[servers.ServerKind]:
    """Instantiate and install the chosen servers; the smoke run never installs."""
    kinds = []
    for name in args.only:
        kind = (
            servers.KINDS[name](args.holdfast_workers)
            if name.startswith("holdfast")
            else servers.KINDS[name]()
        )
        if args.smoke and not kind.installed():
            print(f"smoke: skipping {name} (not installed; a full run installs it)")
            continue
        try:
            kind.install()
        except (OSError, subprocess.CalledProcessError, SystemExit) as exc:
            _failed(results, name, "install", exc)
            continue
        kinds.append(kind)
    return kinds


def _failed(results: Results, server: str, workload: str, exc: BaseException) -> None:
    traceback.print_exc()
    results.add(
        Figure(
            server,
            workload,
            "error",
            None,
            "",
            note=f"failed: {exc}".splitlines()[0][:200],
            valid=False,
        )
    )


def run_server(ctx: Context, kind: servers.ServerKind, workloads: list[str]) -> None:
    """All chosen workloads for one server: shared ones on one instance, then the rest."""
    busy = machine_busy()
    ctx.results.busy_before[kind.name] = busy
    ctx.results.add(Figure(kind.name, "machine", "cpu_busy_before", round(busy, 3), "share"))
    shared = [w for w in SHARED if w in workloads]  # SHARED holds the run order
    if shared:
        data_dir = ctx.work_dir / f"{kind.name}-data"
        srv = servers.start(kind, data_dir, ctx.work_dir)
        try:
            servers.wait_ready(srv, ctx.settings.ready_timeout)
            print(f"{kind.name} ready on {srv.endpoint} (pid {srv.pid})", flush=True)
            for name in shared:
                if not _run_one(ctx, kind.name, name, lambda n=name: SHARED[n](ctx, srv)):
                    print(f"--- last lines of the {kind.name} log ---\n{srv.log_tail(15)}")
        except Exception as exc:  # the server did not come up
            _failed(ctx.results, kind.name, "start", exc)
        finally:
            srv.stop()
            shutil.rmtree(data_dir, ignore_errors=True)
    if kind.name == "holdfast":  # restart and scale are about Holdfast's own index
        for name in (w for w in workloads if w in OWN_LIFECYCLE):
            _run_one(ctx, kind.name, name, lambda n=name: OWN_LIFECYCLE[n](ctx, kind))


def _run_one(ctx: Context, server: str, workload: str, fn) -> bool:
    """Run one workload; a failure becomes an `error` figure, not an aborted run."""
    print(f"{server}: {workload}", flush=True)
    t0 = time.perf_counter()
    try:
        for fig in fn():
            ctx.results.add(fig)
    except Exception as exc:
        _failed(ctx.results, server, workload, exc)
        return False
    print(f"  ({time.perf_counter() - t0:.1f} s)", flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ensure_wrk()
    if args.cluster:
        import cluster_bench

        rc = cluster_bench.main(args)
        if args.scale_objects != 0:  # issue 16's scale rows: one node, index on PostgreSQL
            import scale_pg

            rc = max(rc, scale_pg.run_from_cli(args))
        return rc
    run_id = time.strftime("%Y%m%d-%H%M%S") + ("-smoke" if args.smoke else "")
    results = Results(args.results_dir / f"{run_id}.jsonl", run_id)
    settings = settings_for(args.smoke, args.duration)
    work_dir = Path(tempfile.mkdtemp(prefix="holdfast-bench-", dir=args.work_dir))
    ctx = Context(settings, work_dir, results)
    try:
        for kind in make_kinds(args, results):
            run_server(ctx, kind, args.workloads)
    finally:
        if args.keep:
            print(f"kept {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    text = table(results)
    results.path.with_suffix(".txt").write_text(text + "\n")
    print("\n" + text)
    print(f"\nresults: {results.path}")
    return 1 if any(f.metric == "error" for f in results.figures) else 0


if __name__ == "__main__":
    sys.exit(main())
