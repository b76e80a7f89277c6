"""Integrity status: drives, placement, repair queue, scrubber, damaged objects.

Plain functions over plain data, for the status page, metrics and tests:

* :func:`process_view` — this process's drives (circuit breakers), placement policies and
  read/write integrity counters. Memory and ``statvfs`` only: it works while the index is
  down.
* :func:`publish` — run every second by the process that runs the background workers; adds
  what needs the index (repair queue depth per drive, damaged objects), and writes it all to
  ``<state dir>/integrity-status.json`` atomically. A failing index only makes the index
  part stale (``index_error``), never the rest.
* :func:`ops_provider` — the hook holdfast/ops/providers.py loads: maps the above onto the
  keys the ops status and metrics understand.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from holdfast.index.errors import IndexError_
from holdfast.ops.node import write_atomic
from holdfast.workers.counters import set_gauge

STATUS_FILE = "integrity-status.json"


def status_path(state_dir: Path | str) -> Path:
    return Path(state_dir) / STATUS_FILE


def process_view(service: Any) -> dict:
    node = service.node
    return {
        "pid": os.getpid(),
        "drives": node.drives.snapshot(),
        "placement": node.policies.as_dict(),
        "integrity": node.integrity.snapshot(),
    }


def background_view(workers: Any) -> dict:
    """The leader's in-memory state of repair, scrub, GC and lifecycle."""
    return {
        "repair": workers.repair.snapshot(),
        "scrub": workers.scrubber.snapshot(),
        "anti_entropy": workers.anti_entropy.snapshot(),
        "drain": workers.drainer.snapshot(),
        "rebalance": workers.rebalancer.snapshot(),
        "transfers": workers.transfers.snapshot(),
        "gc": asdict(workers.gc.stats),
        "lifecycle": workers.lifecycle.snapshot(),
    }


def quarantined_copies(service: Any) -> dict[str, int]:
    out = {}
    for sid, store in service.node.stores.items():
        if service.node.drives.readable(sid):
            out[sid] = len(store.quarantined())
    return out


def durable_view(index: Any, limit: int = 20) -> dict:
    """What needs the index: the repair queue per drive and the damaged objects (``index``
    is the node's BlockingIndex: this runs in a pool thread)."""
    count, examples = index.damaged_objects(limit)
    return {
        "repair_queue": index.repair_summary(),
        "damaged": {"count": count, "examples": [f"{b}/{k}" for b, k in examples]},
    }


def publish(service: Any, workers: Any) -> dict:
    """Write the whole integrity state for every other process (blocking)."""
    state: dict[str, Any] = {
        "written_at": time.time(),
        **process_view(service),
        **background_view(workers),
        "quarantined": quarantined_copies(service),
    }
    try:
        state.update(durable_view(service.node.blocking))
    except IndexError_ as e:
        previous = read_published(status_path(service.config.state_dir)) or {}
        state["repair_queue"] = previous.get("repair_queue")
        state["damaged"] = previous.get("damaged")
        state["index_error"] = str(e)
    workers.integrity_status = state
    export_gauges(state)
    write_atomic(status_path(service.config.state_dir), json.dumps(state, default=str).encode())
    return state


