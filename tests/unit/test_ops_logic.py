"""Pure logic of the ops layer: time-series tiers and percentiles, alert rules and the
outbox's duplicate suppression, request-log encoding, search and time parsing."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from holdfast.config import Config
from holdfast.ops.alerts import Outbox, backlog_condition, evaluate, retry_delay
from holdfast.ops.metrics import LATENCY_BUCKETS, Totals
from holdfast.ops.observe import Finished, _Clock, encode_line, record_of
from holdfast.ops.requestlog import (
    FIELDS,
    LogQuery,
    RequestLogWriter,
    enforce_cap,
    parse_when,
    search,
)
from holdfast.ops.timeseries import Sampler, TimeSeries, chart, percentile_ms, summary


def test_tiers_consolidate_and_stay_fixed_size():
    series = TimeSeries()
    hist = [0.0] * len(LATENCY_BUCKETS)
    hist[3] = 5  # five requests in the 2.5-5 ms bucket
    t0 = 1_800_000_000.0  # a multiple of 300
    for i in range(120):  # 20 minutes of 10 s samples
        series.add(t0 + i * 10, {"requests": 5, "errors_5xx": 1}, hist, {"capacity_total": 100})
    fine = chart(series, "15m", now=t0 + 1199)
    assert len(fine["points"]) == 90 and all(p["requests"] == 5 for p in fine["points"])
    hour = chart(series, "1h", now=t0 + 1199)
    assert len(hour["points"]) == 60
    assert [p["requests"] for p in hour["points"][-20:]] == [30] * 20  # six samples a minute
    assert hour["points"][-21]["requests"] is None  # before the first sample: a gap
    day = chart(series, "1d", now=t0 + 1199)
    assert [p["requests"] for p in day["points"][-4:]] == [150, 150, 150, 150]
    assert day["points"][-1]["error_rate"] == 0.2 and day["points"][-1]["capacity_total"] == 100
    assert 2.5 <= day["points"][-1]["latency_ms"]["p50"] <= 5.0
    assert json.loads(json.dumps(series.to_json())) == series.to_json()


def test_percentiles_interpolate_within_buckets():
    hist = [0.0] * len(LATENCY_BUCKETS)
    hist[0] = 50  # <= 0.5 ms
    hist[6] = 50  # 25-50 ms
    assert percentile_ms(hist, 0.5) == pytest.approx(0.5)
    assert percentile_ms(hist, 0.99) == pytest.approx(49.5)
    assert percentile_ms([0.0] * len(LATENCY_BUCKETS), 0.5) is None


def test_sampler_turns_totals_into_differences(tmp_path):
    sampler = Sampler(tmp_path / "ts.json", boot_id="b1")
    now = 1_800_000_000.0
    sampler.sample(Totals(requests=10, bytes_in=100), {}, now)
    sampler.sample(Totals(requests=25, bytes_in=150), {}, now + 10)
    sampler.save()
    again = Sampler.open(tmp_path / "ts.json", boot_id="b1")  # leadership moved: same boot
    again.sample(Totals(requests=30, bytes_in=150), {}, now + 20)
    points = [
        p for p in chart(again.series, "10s", now + 25)["points"] if p["requests"] is not None
    ]
    assert [p["requests"] for p in points] == [10, 15, 5]
    new_boot = Sampler.open(tmp_path / "ts.json", boot_id="b2")  # counters restarted at 0
    assert new_boot.baseline.requests == 0
    assert summary(again.series, now + 25)["5m"]["requests"] == 30


def _snapshot(**overrides) -> dict:
    snap = {
        "index": {"readable": True, "writable": True, "corrupt_objects": 0, "corrupt_examples": []},
        "drives": [
            {"id": "d0", "path": "/d0", "state": "ok", "reason": None, "free_percent": 50.0}
        ],
        "repair": {"available": False},
    }
    snap.update(overrides)
    return snap


def test_rules():
    config = Config()
    conditions, known = evaluate(_snapshot(), [], [], config)
    assert conditions == [] and "corruption" in known and "error_rate" not in known
    snap = _snapshot(
        index={"readable": True, "writable": False, "error": "locked", "corrupt_objects": None},
        drives=[
            {"id": "d0", "path": "/d0", "state": "ok", "reason": None, "free_percent": 3.0},
            {
                "id": "d1",
                "path": "/d1",
                "state": "read-only",
                "reason": "EROFS",
                "free_percent": 40.0,
            },
        ],
    )
    conditions, known = evaluate(snap, [], [], config)
    assert {c.key for c in conditions} == {"index:not-writable", "free:d0", "drive:d1"}
    assert "corruption" not in known  # unknown while the index cannot be counted
    busy = [{"requests": 100, "errors_5xx": 10}] * 30
    conditions, known = evaluate(_snapshot(), busy, [], config)
    assert [c.key for c in conditions] == ["error-rate"] and "error_rate" in known
    quiet = [{"requests": 1, "errors_5xx": 1}] * 3  # under the minimum request count
    assert evaluate(_snapshot(), quiet, [], config)[0] == []


def test_backlog_growing_for_n_minutes():
    def points(values):
        return [{"repair_backlog": v} for v in values]

    assert backlog_condition(points([1, 2, 2, 5]), 3) is not None
    assert backlog_condition(points([1, 2, 1, 5]), 3) is None  # it shrank once
    assert backlog_condition(points([4, 4, 4, 4]), 3) is None  # flat
    assert backlog_condition(points([None, 2, 3, 4]), 3) is None  # not known all along


def test_outbox_suppresses_duplicates_and_resolves(tmp_path):
    outbox = Outbox(tmp_path / "alerts.db")
    outbox.create()
    config = Config()
    snap = _snapshot(
        drives=[{"id": "d1", "path": "/d1", "state": "down", "reason": "EIO", "free_percent": None}]
    )
    now = 1_800_000_000.0
    for i in range(5):
        conditions, known = evaluate(snap, [], [], config)
        raised = outbox.apply(conditions, known, clear_after=30, now=now + i)
        assert raised == (["drive"] if i == 0 else [])
    conditions, known = evaluate(_snapshot(), [], [], config)
    assert outbox.apply(conditions, known, clear_after=30, now=now + 10) == []  # not yet
    assert outbox.apply(conditions, known, clear_after=30, now=now + 40) == ["drive"]
    kinds = [a["kind"] for a in reversed(outbox.recent())]
    assert kinds == ["firing", "resolved"]
    assert outbox.raise_event("restart:x", "node_restart", "info", "started", {})
    assert not outbox.raise_event("restart:x", "node_restart", "info", "started", {})
    first = outbox.next_pending()
    outbox.failed(first["id"], [("webhook", "HTTP 500")], next_attempt=now)
    assert outbox.next_pending()["attempts"] == 1
    outbox.delivered(first["id"], "webhook")
    assert outbox.next_pending()["id"] != first["id"]
    assert outbox.summary(["webhook"])["pending"] == 2


def test_retry_delay_grows_with_attempts_and_is_capped():
    delays = [retry_delay(n, base=1.0, cap=8.0) for n in range(1, 8)]
    assert 0.5 <= delays[0] <= 1.0 and 4.0 <= delays[-1] <= 8.0
    assert all(d <= 8.0 for d in delays)


def _finished(**kw) -> tuple:
    base = dict(
        ended=1_800_000_000.25, latency=0.002, aborted=False, request_id="R1", remote="127.0.0.1:5",
        access_key=None, authorization="AWS4-HMAC-SHA256 Credential=AKX/20261122/us-east-1/s3/"
        "aws4_request, SignedHeaders=host, Signature=" + "f" * 64, user=None, method="PUT",
        raw_path='/b/we"ird\u00e9', bucket="b", key='we"ird\u00e9', query=None, copy=False,
        status=403, error_body=b"<Error><Code>SignatureDoesNotMatch</Code></Error>", failure=None,
        content_length="12", bytes_out=99, user_agent="ua", access=None,
    )  # fmt: skip
    base.update(kw)
    return tuple(base[f] for f in Finished._fields)


def test_log_line_is_json_without_signatures():
    record = record_of(Finished._make(_finished()))
    line = encode_line(record, _Clock(), 42)
    data = json.loads(line)
    skipped = ("outcome", "status_sent", "aborted")
    assert list(data) == [f for f in FIELDS if f not in (*skipped, "access")]
    decided = json.loads(
        encode_line(record_of(Finished._make(_finished(access="denied: x"))), _Clock(), 1)
    )
    assert list(decided) == [f for f in FIELDS if f not in skipped]
    assert decided["access"] == "denied: x"
    assert data["access_key"] == "AKX" and data["key"] == 'we"ird\u00e9'
    assert data["operation"] == "PutObject" and data["error_code"] == "SignatureDoesNotMatch"
    assert data["time"] == "2027-01-15T08:00:00.248Z" or data["time"].endswith("Z")
    assert "f" * 64 not in line and "Signature" not in line.replace("SignatureDoesNotMatch", "")
    for name in ("key", "bucket", "access_key", "request_id"):  # what search's needles rely on
        assert f'"{name}":{json.dumps(data[name])}' in line


def test_a_read_cut_short_is_recorded_as_a_server_failure(tmp_path: Path):
    """Headers said 206, then no copy of a block verified: the record is a 500 with its error
    code and outcome "aborted", so a search for 5xx finds it (issue 18)."""
    f = _finished(method="GET", status=206, error_body=None, failure="DataLost", aborted=True)
    record = record_of(Finished._make(f))
    assert (record.status, record.error_code, record.aborted) == (500, "DataLost", True)
    data = json.loads(encode_line(record, _Clock(), 1))
    assert data["status"] == 500 and data["status_sent"] == 206
    assert data["outcome"] == "aborted" and data["error_code"] == "DataLost"
    assert list(data) == [f for f in FIELDS if f != "access"]  # no decision in this record
    writer = RequestLogWriter(tmp_path, max_bytes=1 << 20)
    ok = encode_line(record_of(Finished._make(_finished(status=200, error_body=None))), _Clock(), 1)
    writer.write((ok + "\n" + encode_line(record, _Clock(), 1) + "\n").encode())
    writer.close()
    assert [h["error_code"] for h in search(tmp_path, LogQuery(status="5xx"))] == ["DataLost"]


def test_search_filters_and_rotation(tmp_path: Path):
    writer = RequestLogWriter(tmp_path, max_bytes=64 * 1024 * 8)
    clock = _Clock()
    now = time.time()
    lines = []
    for i in range(300):
        f = _finished(
            ended=now - 300 + i, request_id=f"R{i}", key=f"logs/{i}" if i % 2 else f"img/{i}",
            status=200 if i % 3 else 404, error_body=None, access_key="AK1" if i < 150 else "AK2",
        )  # fmt: skip
        lines.append(encode_line(record_of(Finished._make(f)), clock, 1))
    writer.write(("\n".join(lines) + "\n").encode())
    hits = search(tmp_path, LogQuery(key_prefix="logs/", status="404", access_key="AK2", limit=5))
    assert len(hits) == 5 and all(h["key"].startswith("logs/") and h["status"] == 404 for h in hits)
    assert hits == sorted(hits, key=lambda h: h["ts"], reverse=True)  # newest first
    assert [h["request_id"] for h in search(tmp_path, LogQuery(request_id="R7"))] == ["R7"]
    assert len(search(tmp_path, LogQuery(since=now - 100, limit=1000))) <= 101
    # Rotation: many segments, the cap keeps the total bounded.
    small = RequestLogWriter(tmp_path / "small", max_bytes=64 * 1024 * 2)
    for _ in range(40):
        small.write(("\n".join(lines[:20]) + "\n").encode())
    small.close()
    enforce_cap(tmp_path / "small", 64 * 1024 * 2)
    total = sum(p.stat().st_size for p in (tmp_path / "small").glob("requests-*"))
    assert total <= 64 * 1024 * 2 + 64 * 1024


def test_parse_when():
    now = 1_800_000_000.0
    assert parse_when("15m", now) == now - 900
    assert parse_when("2h", now) == now - 7200
    assert parse_when("1800000000", now) == now
    assert parse_when("2027-01-15T08:00:00Z", now) == 1_800_000_000.0
    with pytest.raises(ValueError):
        parse_when("yesterday", now)
