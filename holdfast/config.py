"""One typed configuration object.

The server runs several worker processes that each build their own app; they receive the
configuration through one environment variable (JSON), so every worker sees exactly what the
parent parsed from flags and environment.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

CONFIG_ENV = "HOLDFAST_CONFIG_JSON"
DEFAULT_LISTEN = "127.0.0.1:9000"
DEFAULT_DATA = "./holdfast-data"


@dataclass
class Config:
    data_dirs: list[str] = field(default_factory=lambda: [DEFAULT_DATA])
    host: str = "127.0.0.1"
    port: int = 9000
    tls_cert: str | None = None
    tls_key: str | None = None
    workers: int = 0  # 0 means one per CPU
    region: str = "us-east-1"
    # Virtual-host-style addressing: requests to <bucket>.<domain> name the bucket in the host.
    domains: list[str] = field(default_factory=lambda: ["localhost", "s3.localhost"])
    # Static websites (docs/websites.md): <bucket>.<website domain> on the same port serves
    # the bucket as a site. Checked before ``domains``, so it may be a sub-domain of one.
    website_domains: list[str] = field(default_factory=lambda: ["s3-website.localhost"])
    max_header_bytes: int = 16 * 1024
    max_object_size: int = 5 * 1024**4
    block_size: int = 1024 * 1024
    # Objects up to this size are stored in the index row itself (one fsync, no file).
    inline_max_bytes: int = 64 * 1024
    # Presigned URLs that verified are remembered (per worker) until they expire; 0 disables.
    presign_cache_size: int = 4096
    gc_grace_seconds: float = 30.0
    # The index engine (holdfast/index/flags.py): PostgreSQL at this DSN, shared by the nodes
    # of a cluster; None keeps the embedded SQLite index in the first data directory.
    index_dsn: str | None = None
    # Heartbeats per second this node sends in total (holdfast/cluster/liveness.py).
    heartbeat_rate: float = 5.0
    index_timeout_seconds: float = 2.0  # deadline of one index call (then 503 / 500)
    index_pool_size: int = 8  # PostgreSQL connections per worker process
    # A blob finished this long ago that no committed metadata refers to is an orphan.
    orphan_age_seconds: float = 7200.0
    sweep_interval_seconds: float = 600.0
    # This node's name: store ids are "<node_name>/d0", ... ("" until resolved at start:
    # the name its drives are registered under, else "local"; holdfast/stores/registry.py).
    node_name: str = ""
    # Node-to-node traffic (holdfast/net/, docs/cluster.md; flags in holdfast/net/flags.py):
    # its own port and its own mutual TLS under the cluster CA, apart from S3's --tls-cert.
    cluster_listen: str | None = None  # HOST:PORT; None: not part of a cluster
    node_cert: str | None = None
    node_key: str | None = None
    cluster_ca: str | None = None
    # Integrity and self-healing (docs/integrity.md; flags in holdfast/workers/flags.py).
    copies: int = 0  # copies per object on distinct drives; 0: 2 with >= 2 drives, else 1
    min_copies: int = 1  # the write quorum: copies durable before a write is acknowledged
    spread: str = ""  # spread by kind of store, e.g. "kinds=2,s3>=1" (holdfast/placement/)
    # Flow control toward each external back-end store (holdfast/stores/s3.py), per process.
    backend_concurrency: int = 16
    backend_ops_per_second: float = 500.0
    backend_bytes_per_second: int = 512 * 1024**2
    backend_slow_seconds: float = 10.0  # a request slower than this counts against the breaker
    reserve_percent: float = 1.0  # of each drive, kept free by foreground writes
    repair_reserve_percent: float = 5.0  # of each drive, kept free by repair
    # The node's one queue of background transfers (holdfast/workers/transfers.py): repair,
    # re-sync, drain and rebalance together move at most this many bytes in any second and
    # start at most this many operations a second (each kind may also have a lower rate).
    repair_bytes_per_second: int = 64 * 1024**2
    repair_ops_per_second: float = 50.0
    # ... and into any one target node at most these (None: the totals above).
    transfer_node_bytes_per_second: int | None = None
    transfer_node_ops_per_second: float | None = None
    repair_concurrency: int = 2
    repair_backoff_base_seconds: float = 1.0
    repair_backoff_cap_seconds: float = 300.0
    scrub_bytes_per_second: int = 16 * 1024**2  # 0 turns the scrubber off (not advised)
    scrub_interval_seconds: float = 3600.0  # pause between the end of a pass and the next
    anti_entropy_interval_seconds: float = 3600.0  # full anti-entropy pass (0: only on return)
    # The lifecycle worker (holdfast/workers/lifecycle.py, docs/lifecycle.md).
    lifecycle_interval_seconds: float = 3600.0  # pause between the end of a pass and the next
    lifecycle_ops_per_second: float = 100.0  # versions and uploads examined or acted on
    # TEST ONLY: the length of a lifecycle "day" (like Ceph's rgw_lc_debug_interval); with
    # anything but 86,400 a rule's days are not rounded to midnight UTC.
    lifecycle_day_seconds: float = 86_400.0
    drive_error_threshold: int = 3  # errors within drive_error_window that mark a drive down
    drive_error_window_seconds: float = 30.0
    drive_probe_base_seconds: float = 1.0
    drive_probe_cap_seconds: float = 30.0
    foreground_quiet_seconds: float = 0.2  # background I/O waits this long after a request
    foreground_max_wait_seconds: float = 2.0  # ... but never longer (no starvation)
    # Operations (holdfast/ops): the node's own state, kept apart from the index so that
    # status, metrics and alerts keep working while the index or a drive is failing.
    ops_dir: str | None = None  # default <first data dir>/ops
    request_log_max_bytes: int = 256 * 1024**2
    status_refresh_seconds: float = 2.0
    # Who may read /_holdfast/status and /metrics (holdfast/ops/access.py): root always,
    # a scraper with this bearer token the metrics; everyone with public_status.
    metrics_token: str | None = None
    public_status: bool = False
    alert_webhooks: list[str] = field(default_factory=list)  # tried first, in order
    alert_smtp: str | None = None  # HOST:PORT, tried after the webhooks
    alert_smtp_starttls: bool = False
    alert_email_to: list[str] = field(default_factory=list)
    alert_email_from: str = "holdfast@localhost"
    alert_free_percent: float = 10.0
    alert_error_rate: float = 0.05  # share of 5xx answers over the error window
    alert_error_window_seconds: float = 300.0
    alert_error_min_requests: int = 20
    alert_backlog_minutes: int = 15
    alert_eval_seconds: float = 10.0
    alert_retry_base_seconds: float = 2.0
    alert_retry_cap_seconds: float = 300.0
    # Event notifications (holdfast/workers/notify.py; flags in holdfast/workers/notify_flags.py).
    notify_rate: float = 50.0  # deliveries per second, at most, over all targets
    notify_concurrency: int = 4  # (bucket, target) streams delivered at once
    notify_timeout_seconds: float = 10.0  # one delivery's HTTP deadline
    notify_retry_base_seconds: float = 1.0
    notify_retry_cap_seconds: float = 300.0
    notify_max_attempts: int = 15  # then the event is dead-lettered
    # Re-sealing SSE-S3 data keys after a master key rotation (holdfast/workers/reseal.py).
    sse_reseal_per_second: float = 200.0

    @property
    def primary_dir(self) -> Path:
        """The first data directory holds the index and the credentials."""
        return Path(self.data_dirs[0])

    @property
    def state_dir(self) -> Path:
        """Node-local state files shared by the worker processes (the foreground meter, the
        published integrity status, background-job locks). It is the directory the embedded
        index also lives in, so existing data directories keep their layout."""
        return self.primary_dir / "index"

    @property
    def ops_path(self) -> Path:
        """Where status, metrics, the request log and the alert outbox keep their files."""
        return Path(self.ops_dir) if self.ops_dir else self.primary_dir / "ops"

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"

    @property
    def endpoint(self) -> str:
        host = self.host if self.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"{self.scheme}://{host}:{self.port}"

    def worker_count(self) -> int:
        return self.workers or (os.cpu_count() or 1)

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> Config:
        raw = os.environ.get(CONFIG_ENV)
        return cls(**json.loads(raw)) if raw else cls()


def parse_listen(value: str) -> tuple[str, int]:
    """Accept HOST:PORT, :PORT and [v6]:PORT."""
    host, _, port = value.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"--listen wants HOST:PORT, got {value!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)
