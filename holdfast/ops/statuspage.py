"""The status page as HTML: the same snapshot as the JSON, for a person in an incident.

Self-contained (inline CSS, no scripts, nothing fetched from anywhere), refreshes itself
every 10 seconds, and every value is escaped.
"""

from __future__ import annotations

import time
from html import escape
from typing import Any

from holdfast.sizes import format_size

COLORS = {"ok": "#1a7f37", "starting": "#0969da", "degraded": "#9a6700", "critical": "#cf222e"}


def _when(epoch: float | None) -> str:
    if not epoch:
        return "–"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{days}d " if days else "") + f"{hours:02d}:{minutes:02d}:{secs:02d}"


def _snapshot_age(age: float | None) -> str:
    return "first check still running" if age is None else f"snapshot {age:.1f}s old"


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    if not rows:
        return f"<table><tr>{head}</tr><tr><td colspan={len(headers)}>none</td></tr></table>"
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _pairs(items: dict[str, Any]) -> str:
    return _table(["", ""], [[k, "–" if v is None else v] for k, v in items.items()])


def render(status: dict) -> bytes:
    state = status.get("state", "unknown")
    node = status.get("node", {})
    index = status.get("index", {})
    parts = [
        f"<h1>Holdfast {escape(node.get('hostname', ''))} "
        f"<span class=badge style='background:{COLORS.get(state, '#57606a')}'>{escape(state)}</span></h1>",
        f"<p>version {escape(str(node.get('version')))} · up {_duration(status.get('uptime_seconds', 0))}"
        f" · started {_when(node.get('started'))} (previous shutdown: {escape(str(node.get('previous_shutdown')))})"
        f" · worker {node.get('worker_pid')} · {_snapshot_age(status.get('snapshot_age_seconds'))}</p>",
    ]
    problems = status.get("problems", [])
    if problems:
        items = "".join(
            f"<li class={escape(p['severity'])}>{escape(p['what'])}</li>" for p in problems
        )
        parts.append(f"<h2>Problems</h2><ul>{items}</ul>")
    parts.append("<h2>Drives</h2>")
    parts.append(
        _table(
            ["drive", "path", "state", "reason", "size", "free", "free %"],
            [
                [
                    d["id"],
                    d["path"],
                    d["state"],
                    d.get("reason") or "",
                    format_size(d.get("total_bytes"), missing="–"),
                    format_size(d.get("free_bytes"), missing="–"),
                    "–" if d.get("free_percent") is None else f"{d['free_percent']:.1f}",
                ]
                for d in status.get("drives", [])
            ],
        )  # fmt: skip
    )
    parts.append("<h2>Index</h2>")
    parts.append(
        _pairs(
            {
                "state": index.get("state"),
                "error": index.get("error"),
                "objects": index.get("objects"),
                "buckets": index.get("buckets"),
                "stored": format_size(index.get("stored_bytes"), missing="–"),
                "garbage queue": index.get("gc_queue"),
                "checked": _when(index.get("checked_at")),
                "counted": _when(index.get("counted_at")),
            }
        )
    )
    traffic = status.get("traffic", {})
    rows = []
    for window in ("1m", "5m"):
        t = traffic.get(window) or {}
        rows.append(
            [window, t.get("requests_per_second", "–"), t.get("error_rate", "–"), t.get("errors_4xx", "–"),
             format_size(t.get("bytes_in_per_second"), missing="–") + "/s", format_size(t.get("bytes_out_per_second"), missing="–") + "/s",
             t.get("latency_p50_ms") or "–", t.get("latency_p99_ms") or "–"]
        )  # fmt: skip
    parts.append("<h2>Requests</h2>")
    parts.append(
        _table(["window", "req/s", "5xx share", "4xx", "in", "out", "p50 ms", "p99 ms"], rows)
    )
    for name in ("repair", "scrub", "gc", "lifecycle"):
        section = status.get(name) or {}
        parts.append(f"<h2>{name.capitalize()}</h2>")
        parts.append(_pairs({k: v for k, v in section.items() if not isinstance(v, (dict, list))}))
    corruption = status.get("corruption", {})
    parts.append(
        f"<h2>Corruption</h2><p>objects marked corrupt: {escape(str(corruption.get('objects', '–')))}</p>"
    )
    parts.append(
        _table(
            ["bucket", "key", "state"],
            [[e["bucket"], e["key"], e["state"]] for e in corruption.get("examples", [])],
        )
    )
    alerts = status.get("alerts", {})
    parts.append("<h2>Alerts</h2>")
    parts.append(
        _pairs(
            {
                "channels": ", ".join(alerts.get("channels", [])) or "none configured",
                "pending": alerts.get("pending"),
                "last error": alerts.get("last_error"),
                "active conditions": alerts.get("active_count"),
            }
        )
    )
    parts.append(
        _table(
            ["raised", "severity", "kind", "summary", "state", "attempts", "via / last error"],
            [
                [
                    _when(a["created"]),
                    a["severity"],
                    a["kind"],
                    a["summary"],
                    a["state"],
                    a["attempts"],
                    a.get("delivered_via") or a.get("last_error") or "",
                ]
                for a in alerts.get("recent", [])
            ],
        )  # fmt: skip
    )
    parts.append("<h2>Configuration</h2>")
    config = status.get("config", {})
    parts.append(_pairs({k: v for k, v in config.items()}))
    body = "\n".join(parts)
    html = (
        "<!doctype html><html><head><meta charset=utf-8>"
        "<meta http-equiv=refresh content=10><title>Holdfast status</title><style>"
        "body{font:14px system-ui,sans-serif;margin:2em;color:#1f2328}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #d0d7de;"
        "padding:3px 8px;text-align:left}.badge{color:#fff;border-radius:6px;padding:2px 10px;"
        "font-size:70%}li.critical{color:#cf222e;font-weight:bold}li.warning{color:#9a6700}"
        f"</style></head><body>{body}</body></html>"
    )
    return html.encode()
