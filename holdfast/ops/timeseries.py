"""A small fixed-size time-series store kept by the node itself, as RRDtool does.

Three tiers of slots, each a ring of fixed size, so the store never grows:

========  ======  =====  ========
tier      step    slots  covers
========  ======  =====  ========
``10s``   10 s    90     15 min
``1m``    60 s    60     1 hour
``5m``    300 s   288    1 day
========  ======  =====  ========

Every sample (one every 10 s) is added to the current slot of all three tiers: counters
(requests, errors, bytes, latency histogram counts) are summed, gauges (capacity, repair
backlog, objects) keep the last value. That is the RRD "consolidation" of the fine tier
into the coarse ones, done as the data arrives instead of in a second pass.

One process of the node (the ops leader, ``leader.py``) samples the node-wide totals from
the metrics and writes the store to ``<ops>/timeseries.json`` after each sample; every
worker reads that file, so the charts are the same whichever worker answers, and survive a
restart. Counters are node-wide cumulative values; the store keeps their differences.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from holdfast.ops.metrics import LATENCY_BUCKETS, Totals
from holdfast.ops.node import write_atomic

COUNTERS = ("requests", "errors_4xx", "errors_5xx", "bytes_in", "bytes_out", "latency_sum")
GAUGES = ("capacity_total", "capacity_used", "repair_backlog", "objects")
SAMPLE_SECONDS = 10.0
FILE_NAME = "timeseries.json"


@dataclass(frozen=True)
class Tier:
    name: str
    step: int
    size: int

    @property
    def span(self) -> int:
        return self.step * self.size


TIERS = (Tier("10s", 10, 90), Tier("1m", 60, 60), Tier("5m", 300, 288))
TIER_BY_NAME = {t.name: t for t in TIERS}
RANGES = {"15m": "10s", "10m": "10s", "1h": "1m", "1d": "5m", "24h": "5m"}


def _empty_slot(start: int) -> dict:
    return {"t": start, **dict.fromkeys(COUNTERS, 0.0), "hist": [0.0] * len(LATENCY_BUCKETS)}


class TimeSeries:
    def __init__(self) -> None:
        self.rings: dict[str, list[dict | None]] = {t.name: [None] * t.size for t in TIERS}

    def add(self, now: float, deltas: dict[str, float], hist: list[float], gauges: dict) -> None:
        for tier in TIERS:
            start = int(now // tier.step) * tier.step
            ring = self.rings[tier.name]
            i = (start // tier.step) % tier.size
            slot = ring[i]
            if slot is None or slot["t"] != start:
                slot = ring[i] = _empty_slot(start)
            for name in COUNTERS:
                slot[name] += deltas.get(name, 0.0)
            slot["hist"] = [a + b for a, b in zip(slot["hist"], hist, strict=True)]
            for name in GAUGES:
                if gauges.get(name) is not None:
                    slot[name] = gauges[name]

    def slots(self, tier_name: str, now: float | None = None) -> list[tuple[int, dict | None]]:
        """(start, slot or None) for every step of the tier's window, oldest first."""
        tier = TIER_BY_NAME[tier_name]
        now = time.time() if now is None else now
        last = int(now // tier.step) * tier.step
        ring = self.rings[tier_name]
        out = []
        for start in range(last - tier.span + tier.step, last + tier.step, tier.step):
            slot = ring[(start // tier.step) % tier.size]
            out.append((start, slot if slot is not None and slot["t"] == start else None))
        return out

    def to_json(self) -> dict:
        return {"rings": self.rings}

    @classmethod
    def from_json(cls, data: dict) -> TimeSeries:
        series = cls()
        for tier in TIERS:
            ring = data.get("rings", {}).get(tier.name)
            if isinstance(ring, list) and len(ring) == tier.size:
                series.rings[tier.name] = ring
        return series


# -- reading it back, for charts and the status page ------------------------------------------


def percentile_ms(hist: list[float], q: float) -> float | None:
    """The q-quantile of a latency histogram (per-bucket counts), interpolated within its
    bucket, in milliseconds."""
    total = sum(hist)
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    lower = 0.0
    for count, upper in zip(hist, LATENCY_BUCKETS, strict=True):
        if count and seen + count >= rank:
            if math.isinf(upper):
                return round(lower * 1000, 3)
            return round((lower + (upper - lower) * (rank - seen) / count) * 1000, 3)
        seen += count
        lower = upper if not math.isinf(upper) else lower
    return round(lower * 1000, 3)


def point(start: int, slot: dict | None, step: int) -> dict:
    """One chart point; a slot never sampled (node down) has nulls, so charts show a gap."""
    if slot is None:
        return {"t": start, **dict.fromkeys(COUNTERS), **dict.fromkeys(GAUGES), "latency_ms": None}
    requests = slot["requests"]
    return {
        "t": start,
        **{name: slot[name] for name in COUNTERS},
        **{name: slot.get(name) for name in GAUGES},
        "requests_per_second": round(requests / step, 3),
        "error_rate": round(slot["errors_5xx"] / requests, 4) if requests else 0.0,
        "latency_ms": {
            "mean": round(slot["latency_sum"] / requests * 1000, 3) if requests else None,
            "p50": percentile_ms(slot["hist"], 0.5),
            "p95": percentile_ms(slot["hist"], 0.95),
            "p99": percentile_ms(slot["hist"], 0.99),
        },
    }


def chart(series: TimeSeries, range_name: str, now: float | None = None) -> dict:
    tier_name = RANGES.get(range_name, range_name)
    if tier_name not in TIER_BY_NAME:
        raise ValueError(f"range must be one of {', '.join(sorted(RANGES))} or a tier name")
    tier = TIER_BY_NAME[tier_name]
    return {
        "range": range_name,
        "tier": tier.name,
        "step_seconds": tier.step,
        "points": [point(start, slot, tier.step) for start, slot in series.slots(tier.name, now)],
    }


def summary(series: TimeSeries, now: float | None = None) -> dict:
    """Rates over the last minute and five minutes, for the status page and alerts."""
    now = time.time() if now is None else now
    out: dict = {}
    sampled = [(s, slot) for s, slot in series.slots("10s", now) if slot is not None]
    for label, seconds in (("1m", 60), ("5m", 300)):
        recent = [slot for start, slot in sampled if start > now - seconds - 10]
        req = sum(s["requests"] for s in recent)
        hist = (
            [sum(col) for col in zip(*(s["hist"] for s in recent), strict=True)] if recent else []
        )
        window = max(len(recent), 1) * 10
        out[label] = {
            "requests": req,
            "requests_per_second": round(req / window, 3),
            "errors_5xx": sum(s["errors_5xx"] for s in recent),
            "errors_4xx": sum(s["errors_4xx"] for s in recent),
            "error_rate": round(sum(s["errors_5xx"] for s in recent) / req, 4) if req else 0.0,
            "bytes_in_per_second": round(sum(s["bytes_in"] for s in recent) / window, 1),
            "bytes_out_per_second": round(sum(s["bytes_out"] for s in recent) / window, 1),
            "latency_p50_ms": percentile_ms(hist, 0.5) if hist else None,
            "latency_p99_ms": percentile_ms(hist, 0.99) if hist else None,
        }
    out["last_sample"] = max((start for start, _ in sampled), default=None)
    return out


def load(path: Path) -> tuple[TimeSeries, dict]:
    """The stored series and the sampler's bookkeeping; empty if missing or unreadable."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return TimeSeries(), {}
    return TimeSeries.from_json(data), data.get("sampler", {})


class Sampler:
    """Turns node-wide cumulative totals into per-slot differences (run by the ops leader)."""

    def __init__(
        self, path: Path, boot_id: str, series: TimeSeries | None = None, book: dict | None = None
    ) -> None:
        self.path = path
        self.series = series or TimeSeries()
        book = book or {}
        self.boot_id = boot_id
        # Within one boot the counters only grow (dead workers' files are kept), so the last
        # totals saved stay a valid baseline when leadership moves to another worker; a new
        # boot starts its counters at zero.
        same_boot = book.get("boot_id") == boot_id and isinstance(book.get("totals"), dict)
        self.baseline = Totals(**book["totals"]) if same_boot else Totals()

    @classmethod
    def open(cls, path: Path, boot_id: str) -> Sampler:
        """Blocking: continues the series stored at ``path``."""
        series, book = load(path)
        return cls(path, boot_id, series, book)

    def sample(self, totals: Totals, gauges: dict, now: float | None = None) -> None:
        now = time.time() if now is None else now
        base = self.baseline
        if totals.requests < base.requests:  # counters were reset under us
            base = Totals()
        deltas = {name: max(0.0, getattr(totals, name) - getattr(base, name)) for name in COUNTERS}
        hist = [
            max(0.0, a - b) for a, b in zip(totals.latency_counts, base.latency_counts, strict=True)
        ]
        self.series.add(now, deltas, hist, gauges)
        self.baseline = totals

    def save(self) -> None:
        data = {
            **self.series.to_json(),
            "sampler": {"boot_id": self.boot_id, "totals": asdict(self.baseline)},
        }
        write_atomic(self.path, json.dumps(data, separators=(",", ":")).encode())


def read_summary(path: Path) -> dict:
    series, _ = load(path)
    return summary(series)
