"""Bit rot: bytes flipped, blobs truncated and deleted behind the server's back.

While one copy of every block is good, every GET returns the exact bytes (switching copies
mid-stream, even between copies damaged in different places), and every injected fault is
repaired: the ones a GET trips on by the repair it queues, the others by the scrubber, which
finds each of them on its own. Bad copies end up in quarantine, not deleted. When no copy of
a block is good the GET is cut short, and the object is marked damaged in status.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import subprocess
import sys

import pytest
import requests

from tests.conftest import Server, start_server
from tests.e2e.ops_helpers import Webhook, metric_value, status_headers
from tests.faults.support import (
    MIB,
    blob_files,
    drive_index,
    flip,
    quarantined,
    query,
    repair_rows,
    segments_of,
    status,
    truncate,
    wait_for,
)

FLAGS = [
    "--scrub-interval", "0.5", "--scrub-rate", "256MiB", "--repair-backoff-base", "0.2",
    "--repair-backoff-cap", "2",
]  # fmt: skip


def _copies(server: Server, bucket: str, key: str, seg: int = 0) -> list:
    """The files holding each copy of one segment, in the segment's store order."""
    s = segments_of(server, bucket, key)[seg]
    return [blob_files(server.data_dirs[drive_index(sid)])[s["id"]] for sid in s["st"]]


def _inject(rng: random.Random, path, size: int, kind: str) -> None:
    if kind == "flip":
        flip(path, rng.randrange(size))
    elif kind == "truncate":
        truncate(path, rng.randrange(size))
    else:
        path.unlink()


