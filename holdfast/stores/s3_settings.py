"""What configures an external S3 back-end store (holdfast/stores/s3.py): its registration
and its flow-control limits.

Kept apart from the store itself so that reading or building settings never imports boto3:
a node with no back-end store (most nodes) pays nothing for it in any of its processes
(docs/failure-testing.md, "Restart at scale"); holdfast/stores/s3.py, which needs boto3,
is imported only where a back-end store is opened or checked.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class S3Settings:
    """What registers an S3 back-end (``holdfast store add``). The secret key is kept
    sealed in the index and is in memory only here; ``__repr__`` never shows it."""

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    prefix: str = ""
    quota: int = 0  # bytes; required (an S3 service reports no free space)

    def __repr__(self) -> str:
        return (
            f"S3Settings(endpoint={self.endpoint!r}, bucket={self.bucket!r}, "
            f"prefix={self.prefix!r}, region={self.region!r}, quota={self.quota})"
        )

    def public(self) -> dict:
        """Everything but the credentials (store list, status page)."""
        return {
            "endpoint": self.endpoint,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "region": self.region,
            "quota": self.quota,
        }


@dataclass
class LimitSettings:
    concurrency: int = 16  # requests in flight to this back-end, per process
    ops_per_second: float = 500.0
    bytes_per_second: float = 512 * 1024**2
    attempts: int = 4  # tries of a retryable failure
    backoff_base: float = 0.1
    backoff_cap: float = 5.0
    timeout: float = 30.0  # connect and read timeout of one request
    # A request that succeeds after more than this (plus 1 s per SLOW_ALLOWANCE bytes it
    # sent) is slow: counted against the store's breaker like a failure (take_slow).
    slow_seconds: float = 10.0