LIMIT_GAUGES = {
    # name: (help, where in the published state)
    "holdfast_repair_limit_bytes_per_second": (
        "Repair bandwidth limit",
        ("repair", "limits", "bytes_per_second"),
    ),
    "holdfast_repair_limit_ops_per_second": (
        "Repairs started per second, at most",
        ("repair", "limits", "ops_per_second"),
    ),
    "holdfast_repair_limit_concurrency": (
        "Repairs running at once, at most",
        ("repair", "limits", "concurrency"),
    ),
    "holdfast_repair_limit_backoff_base_seconds": (
        "First retry delay of a failing repair",
        ("repair", "limits", "backoff_base_seconds"),
    ),
    "holdfast_repair_limit_backoff_cap_seconds": (
        "Longest retry delay of a failing repair",
        ("repair", "limits", "backoff_cap_seconds"),
    ),
    "holdfast_repair_limit_reserve_percent": (
        "Share of each drive repair never fills",
        ("repair", "limits", "repair_reserve_percent"),
    ),
    "holdfast_repair_retry_rate_bound_per_drive": (
        "Retries per second per failing drive, at most, at the cap",
        ("repair", "limits", "retry_rate_bound_per_drive"),
    ),
    "holdfast_repair_retry_rate": (
        "Repair retries per second over the last minute",
        ("repair", "retry_rate_per_second"),
    ),
    "holdfast_repair_busiest_second_bytes": (
        "Most bytes background transfers (repair, drain, rebalance together) moved within any "
        "one second (sliding) since this process led",
        ("repair", "rate", "busiest_window_bytes"),
    ),
    "holdfast_transfer_cap": (
        "The cluster's cap on background transfers under way at once (layout rules --transfer-cap)",
        ("transfers", "cap"),
    ),
    "holdfast_transfer_limit_node_bytes_per_second": (
        "Background transfer bytes per second into any one node, at most",
        ("transfers", "node_bytes_per_second"),
    ),
    "holdfast_transfer_limit_node_ops_per_second": (
        "Background transfers started per second toward any one node, at most",
        ("transfers", "node_ops_per_second"),
    ),
    "holdfast_scrub_limit_bytes_per_second": (
        "Scrubber bandwidth limit (0: off)",
        ("scrub", "bytes_per_second"),
    ),
    "holdfast_scrub_pass": ("Number of the scrub pass under way", ("scrub", "pass")),
    "holdfast_lifecycle_pass": ("Number of the lifecycle pass", ("lifecycle", "pass")),
    "holdfast_lifecycle_limit_ops_per_second": (
        "Versions and uploads the lifecycle job examines or removes per second, at most",
        ("lifecycle", "ops_per_second"),
    ),
    "holdfast_rebalance_bytes_planned": (
        "Bytes the rebalance under way (or the last one) must move: each node's excess over "
        "its share",
        ("rebalance", "bytes_planned"),
    ),
    "holdfast_rebalance_bytes_left": (
        "Bytes the rebalance under way has still to move",
        ("rebalance", "bytes_left"),
    ),
    "holdfast_rebalance_eta_seconds": (
        "Seconds the rebalance under way should still take",
        ("rebalance", "eta_seconds"),
    ),
    "holdfast_damaged_objects": ("Objects with no good copy of some byte", ("damaged", "count")),
}


def _dig(state: dict, path: tuple[str, ...]) -> float | None:
    value: Any = state
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, int | float) else None


def export_gauges(state: dict) -> None:
    """Every limit, and what the repair queue owes each drive, as metrics."""
    for name, (text, path) in LIMIT_GAUGES.items():
        set_gauge(name, text, _dig(state, path))
    placement = state.get("placement", {}).get("default", {})
    set_gauge(
        "holdfast_placement_copies", "Copies per object (server policy)", placement.get("copies")
    )
    set_gauge(
        "holdfast_placement_min_copies", "Write quorum (server policy)", placement.get("min_copies")
    )
    for d in state.get("drives", []):
        set_gauge(
            "holdfast_drive_reserve_percent",
            "Share of the drive writes keep free",
            d.get("reserve_percent"),
            drive=d["id"],
        )
        owed = (state.get("repair_queue") or {}).get(d["id"], {})
        for op in ("copy", "delete"):
            rows = owed.get(op, {})
            set_gauge(
                "holdfast_repair_owed_rows",
                "Repairs (copies, deletes) owed to each drive: its hinted-handoff log while down",
                rows.get("rows", 0),
                drive=d["id"],
                op=op,
            )
        set_gauge(
            "holdfast_repair_owed_bytes",
            "Bytes of copies owed to each drive",
            owed.get("copy", {}).get("bytes") or 0,
            drive=d["id"],
        )


