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
    max_header_bytes: int = 16 * 1024
    max_object_size: int = 5 * 1024**4
    block_size: int = 1024 * 1024
    # Objects up to this size are stored in the index row itself (one fsync, no file).
    inline_max_bytes: int = 64 * 1024
    gc_grace_seconds: float = 30.0
    # A blob finished this long ago that no committed metadata refers to is an orphan.
    orphan_age_seconds: float = 7200.0
    sweep_interval_seconds: float = 600.0

    @property
    def primary_dir(self) -> Path:
        """The first data directory holds the index and the credentials."""
        return Path(self.data_dirs[0])

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
