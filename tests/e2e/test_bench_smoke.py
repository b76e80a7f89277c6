"""The benchmark keeps working: run its smoke mode against Holdfast.

The benchmark itself is not part of the test suite (it takes many minutes
and installs peers); the smoke mode runs every workload with tiny counts so
a change that breaks the harness, or a server path it relies on (presigned
SigV4, ListObjectsV2 paging, streaming bodies), fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "bench" / "run.py"
SHARED_WORKLOADS = {"put4k", "get4k", "list", "put64m", "get64m", "rss"}


@pytest.mark.timeout(120)
def test_bench_smoke_produces_json_lines(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(RUN), "--smoke", "--only", "holdfast", "--results-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=110,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    files = list(tmp_path.glob("*.jsonl"))
    assert len(files) == 1, files
    figures = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert figures, "no JSON lines written"
    assert {f["server"] for f in figures} == {"holdfast"}
    assert {f["workload"] for f in figures} >= SHARED_WORKLOADS
    measured = [f for f in figures if f["value"] is not None]
    assert all(f["valid"] for f in measured), [f for f in measured if not f["valid"]]
    by_metric = {(f["workload"], f["metric"]): f for f in figures}
    assert by_metric[("put4k", "ops_per_s")]["value"] > 0
    assert by_metric[("get4k", "ops_per_s")]["value"] > 0
    assert by_metric[("get64m", "mb_per_s")]["extra"]["verified"] == "md5"
    assert "target" in files[0].with_suffix(".txt").read_text()
