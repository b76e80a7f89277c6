"""How long writes stop when the index's primary PostgreSQL dies (docs/cluster.md, "High
availability"). Starts etcd and a Patroni-managed PostgreSQL pair or trio in
``synchronous_mode`` on loopback (tests/patroni.py: installs etcd-server with apt-get and
Patroni with pip into its own virtualenv when missing), one ``holdfast serve`` on the
multi-host DSN, and boto3 writers (default settings, so with retries); then, ``--rounds``
times, SIGKILLs the primary's PostgreSQL and measures:

* promoted: from the kill until Patroni reports another member primary and accepts writes;
* resumed: from the kill until the answer of the first probe PUT (no retries, one every
  0.1 s) sent after the last failed one: writes are back for good;
* the HTTP answers meanwhile (503s, and the 500 of any COMMIT in flight at the kill), and
  that every acknowledged PUT reads back with its bytes.

Run from the repository root, as root or as a user that may run PostgreSQL:

    .venv/bin/python bench/failover.py                 # 2 members, 3 rounds
    .venv/bin/python bench/failover.py --members 3 --rounds 5

Everything is bounded (writes per round, waits) and on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.getcwd())

from tests.conftest import Server, free_port  # noqa: E402
from tests.patroni import PatroniCluster  # noqa: E402
from tests.write_load import Load, client_factory  # noqa: E402


def one_round(cluster: PatroniCluster, node: Server, n: int, writers: int) -> dict:
    cluster.wait_synchronous(180)  # the previous primary has rejoined as the sync standby
    load = Load(
        client_factory(node), "failover", writers=writers, max_per_writer=2000, prefix=f"r{n}/"
    )
    load.start()
    try:
        load.wait_acked(50, timeout=120)
        old = cluster.primary()
        killed_at = time.monotonic()
        cluster.kill_primary_postgres()
        new = cluster.wait_primary(180, other_than=old)
        promoted = time.monotonic() - killed_at
        deadline = time.monotonic() + 120
        while load.first_ok_after(killed_at) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        load.wait_acked(50, timeout=120)
    finally:
        load.stop()
    s3 = node.client()
    checked, problems = load.check_readback(s3)
    statuses = load.statuses()
    return {
        "round": n,
        "from": old.name if old else "?",
        "to": new.name,
        "promoted_s": promoted,
        "resumed_s": load.first_ok_after(killed_at),
        "acked": load.acked_count(),
        "checked": checked,
        "lost_or_wrong": len(problems),
        "503": statuses[(503, "ServiceUnavailable")],
        "500_unknown_outcome": len(load.outcome_unknown()),
        "other_5xx": len(load.server_errors()),
        "failed_after_retries": len(load.failed),
        "problems": problems[:5] + [f"failed: {k}: {e[:120]}" for k, e in load.failed[:5]],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=2, choices=(2, 3))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="keep the directories and logs")
    args = parser.parse_args()

    top = Path(tempfile.mkdtemp(prefix="holdfast-bench-failover-"))
    top.chmod(0o755)  # the postgres user must get through to the cluster's directory
    cluster = PatroniCluster(top / "patroni", members=args.members)
    node = None
    rows = []
    try:
        started = time.monotonic()
        cluster.start()
        print(f"patroni: {args.members} members up in {time.monotonic() - started:.0f} s")
        dsn = cluster.create_database("holdfast")
        node = Server(data_dirs=[top / "node" / "drive0"], port=free_port(), index_dsn=dsn)
        node.start(timeout=60)
        node.client().create_bucket(Bucket="failover")
        print(f"holdfast on {dsn}")
        for n in range(1, args.rounds + 1):
            row = one_round(cluster, node, n, args.writers)
            rows.append(row)
            print(
                f"round {n}: {row['from']} -> {row['to']}: promoted {row['promoted_s']:.1f} s, "
                f"writes resumed {row['resumed_s']:.1f} s; {row['acked']} PUTs acknowledged, "
                f"{row['lost_or_wrong']} lost or wrong, {row['failed_after_retries']} failed "
                f"after boto3's retries; {row['503']} x 503, {row['other_5xx']} other 5xx "
                f"({row['500_unknown_outcome']} of them a 500 for an unresolved COMMIT)",
                flush=True,
            )
            for p in row["problems"]:
                print("   ", p)
    finally:
        if node is not None:
            node.stop()
        cluster.stop()
        if args.keep:
            print(f"kept {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)
    resumed = [r["resumed_s"] for r in rows if r["resumed_s"] is not None]
    if resumed:
        print(
            f"writes resumed after: median {statistics.median(resumed):.1f} s, "
            f"max {max(resumed):.1f} s over {len(resumed)} rounds "
            f"({args.members} members, {args.writers} writers)"
        )
    bad = sum(r["lost_or_wrong"] + r["other_5xx"] for r in rows)
    return 1 if bad or len(resumed) < len(rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
