"""Increment the node-wide counters of holdfast/ops/metrics.py from integrity code.

Those counters live in the ops layer (prometheus-client in multiprocess mode, summed across
worker processes at scrape time). Integrity code must keep working without them (in
``holdfast fsck``, or if the ops layer fails to import), so every call goes through here
and quietly does nothing when the metric is unavailable.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

log = logging.getLogger("holdfast.workers")


@cache
def _metrics() -> Any:
    try:
        from holdfast.ops import metrics
    except Exception as e:  # no ops layer: counting is optional, the work is not
        log.debug("ops metrics unavailable: %s", e)
        return None
    return metrics


def count(name: str, amount: float = 1.0, *labels: str) -> None:
    """``metrics.<name>[.labels(*labels)].inc(amount)``, if that metric exists."""
    metric = getattr(_metrics(), name, None)
    if metric is None:
        return
    try:
        (metric.labels(*labels) if labels else metric).inc(amount)
    except Exception as e:
        log.debug("metric %s not counted: %s", name, e)


def gauge(name: str, value: float, *labels: str) -> None:
    metric = getattr(_metrics(), name, None)
    if metric is None:
        return
    try:
        (metric.labels(*labels) if labels else metric).set(value)
    except Exception as e:
        log.debug("metric %s not set: %s", name, e)


_GAUGES: dict[str, Any] = {}


def set_gauge(name: str, text: str, value: float | None, **labels: str) -> None:
    """A node-level gauge of the integrity machinery (limits, owed bytes, retry rate),
    set by the process running the background workers. prometheus-client's multiprocess
    mode ("livemax") makes it appear in every worker's scrape."""
    if value is None or _metrics() is None:
        return
    try:
        gauge = _GAUGES.get(name)
        if gauge is None:
            from prometheus_client import Gauge

            gauge = _GAUGES[name] = Gauge(
                name, text, labelnames=sorted(labels), multiprocess_mode="livemax"
            )
        (gauge.labels(**labels) if labels else gauge).set(value)
    except Exception as e:
        log.debug("gauge %s not set: %s", name, e)
