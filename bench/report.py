"""Figures, the JSON-lines results file, the targets from issue 3, and the table.

Absolute numbers on the shared 2-core machines swing by up to 2x between
runs, so every target is a ratio against a peer measured in the same run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

SERVER_ORDER = ("holdfast", "holdfast-pg", "seaweedfs", "rclone")
PEERS = ("seaweedfs", "rclone")
NO_RATIO = {"rss"}  # growth near zero makes a ratio meaningless; the target is absolute
WORKLOAD_ORDER = (
    "put4k",
    "get4k",
    "head4k",
    "get4k-presigned",
    "list",
    "put64m",
    "get64m",
    "restart",
    "rss",
    "scale",
)


@dataclass
class Figure:
    """One measured (or skipped) number; one JSON line in the results file."""

    server: str
    workload: str
    metric: str
    value: float | None
    unit: str
    client_cpu: float | None = None  # cores used by the load generator (1.0 = one core)
    server_cpu: float | None = None  # cores used by the server process tree
    note: str = ""
    valid: bool = True  # False when errors or bad content make the number meaningless
    extra: dict = field(default_factory=dict)

    def cell(self) -> str:
        """The figure as shown in the table, with the client's CPU share next to it."""
        if self.value is None:
            return "skipped"
        text = f"{self.value:.3g}" if abs(self.value) < 100 else f"{self.value:,.0f}"
        if self.client_cpu is not None:
            text += f" (cli {self.client_cpu * 100:.0f}%)"
        if not self.valid:
            text += " INVALID"
        elif self.note:
            text += " !"
        return text


class Results:
    """Collects figures, appending each to the JSONL file as soon as it exists."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self.run_id = run_id
        self.figures: list[Figure] = []
        self.busy_before: dict[str, float] = {}  # machine CPU busy share before each server
        path.parent.mkdir(parents=True, exist_ok=True)

    def add(self, fig: Figure) -> None:
        self.figures.append(fig)
        line = {"run": self.run_id, "ts": round(time.time(), 3), **asdict(fig)}
        with self.path.open("a") as f:
            f.write(json.dumps(line) + "\n")
        print(
            f"  {fig.server:10} {fig.workload:8} {fig.metric:16} {fig.cell()}"
            + (f"  [{fig.note}]" if fig.note else ""),
            flush=True,
        )

    def value(self, server: str, workload: str, metric: str) -> float | None:
        for fig in self.figures:
            if (fig.server, fig.workload, fig.metric) == (server, workload, metric):
                return fig.value if fig.valid else None
        return None


Lookup = Callable[[str, str, str], float | None]


@dataclass
class Target:
    """A target from issue 3 and how to decide it from the run's figures."""

    text: str
    check: Callable[[Lookup], bool | None]


def _ratio_at_least(workload: str, metric: str, peers: dict[str, float]) -> Callable:
    def check(get: Lookup) -> bool | None:
        hf = get("holdfast", workload, metric)
        outcomes = []
        for peer, factor in peers.items():
            other = get(peer, workload, metric)
            outcomes.append(None if hf is None or not other else hf >= factor * other)
        return None if None in outcomes else all(outcomes)

    return check


def _best_peer(workload: str, metric: str, factor: float) -> Callable:
    def check(get: Lookup) -> bool | None:
        hf = get("holdfast", workload, metric)
        peers = [v for p in PEERS if (v := get(p, workload, metric))]
        return None if hf is None or not peers else hf >= factor * max(peers)

    return check


def _time_at_most(workload: str, metric: str, peer: str, factor: float) -> Callable:
    def check(get: Lookup) -> bool | None:
        hf, other = get("holdfast", workload, metric), get(peer, workload, metric)
        return None if hf is None or not other else hf <= factor * other

    return check


def _restart(get: Lookup) -> bool | None:
    big, small = get("holdfast", "restart", "seconds_1m"), get("holdfast", "restart", "seconds_10k")
    return None if big is None or not small else big < 1.0 and big <= 1.5 * small


def _below(workload: str, metric: str, limit: float) -> Callable:
    def check(get: Lookup) -> bool | None:
        v = get("holdfast", workload, metric)
        return None if v is None else v < limit

    return check


def _at_least(workload: str, metric: str, limit: float) -> Callable:
    def check(get: Lookup) -> bool | None:
        v = get("holdfast", workload, metric)
        return None if v is None else v >= limit

    return check