def _get(s3, bucket: str, key: str) -> str:
    return hashlib.md5(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()


def _settled(server: Server) -> bool:
    """No repair owed, and the published status agrees."""
    st = status(server)
    return (
        not repair_rows(server) and st.get("repair_queue") == {} and not st["repair"]["in_flight"]
    )


def _fsck_clean(server: Server) -> str:
    cmd = [sys.executable, "-m", "holdfast.cli", "fsck", "--no-progress"]
    for d in server.data_dirs:
        cmd += ["--data", str(d)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_bit_rot_is_read_around_and_repaired(tmp_path):
    rng = random.Random(int(os.environ.get("HOLDFAST_FAULT_SEED", "4")))
    server = start_server(tmp_path, drives=2, extra_args=FLAGS)
    try:
        s3 = server.client(retries={"max_attempts": 1})
        s3.create_bucket(Bucket="rot")
        sizes = {f"obj-{i}": rng.randrange(70_000, 3 * MIB) for i in range(24)}
        for i in range(4):
            sizes[f"multi-{i}"] = 2 * MIB + rng.randrange(MIB)  # at least three 1 MiB blocks
        digests = {}
        for key, size in sizes.items():
            body = os.urandom(size)
            s3.put_object(Bucket="rot", Key=key, Body=body)
            digests[key] = hashlib.md5(body).hexdigest()
        upload = s3.create_multipart_upload(Bucket="rot", Key="unfinished")["UploadId"]
        s3.upload_part(
            Bucket="rot", Key="unfinished", UploadId=upload, PartNumber=1, Body=os.urandom(MIB)
        )
        wait_for(
            "a first scrub pass", lambda: (status(server).get("scrub") or {}).get("last_pass"), 20
        )

        # -- Phase 1: faults that GETs trip over -------------------------------------------
        kinds = ["flip", "truncate", "delete"]
        read_faults = 0
        for i in range(12):
            key = f"obj-{i}"
            path = rng.choice(_copies(server, "rot", key))
            _inject(rng, path, sizes[key], kinds[i % 3])
            read_faults += 1
        for i in range(4):  # both copies bad, in different blocks: only block-by-block works
            a, b = _copies(server, "rot", f"multi-{i}")
            flip(a, 100 + rng.randrange(MIB - 200))
            flip(b, 2 * MIB + rng.randrange(sizes[f"multi-{i}"] - 2 * MIB))
            read_faults += 2
        for key in digests:
            assert _get(s3, "rot", key) == digests[key], key
        wait_for("read-path repairs done", lambda: _settled(server), 30)

        # -- Phase 2: faults nobody reads: the scrubber alone must find them ---------------
        scrub_before = status(server)["scrub"]["faults_total"]
        log_before = len(server.log())
        scrub_faults = 0
        for i in range(12, 24):
            key = f"obj-{i}"
            path = rng.choice(_copies(server, "rot", key))
            _inject(rng, path, sizes[key], kinds[i % 3])
            scrub_faults += 1
        part_seg = json.loads(query(server, "SELECT segment FROM parts")[0][0])
        part = blob_files(server.data_dirs[drive_index(part_seg["st"][-1])])[part_seg["id"]]
        flip(part, 12345)
        scrub_faults += 1
        found = wait_for(
            "the scrubber finding every fault",
            lambda: (
                (n := status(server)["scrub"]["faults_total"] - scrub_before) >= scrub_faults and n
            ),
            30,
        )
        wait_for("scrub repairs done", lambda: _settled(server), 30)
        for key in digests:
            assert _get(s3, "rot", key) == digests[key], key
        report = _fsck_clean(server)
        kept = sum(len(quarantined(d)) for d in server.data_dirs)
        st = status(server)
        print(
            f"\nbit rot: {read_faults} faults under GETs (all GETs correct), {scrub_faults} "
            f"for the scrubber, which found {found}; repaired copies {st['repair']['repaired']}, "
            f"bytes {st['repair']['bytes_copied']}, quarantined {kept}\n{report}"
        )
        # A pass that starts before the repair of a copy it found is done finds that copy
        # again (repair is paced per second; the queue keeps one row per copy), so the
        # scrubber's findings are compared as distinct copies: exactly the injected ones.
        distinct = set(
            re.findall(r"scrub: \S+ copy of blob (\S+) on (\S+)", server.log()[log_before:])
        )
        assert found >= scrub_faults
        assert len(distinct) == scrub_faults, sorted(distinct)
        assert kept >= 2 * 4 + 8 + 4  # flips and truncations are kept aside, not deleted
    finally:
        server.stop()


def ops_get(server: Server, path: str) -> requests.Response:
    """GET one of the node's own pages (status, metrics) as root: SigV4-signed (issue 18)."""
    route, _, query = path.partition("?")
    headers = status_headers(server, route, query)
    return requests.get(f"{server.endpoint}{path}", headers=headers, timeout=5)


def test_no_good_copy_aborts_the_get_marks_the_object_and_raises_an_alert(tmp_path):
    hook = Webhook()
    alerting = ["--alert-webhook", hook.url, "--alert-eval-interval", "0.5"]
    alerting += ["--status-refresh", "0.3", "--alert-error-window", "30"]
    server = start_server(tmp_path, drives=2, extra_args=FLAGS + alerting)
    try:
        s3 = server.client(retries={"max_attempts": 1})
        s3.create_bucket(Bucket="lost")
        body = os.urandom(3 * MIB)
        s3.put_object(Bucket="lost", Key="obj", Body=body)
        for path in _copies(server, "lost", "obj"):
            flip(path, MIB + 777)  # the same block in both copies
        log_start = len(server.log())
        url = s3.generate_presigned_url("get_object", Params={"Bucket": "lost", "Key": "obj"})
        for headers in ({}, {"Range": f"bytes=0-{2 * MIB}"}):
            received = b""
            with (
                pytest.raises(requests.exceptions.ChunkedEncodingError),
                requests.get(url, stream=True, timeout=10, headers=headers) as r,
            ):
                for chunk in r.iter_content(64 * 1024):
                    received += chunk
            assert len(received) < len(body) and body.startswith(received)
        damaged = wait_for(
            "damage in status", lambda: (status(server).get("damaged") or {}).get("count"), 10
        )
        assert damaged == 1 and status(server)["damaged"]["examples"] == ["lost/obj"]
        rows = repair_rows(server)
        assert {r[1] for r in rows} == {"local/d0", "local/d1"}, "repairs stay queued, backing off"
        assert all(len(quarantined(d)) == 0 for d in server.data_dirs), "nothing to replace yet"
        alert = wait_for(
            "the corruption alert",
            lambda: next((a for a in hook.received if a["rule"] == "corruption"), None),
            20,
        )
        assert alert["kind"] == "firing" and alert["severity"] == "critical"
        assert "lost/obj" in alert["summary"]
        _assert_cut_reads_are_failures(server, log_start)
        # Enough traffic for the error-rate rule to judge, 2 of it 5xx (default 5% threshold).
        for _ in range(24):
            s3.head_object(Bucket="lost", Key="obj")
        error_rate = wait_for(
            "the error-rate alert",
            lambda: next((a for a in hook.received if a["rule"] == "error_rate"), None),
            40,
        )
        assert error_rate["kind"] == "firing", error_rate
    finally:
        server.stop()
        hook.close()


def _assert_cut_reads_are_failures(server: Server, log_start: int) -> None:
    """The two cut reads (headers 200 and 206) are server-side failures everywhere an operator
    looks: request log, log search, metrics, status headline, one log line each (issue 18)."""
    cmd = [sys.executable, "-m", "holdfast.cli", "log", "search", "--data"]
    cmd += [str(server.data_dirs[0]), "--status", "5xx", "--json"]

    def search() -> list:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        return json.loads(out.stdout) if out.returncode == 0 else []

    records = wait_for("both cut reads in the request log", lambda: len(search()) == 2 and search())
    assert sorted(r["status_sent"] for r in records) == [200, 206], records
    for r in records:
        assert (r["status"], r["error_code"], r["outcome"]) == (500, "DataLost", "aborted"), r
        assert (r["operation"], r["bucket"], r["key"]) == ("GetObject", "lost", "obj"), r

    def metrics_after_both() -> str | None:
        text = ops_get(server, "/_holdfast/metrics").text
        aborted = metric_value(text, "holdfast_s3_aborted_responses_total", operation="GetObject")
        return text if aborted == 2 else None

    text = wait_for("the aborts in the metrics", metrics_after_both)
    assert (
        metric_value(text, "holdfast_s3_requests_total", operation="GetObject", status="500") == 2
    )
    assert (
        metric_value(text, "holdfast_s3_errors_total", operation="GetObject", code="DataLost") == 2
    )
    headline = wait_for(
        "the damaged object in the status headline",
        lambda: next(
            (
                p["what"]
                for p in ops_get(server, "/_holdfast/status?format=json").json()["problems"]
                if "lost/obj" in p["what"]
            ),
            None,
        ),
        10,
    )
    assert headline == "no good copy of lost/obj: restore it from backup, or delete it"
    page = ops_get(server, "/_holdfast/status").text
    assert "no good copy of lost/obj: restore it from backup, or delete it" in page
    new_log = server.log()[log_start:]
    assert "Traceback" not in new_log and "Exception in ASGI" not in new_log, new_log[-3000:]
    lines = [json.loads(line) for line in new_log.splitlines() if '"read_aborted"' in line]
    assert len(lines) == 2, new_log[-3000:]
    for line in lines:
        assert line["time"].endswith("Z") and (line["bucket"], line["key"]) == ("lost", "obj")
        assert line["offset"] == MIB and line["status_sent"] in (200, 206)