def read_published(path: Path) -> dict | None:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    state["age_seconds"] = round(time.time() - state.get("written_at", 0), 2)
    return state


# -- the ops provider (holdfast/ops/providers.py) ---------------------------------------------


class IntegrityProvider:
    name = "integrity"

    def __init__(self, app: Any) -> None:
        self.app = app

    def live(self) -> dict:
        service = self.app.service
        return {
            # Keyed by the drive's name on this node (d0, d1, ...), as the ops page names
            # the drives it checks; the store id (node/drive) is in the integrity status.
            "drives": {
                d["drive"]: {"state": d["state"], "reason": d["reason"]}
                | (
                    {}  # a local drive: the ops page checks its filesystem itself
                    if d["kind"] == "local"
                    else {
                        "kind": d["kind"],
                        "path": d["path"],
                        "total_bytes": d.get("total_bytes"),
                        "free_bytes": d.get("free_bytes"),
                    }
                )
                for d in service.node.drives.snapshot()
            },
            "write_quorum": service.node.policies.default.min_copies,
            "placement": service.node.policies.as_dict(),
            "integrity": service.node.integrity.snapshot(),
        }

    def from_index(self, durable: dict) -> dict:
        queue = durable["repair_queue"]
        rows = sum(v["rows"] for ops in queue.values() for v in ops.values())
        oldest = [v["oldest"] for ops in queue.values() for v in ops.values() if v["oldest"]]
        return {
            "repair": {
                "queued": rows,
                "oldest_queued": min(oldest) if oldest else None,
                "by_drive": queue,
            },
            "damaged": durable["damaged"],
        }

    def background(self, workers: Any) -> dict:
        if workers is None or not hasattr(workers, "repair"):
            return {}
        repair = workers.repair.snapshot()
        scrub = workers.scrubber.snapshot()
        lifecycle = workers.lifecycle.snapshot()
        published = getattr(workers, "integrity_status", None) or {}
        backing_off = repair["drives_backing_off"]
        last = scrub.get("last_pass") or {}
        return {
            "repair": {
                "in_flight": repair["in_flight"],
                "failed": sum(repair["failures"].values()),
                "done_total": repair["repaired"] + repair["deletes_replayed"],
                "bytes_copied": repair["bytes_copied"],
                "bytes_per_second": repair["limits"]["bytes_per_second"],
                "backoff_seconds": max(backing_off.values(), default=0.0),
                "retry_rate_per_second": repair["retry_rate_per_second"],
                "busiest_second_bytes": repair["rate"]["busiest_window_bytes"],
                "limits": repair["limits"],
                "failures": repair["failures"],
            },
            "scrub": {
                "progress": scrub["progress"],
                "pass": scrub["pass"],
                "phase": scrub["phase"],
                "pass_started": scrub["pass_started"],
                "last_pass_completed": (last.get("started", 0) + last.get("seconds", 0))
                if last
                else None,
                "blobs_verified": scrub["objects_verified"] + scrub["parts_verified"],
                "bytes_verified": scrub["bytes_verified"],
                "rate_bytes_per_second": scrub["bytes_per_second"],
                "corruptions_found": scrub["faults_total"],
                "corruptions_fixed": repair["repaired"],
                "last_pass": last or None,
            },
            "lifecycle": {
                key: lifecycle[key]
                for key in (
                    "pass",
                    "phase",
                    "bucket",
                    "pass_started",
                    "next_pass_at",
                    "examined_this_pass",
                    "actions_this_pass",
                    "last_pass",
                    "ops_per_second",
                )
            },
            "corruption": {
                "quarantined_copies": sum((published.get("quarantined") or {}).values())
            },
            # The node's one queue of background transfers (holdfast/workers/transfers.py).
            "transfers": workers.transfers.snapshot() if hasattr(workers, "transfers") else None,
        }


def ops_provider(app: Any) -> IntegrityProvider:
    return IntegrityProvider(app)