TARGETS: dict[tuple[str, str], Target] = {
    ("put4k", "ops_per_s"): Target(
        ">= 1.5x seaweedfs", _ratio_at_least("put4k", "ops_per_s", {"seaweedfs": 1.5})
    ),
    ("get4k", "ops_per_s"): Target(
        ">= 2x seaweedfs, >= 1x rclone",
        _ratio_at_least("get4k", "ops_per_s", {"seaweedfs": 2.0, "rclone": 1.0}),
    ),
    ("list", "seconds"): Target(
        "<= 0.5x seaweedfs time", _time_at_most("list", "seconds", "seaweedfs", 0.5)
    ),
    ("put64m", "mb_per_s"): Target(
        ">= 2x seaweedfs, >= 1x rclone",
        _ratio_at_least("put64m", "mb_per_s", {"seaweedfs": 2.0, "rclone": 1.0}),
    ),
    ("get64m", "mb_per_s"): Target(">= 1.5x best peer", _best_peer("get64m", "mb_per_s", 1.5)),
    ("restart", "seconds_1m"): Target("< 1 s and <= 1.5x the 10k time", _restart),
    ("rss", "put_growth_mib"): Target("< 64 MiB growth", _below("rss", "put_growth_mib", 64)),
    ("rss", "get_growth_mib"): Target("< 64 MiB growth", _below("rss", "get_growth_mib", 64)),
    ("scale", "put_ratio"): Target(">= 0.8 (1M vs 10k)", _at_least("scale", "put_ratio", 0.8)),
    ("scale", "get_ratio"): Target(">= 0.8 (1M vs 10k)", _at_least("scale", "get_ratio", 0.8)),
}


# Issue 16: the same node with its index on PostgreSQL against SQLite (holdfast-pg/holdfast).
PG_TARGETS = [
    ("PUT 4 KiB ops/s on PostgreSQL >= 0.7x SQLite", "put4k", "ops_per_s", 0.7, True),
    ("GET 4 KiB ops/s on PostgreSQL >= 0.9x SQLite", "get4k", "ops_per_s", 0.9, True),
    ("LIST 10k on PostgreSQL <= 1.5x SQLite's time", "list", "seconds", 1.5, False),
]


def pg_verdicts(get: Lookup) -> list[tuple[str, float | None, bool | None]]:
    out = []
    for text, workload, metric, factor, higher in PG_TARGETS:
        pg, lite = get("holdfast-pg", workload, metric), get("holdfast", workload, metric)
        ratio = pg / lite if pg is not None and lite else None
        met = None if ratio is None else (ratio >= factor if higher else ratio <= factor)
        out.append((text, ratio, met))
    return out


def _ratio_cell(results: Results, workload: str, metric: str, peer: str) -> str:
    if workload in NO_RATIO:
        return ""
    hf, other = results.value("holdfast", workload, metric), results.value(peer, workload, metric)
    return f"{hf / other:.2f}x" if hf is not None and other else "-"


def _verdict(ok: bool | None) -> str:
    return {True: "MET", False: "NOT MET", None: "n/a"}[ok]


def table(results: Results) -> str:
    """Plain-text table: one row per (workload, metric), servers as columns."""
    servers = [s for s in SERVER_ORDER if any(f.server == s for f in results.figures)]
    # Ratio columns: the peers, and Holdfast on PostgreSQL (SQLite's figure over its own).
    peers = [p for p in (*PEERS, "holdfast-pg") if p in servers]
    rows: dict[tuple[str, str], dict[str, Figure]] = {}
    order = {w: i for i, w in enumerate(WORKLOAD_ORDER)}
    shown = (f for f in results.figures if f.workload != "machine")  # it goes in the footer
    for fig in sorted(shown, key=lambda f: order.get(f.workload, len(order))):
        rows.setdefault((fig.workload, fig.metric), {})[fig.server] = fig
    header = ["workload", "metric", "unit", *servers, *(f"hf/{p}" for p in peers), "target", "met"]
    lines = [header]
    for (workload, metric), by_server in rows.items():
        unit = next(iter(by_server.values())).unit
        target = TARGETS.get((workload, metric))
        lines.append(
            [
                workload,
                metric,
                unit,
                *(by_server[s].cell() if s in by_server else "-" for s in servers),
                *(_ratio_cell(results, workload, metric, p) for p in peers),
                target.text if target else "",
                _verdict(target.check(results.value)) if target else "",
            ]
        )
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(header))]
    out = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    notes = list(
        dict.fromkeys(f"- {f.server} {f.workload}: {f.note}" for f in results.figures if f.note)
    )
    if "holdfast-pg" in servers and "holdfast" in servers:
        out += ["", "holdfast-pg against holdfast (the same node, index on PostgreSQL vs SQLite):"]
        for text, ratio, met in pg_verdicts(results.value):
            shown = "-" if ratio is None else f"{ratio:.2f}x"
            out.append(f"  {text}: {shown} {_verdict(met)}")
    legend = "(cli N%) = load generator CPU, % of one core; '!' = see notes; ratios hf/peer."
    return "\n".join(
        out + ["", legend, _load_line(results)] + (["", "notes:", *notes] if notes else [])
    )


def _load_line(results: Results) -> str:
    """Other work on the machine skews every figure; say how busy it was."""
    shares = ", ".join(f"{s} {v:.0%}" for s, v in results.busy_before.items())
    busy = any(v > 0.10 for v in results.busy_before.values())
    warning = "  <- other work was using the CPU: figures are noisy" if busy else ""
    return f"machine CPU busy just before each server started: {shares}{warning}"
