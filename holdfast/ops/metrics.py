"""Prometheus metrics, correct across the worker processes of one node.

A node runs several worker processes behind one socket, and a scrape reaches only one of
them. Three kinds of numbers are therefore kept three ways:

* **Counters and histograms** that every worker adds to (requests, latency, bytes, checksum
  failures, repair and scrub work, alert deliveries) use prometheus-client's multiprocess
  mode: each process writes its values to its own memory-mapped file in
  ``PROMETHEUS_MULTIPROC_DIR`` (``<ops>/metrics``, emptied by the supervisor at start, see
  ``holdfast/ops/node.py``) and a scrape sums the files of all processes, dead ones included,
  so counters never go backwards when a worker is replaced.
* **Node-level gauges** (drives, capacity, object counts, queue depths, alert outbox) are the
  same for every worker; each worker's status snapshot already holds them, so they are
  rendered at scrape time from that snapshot (:class:`SnapshotCollector`), never from files.
* **Process gauges** (CPU, memory, file descriptors) are read at scrape time from
  ``/proc/<pid>`` for every live worker and the supervisor (:class:`ProcessCollector`);
  prometheus-client's own process collector would only see the process that was scraped.

Other layers record into the counters here (for example the read path's block checksum
failures); this module imports nothing from Holdfast but the standard-library-only request
log, so any layer may import it.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from holdfast.index.committer import COMMITTER_PROCESS_NAME
from holdfast.ops.requestlog import pid_alive

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, float("inf"),
)  # fmt: skip

# -- recorded by the request hook (holdfast/ops/runtime.py) ------------------------------------

REQUESTS = Counter(
    "holdfast_s3_requests",
    "S3 requests answered, by operation and HTTP status",
    ["operation", "status"],
)
DURATION = Histogram(
    "holdfast_s3_request_duration_seconds",
    "Time from request head to the last response byte, by operation",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)
RECEIVED_BYTES = Counter(
    "holdfast_s3_received_bytes", "Request body bytes read, by operation", ["operation"]
)
SENT_BYTES = Counter(
    "holdfast_s3_sent_bytes", "Response body bytes sent, by operation", ["operation"]
)
ERRORS = Counter(
    "holdfast_s3_errors", "S3 error responses, by operation and error code", ["operation", "code"]
)
ABORTED = Counter(
    "holdfast_s3_aborted_responses",
    "Responses cut short after their headers were sent (no good copy of a block), by operation;"
    " each is also counted as status 500 in holdfast_s3_requests",
    ["operation"],
)
ADMIN_REQUESTS = Counter(
    "holdfast_admin_requests",
    "Requests to the node's own /_holdfast/ paths, by endpoint and status",
    ["endpoint", "status"],
)
CHECKSUM_FAILURES = Counter(
    "holdfast_checksum_failures",
    "Checksum mismatches: edge (client body vs its digest), block (stored block on read or "
    "scrub), internal (inter-node message)",
    ["kind"],
)
REQUEST_LOG_RECORDS = Counter("holdfast_request_log_records", "Request log records written")
REQUEST_LOG_DROPPED = Counter(
    "holdfast_request_log_dropped",
    "Request log records dropped because the writer fell behind or could not write",
)
PRESIGNED_CACHE = Counter(
    "holdfast_presigned_cache_lookups",
    "Presigned GET/HEAD requests looked up in the cache of verified presigned URLs "
    "(holdfast/s3/presign_cache.py), by result: hit (SigV4 check skipped) or miss; requests "
    "signed in the Authorization header never reach it",
    ["result"],
)

# -- recorded by background work (issue 4: repair, scrub; holdfast/workers) --------------------

REPAIRS = Counter("holdfast_repairs", "Repairs finished, by result", ["result"])
REPAIR_BYTES = Counter("holdfast_repair_bytes", "Bytes copied by repair")
ANTI_ENTROPY_RANGES = Counter(
    "holdfast_anti_entropy_ranges_compared", "Hash-tree ranges compared by anti-entropy"
)
ANTI_ENTROPY_BLOBS = Counter(
    "holdfast_anti_entropy_blobs_resynced", "Blobs anti-entropy found missing and queued"
)
ANTI_ENTROPY_BYTES = Counter(
    "holdfast_anti_entropy_bytes_resynced", "Bytes of the blobs anti-entropy queued"
)
DRAIN_BYTES = Counter("holdfast_drain_bytes", "Bytes moved off draining nodes")
DRAIN_COPIES = Counter("holdfast_drain_copies", "Copies moved off draining nodes")
REBALANCE_BYTES = Counter(
    "holdfast_rebalance_bytes",
    "Bytes moved by rebalancing (after a node added, a capacity changed)",
)
REBALANCE_COPIES = Counter("holdfast_rebalance_copies", "Copies moved by rebalancing")
# The one queue every background transfer goes through (holdfast/workers/transfers.py).
TRANSFER_BYTES = Counter(
    "holdfast_transfer_bytes",
    "Bytes admitted by the background transfer queue (all kinds share one rate), by kind: "
    "repair (with hint replay and anti-entropy re-sync), drain, rebalance",
    ["kind"],
)
TRANSFER_OPS = Counter(
    "holdfast_transfer_ops",
    "Operations (blob copies, replayed deletes) admitted by the background transfer queue, by kind",
    ["kind"],
)
TRANSFER_SLOT_WAITS = Counter(
    "holdfast_transfer_slot_waits",
    "Times a transfer waited for one of the cluster's transfer slots, by reason: full (the "
    "cap reached), unavailable (the index did not answer)",
    ["reason"],
)
TRANSFER_SLOTS_HELD = Gauge(
    "holdfast_transfer_slots_held",
    "The cluster's transfer slots this node holds now",
    multiprocess_mode="livesum",
)
SCRUB_BYTES = Counter("holdfast_scrub_bytes", "Bytes verified by the scrubber")
SCRUB_BLOBS = Counter("holdfast_scrub_blobs", "Blobs verified by the scrubber")
CORRUPTIONS_FOUND = Counter(
    "holdfast_corruptions_found", "Bad copies found, by where they were found", ["source"]
)
CORRUPTIONS_FIXED = Counter("holdfast_corruptions_fixed", "Bad copies replaced by repair")
RETRIES = Counter(
    "holdfast_background_retries", "Failed attempts of background loops, by loop", ["loop"]
)
BACKOFF_SECONDS = Gauge(
    "holdfast_background_backoff_seconds",
    "Current back-off delay of each background loop (0 when healthy)",
    ["loop"],
    multiprocess_mode="livemax",
)
GC_DELETED = Counter("holdfast_gc_deleted_blobs", "Blobs deleted by garbage collection")
GC_ORPHANS = Counter("holdfast_gc_orphans_removed", "Crash orphans removed by the sweeper")
LIFECYCLE_EXAMINED = Counter(
    "holdfast_lifecycle_examined", "Versions and unfinished uploads the lifecycle job looked at"
)
LIFECYCLE_ACTIONS = Counter(
    "holdfast_lifecycle_actions",
    "What the lifecycle job did, by action: expired (a current version; a delete marker "
    "written in a versioned bucket), noncurrent_deleted, delete_marker_removed, "
    "upload_aborted, locked (a removal object lock refused)",
    ["action"],
)

# -- the index committer (holdfast/index/committer.py) ----------------------------------------

INDEX_WRITES = Counter(
    "holdfast_index_writes",
    "Object writes and deletes committed, by path: 'committer' (the node's shared committer) "
    "or 'local' (a worker's own, while the committer was unreachable)",
    ["path"],
)
INTERNAL_MESSAGES_REJECTED = Counter(
    # Worker <-> committer messages; node-to-node ones are holdfast/net/frames.py's
    # holdfast_internal_messages_rejected_total{peer,kind}.
    "holdfast_committer_messages_rejected",
    "Worker <-> committer messages refused for a bad checksum or contents, by the side that "
    "refused them",
    ["side"],
)

# -- alerts ----------------------------------------------------------------------------------

ALERT_DELIVERIES = Counter(
    "holdfast_alert_delivery_attempts",
    "Alert delivery attempts, by channel and result",
    ["channel", "result"],
)
ALERTS_RAISED = Counter("holdfast_alerts_raised", "Alerts written to the outbox, by rule", ["rule"])

# -- event notifications (holdfast/workers/notify.py) ------------------------------------------

NOTIFY_DELIVERIES = Counter(
    "holdfast_notify_delivery_attempts",
    "Event notification delivery attempts, by result (delivered, failed, dead)",
    ["result"],
)
SSE_RESEALED = Counter(
    "holdfast_sse_keys_resealed", "SSE-S3 data keys re-sealed under the current master key"
)

for _kind in ("edge", "block", "internal"):
    CHECKSUM_FAILURES.labels(_kind)  # exported as 0 from the start, so rate() works at once
for _result in ("hit", "miss"):
    PRESIGNED_CACHE.labels(_result)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def registry_for_scrape(extra: Iterable[Collector]) -> CollectorRegistry:
    """A registry summing every worker's files (or this process's own metrics when the node
    runs without a multiprocess directory), plus the collectors given."""
    mdir = multiprocess_dir()
    registry = CollectorRegistry()
    if mdir:
        multiprocess.MultiProcessCollector(registry, path=mdir)
    else:
        registry.register(_DefaultRegistryCollector())
    for collector in extra:
        registry.register(collector)
    return registry


def render(extra: Iterable[Collector]) -> tuple[bytes, str]:
    """The exposition text; blocking (it reads every worker's file), run it in a thread."""
    return generate_latest(registry_for_scrape(extra)), CONTENT_TYPE_LATEST


class _DefaultRegistryCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


# -- node-wide totals, for the time-series store -----------------------------------------------


@dataclass
class Totals:
    """Node-wide cumulative S3 traffic, summed over operations and worker processes."""

    requests: float = 0.0
    errors_4xx: float = 0.0
    errors_5xx: float = 0.0
    bytes_in: float = 0.0
    bytes_out: float = 0.0
    latency_sum: float = 0.0
    # Per-bucket (not cumulative) latency counts, aligned with LATENCY_BUCKETS.
    latency_counts: list[float] = field(default_factory=lambda: [0.0] * len(LATENCY_BUCKETS))


def node_totals() -> Totals:
    """Blocking: reads every worker's metric file."""
    totals = Totals()
    cumulative: dict[float, float] = {}
    for metric in registry_for_scrape(()).collect():
        for s in metric.samples:
            if s.name == "holdfast_s3_requests_total":
                totals.requests += s.value
                if s.labels["status"].startswith("4"):
                    totals.errors_4xx += s.value
                elif s.labels["status"].startswith("5"):
                    totals.errors_5xx += s.value
            elif s.name == "holdfast_s3_received_bytes_total":
                totals.bytes_in += s.value
            elif s.name == "holdfast_s3_sent_bytes_total":
                totals.bytes_out += s.value
            elif s.name == "holdfast_s3_request_duration_seconds_sum":
                totals.latency_sum += s.value
            elif s.name == "holdfast_s3_request_duration_seconds_bucket":
                le = float(s.labels["le"])
                cumulative[le] = cumulative.get(le, 0.0) + s.value
    previous = 0.0
    for i, bound in enumerate(LATENCY_BUCKETS):
        value = cumulative.get(bound, previous)
        totals.latency_counts[i] = max(0.0, value - previous)
        previous = value
    return totals


# -- worker processes ----------------------------------------------------------------------

_PID_FILE = re.compile(r"_(\d+)\.db$")


def worker_pids(mdir: str | None) -> set[int]:
    """Pids of the processes that wrote metric files (every worker writes one at start)."""
    if not mdir:
        return {os.getpid()}
    pids = set()
    for name in os.listdir(mdir):
        m = _PID_FILE.search(name)
        if m:
            pids.add(int(m.group(1)))
    return pids


def forget_dead_processes(mdir: str | None) -> list[int]:
    """Drop the live-gauge files of processes that are gone (their counters stay, so totals
    never go backwards). Run now and then by one process of the node."""
    if not mdir:
        return []
    dead = [pid for pid in worker_pids(mdir) if not pid_alive(pid)]
    for pid in dead:
        multiprocess.mark_process_dead(pid, mdir)
    return dead


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _boot_time() -> float:
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("btime"):
                    return float(line.split()[1])
    except OSError:
        pass
    return 0.0


_BOOT_TIME = _boot_time()


@dataclass(frozen=True)
class ProcessStats:
    pid: int
    cpu_seconds: float
    resident_bytes: int
    virtual_bytes: int
    start_time: float
    open_fds: int
    name: str = ""  # the kernel's short process name (comm)


def process_stats(pid: int) -> ProcessStats | None:
    """CPU, memory and descriptors of one process from /proc; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            head, _, tail = f.read().rpartition(")")
        fields = tail.split()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, IndexError):
        return None
    # fields[0] is field 3 (state) of proc(5); utime=14, stime=15, starttime=22, vsize=23, rss=24
    return ProcessStats(
        pid=pid,
        cpu_seconds=(int(fields[11]) + int(fields[12])) / _CLK_TCK,
        resident_bytes=int(fields[21]) * _PAGE,
        virtual_bytes=int(fields[20]),
        start_time=_BOOT_TIME + int(fields[19]) / _CLK_TCK,
        open_fds=fds,
        name=head.partition("(")[2],
    )


class ProcessCollector(Collector):
    """CPU, memory and descriptors of the supervisor and of every live worker, plus load."""

    def __init__(self, supervisor_pid: int) -> None:
        self.supervisor_pid = supervisor_pid

    def collect(self) -> Iterator[Metric]:
        cpu = CounterMetricFamily(
            "holdfast_process_cpu_seconds", "CPU time of each process", labels=["pid", "role"]
        )
        rss = GaugeMetricFamily(
            "holdfast_process_resident_memory_bytes", "Resident memory", labels=["pid", "role"]
        )
        vms = GaugeMetricFamily(
            "holdfast_process_virtual_memory_bytes", "Virtual memory", labels=["pid", "role"]
        )
        fds = GaugeMetricFamily(
            "holdfast_process_open_fds", "Open file descriptors", labels=["pid", "role"]
        )
        start = GaugeMetricFamily(
            "holdfast_process_start_time_seconds", "Process start time", labels=["pid", "role"]
        )
        pids = {p: "worker" for p in worker_pids(multiprocess_dir()) if pid_alive(p)}
        pids[self.supervisor_pid] = "supervisor"
        for pid, role in sorted(pids.items()):
            stats = process_stats(pid)
            if stats is None:
                continue
            if stats.name == COMMITTER_PROCESS_NAME:
                role = "committer"
            labels = [str(pid), role]
            cpu.add_metric(labels, stats.cpu_seconds)
            rss.add_metric(labels, stats.resident_bytes)
            vms.add_metric(labels, stats.virtual_bytes)
            fds.add_metric(labels, stats.open_fds)
            start.add_metric(labels, stats.start_time)
        yield from (cpu, rss, vms, fds, start)
        load = os.getloadavg()
        for minutes, value in zip((1, 5, 15), load, strict=True):
            yield GaugeMetricFamily(
                f"holdfast_node_load{minutes}", f"System load average over {minutes} min", value
            )


# -- gauges from the status snapshot -------------------------------------------------------


def _gauge(name: str, doc: str, value: float | None, labels: dict[str, str] | None = None):
    family = GaugeMetricFamily(name, doc, labels=list(labels) if labels else None)
    if value is not None:
        family.add_metric(list(labels.values()) if labels else [], value)
    return family


class SnapshotCollector(Collector):
    """Node-level gauges rendered from this worker's status snapshot at scrape time."""

    def __init__(self, snapshot: Callable[[], dict]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot()
        now = time.time()
        node = snap.get("node", {})
        yield _gauge("holdfast_build_info", "Version", 1, {"version": node.get("version", "")})
        yield _gauge("holdfast_node_start_time_seconds", "Node start", node.get("started"))
        yield _gauge(
            "holdfast_status_snapshot_age_seconds",
            "Age of the status snapshot this worker serves",
            now - snap["refreshed_at"] if snap.get("refreshed_at") else None,
        )
        yield from self._drives(snap.get("drives", []))
        yield from self._index(snap.get("index", {}))
        yield from self._background(snap)
        yield from self._alerts(snap.get("alerts", {}))

    def _drives(self, drives: list[dict]) -> Iterator[Metric]:
        names = {
            "capacity": ("holdfast_drive_capacity_bytes", "Size of each drive's filesystem"),
            "free": ("holdfast_drive_free_bytes", "Bytes available on each drive"),
            "used": ("holdfast_drive_used_bytes", "Bytes used on each drive's filesystem"),
            "up": ("holdfast_drive_up", "1 if the drive is present and writable"),
        }
        families = {
            k: GaugeMetricFamily(n, d, labels=["drive", "path"]) for k, (n, d) in names.items()
        }
        state = GaugeMetricFamily(
            "holdfast_drive_state", "1 for each drive's current state", labels=["drive", "state"]
        )
        for d in drives:
            labels = [d["id"], d["path"]]
            for key, field_name in (
                ("capacity", "total_bytes"),
                ("free", "free_bytes"),
                ("used", "used_bytes"),
            ):
                if d.get(field_name) is not None:
                    families[key].add_metric(labels, d[field_name])
            families["up"].add_metric(labels, 1 if d["state"] == "ok" else 0)
            state.add_metric([d["id"], d["state"]], 1)
        yield from families.values()
        yield state

    def _index(self, index: dict) -> Iterator[Metric]:
        yield _gauge(
            "holdfast_index_up", "1 if the index could be read", int(bool(index.get("readable")))
        )
        yield _gauge(
            "holdfast_index_writable",
            "1 if the index took a write lock",
            int(bool(index.get("writable"))),
        )
        for key, name, doc in (
            ("objects", "holdfast_objects", "Objects stored"),
            ("buckets", "holdfast_buckets", "Buckets"),
            ("stored_bytes", "holdfast_stored_bytes", "Logical bytes of all objects"),
            ("gc_queue", "holdfast_gc_queue_depth", "Blobs waiting for garbage collection"),
            ("corrupt_objects", "holdfast_corrupt_objects", "Objects marked corrupt"),
        ):
            yield _gauge(name, doc, index.get(key))

    def _background(self, snap: dict) -> Iterator[Metric]:
        repair = snap.get("repair", {})
        scrub = snap.get("scrub", {})
        yield _gauge("holdfast_repair_queue_depth", "Repairs waiting", repair.get("queued"))
        yield _gauge("holdfast_repair_in_flight", "Repairs running", repair.get("in_flight"))
        yield self._handoff(repair.get("by_drive"), snap.get("cluster"))
        yield _gauge(
            "holdfast_scrub_progress_ratio",
            "Share of the current scrub pass done",
            scrub.get("progress"),
        )
        yield _gauge(
            "holdfast_scrub_last_pass_completed_timestamp_seconds",
            "When the last full scrub pass ended",
            scrub.get("last_pass_completed"),
        )

    @staticmethod
    def _handoff(by_drive: dict | None, cluster: dict | None) -> Metric:
        """The repair queue by the node that holds each target drive (store ids are
        ``node/drive``): in a cluster, the hinted-handoff log of every node. Every node of
        the layout has a sample, 0 when nothing is owed to it, so an emptied queue shows."""
        family = GaugeMetricFamily(
            "holdfast_hinted_handoff_queue_depth",
            "Repairs (copies and deletes) queued for the drives of each node: its hinted-"
            "handoff log while it is down",
            labels=["node"],
        )
        if by_drive is None:  # the index could not be read: no figure rather than a 0
            return family
        depth: dict[str, int] = {}
        for member in (cluster or {}).get("layout") or []:
            depth[member["name"]] = 0
        for store_id, ops in by_drive.items():
            node = store_id.split("/", 1)[0] if "/" in store_id else ""
            rows = sum(int(v.get("rows") or 0) for v in ops.values() if isinstance(v, dict))
            depth[node] = depth.get(node, 0) + rows
        for node, rows in sorted(depth.items()):
            family.add_metric([node], rows)
        return family

    def _alerts(self, alerts: dict) -> Iterator[Metric]:
        yield _gauge(
            "holdfast_alerts_pending",
            "Alerts in the outbox not yet delivered",
            alerts.get("pending"),
        )
        yield _gauge(
            "holdfast_alerts_oldest_pending_age_seconds",
            "Age of the oldest undelivered alert",
            alerts.get("oldest_pending_age_seconds"),
        )
        yield _gauge(
            "holdfast_alert_conditions_active",
            "Alert conditions currently firing",
            alerts.get("active_count"),
        )
