"""Continuous, bounded S3 writes through boto3 while something breaks under the node, and
the checks afterwards: which PUTs were acknowledged, what every HTTP answer was (retries
included), how long writes stopped, and whether every acknowledged object reads back whole.

Used by the index failover tests (tests/e2e/test_index_failover.py) and bench/failover.py.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

# The error a PUT gets when its COMMIT was sent and the connection died before the answer:
# the write may or may not have landed (holdfast/service/objects.py, docs/cluster.md).
OUTCOME_UNKNOWN = "The write may not have been applied"


@dataclass
class Answer:
    at: float  # monotonic time the answer came
    status: int  # HTTP status; 0 when no answer came (connection error)
    code: str  # S3 error code, "" on success
    message: str


@dataclass
class Load:
    """``writers`` threads PUT objects (sizes cycling through ``sizes``) into ``bucket``,
    each until :meth:`stop` or ``max_per_writer``; a probe thread PUTs a small object every
    ``probe_every`` s without retries, to time the outage precisely."""

    client_factory: object  # (**botocore config) -> boto3 S3 client
    bucket: str
    writers: int = 4
    max_per_writer: int = 5000
    sizes: tuple[int, ...] = (1024, 40 * 1024, 300 * 1024)
    probe_every: float = 0.1
    prefix: str = ""  # prepended to every key, so that two loads never write the same keys
    acknowledged: dict[str, bytes] = field(default_factory=dict)  # key -> sha256
    attempted: dict[str, bytes] = field(default_factory=dict)  # key -> sha256, acked or not
    failed: list[tuple[str, str]] = field(default_factory=list)  # (key, error) after retries
    answers: list[Answer] = field(default_factory=list)  # every HTTP answer, retries too
    probes: list[tuple[float, float, int]] = field(default_factory=list)  # (sent, done, status)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Load:
        for i in range(self.writers):
            t = threading.Thread(target=self._write, args=(i,), daemon=True)
            t.start()
            self._threads.append(t)
        t = threading.Thread(target=self._probe, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self, timeout: float = 120.0) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
        assert not any(t.is_alive() for t in self._threads), "a writer did not stop"

    # -- the threads --------------------------------------------------------------------------

    def _record(self, http_response, parsed) -> None:
        status = getattr(http_response, "status_code", 0) if http_response is not None else 0
        error = (parsed or {}).get("Error", {}) if status >= 300 else {}
        answer = Answer(time.monotonic(), status, error.get("Code", ""), error.get("Message", ""))
        with self._lock:
            self.answers.append(answer)

    def _hook(self, response=None, caught_exception=None, **_kw) -> None:
        """botocore's needs-retry event: called once per attempt, before retrying."""
        if response is not None:
            self._record(*response)
        elif caught_exception is not None:
            with self._lock:
                self.answers.append(Answer(time.monotonic(), 0, "", repr(caught_exception)))

    def _write(self, writer: int) -> None:
        s3 = self.client_factory()  # boto3's default retries: what applications have
        s3.meta.events.register("needs-retry.s3.PutObject", self._hook)
        for n in range(self.max_per_writer):
            if self._stop.is_set():
                return
            key = f"{self.prefix}w{writer}/{n:06d}"
            body = os.urandom(self.sizes[n % len(self.sizes)])
            digest = hashlib.sha256(body).digest()
            with self._lock:
                self.attempted[key] = digest
            try:
                s3.put_object(Bucket=self.bucket, Key=key, Body=body)
            except (ClientError, BotoCoreError) as e:
                with self._lock:
                    self.failed.append((key, repr(e)))
                time.sleep(0.05)
                continue
            with self._lock:
                self.acknowledged[key] = digest

    def _probe(self) -> None:
        s3 = self.client_factory(retries={"max_attempts": 1, "mode": "standard"})
        n = 0
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                s3.put_object(Bucket=self.bucket, Key=f"{self.prefix}probe/{n:06d}", Body=b"probe")
                status = 200
            except ClientError as e:
                status = e.response["ResponseMetadata"].get("HTTPStatusCode", 0)
            except BotoCoreError:
                status = 0
            with self._lock:
                self.probes.append((sent, time.monotonic(), status))
            n += 1
            self._stop.wait(max(0.0, self.probe_every - (time.monotonic() - sent)))

    # -- what happened ------------------------------------------------------------------------

    def statuses(self) -> Counter:
        with self._lock:
            return Counter((a.status, a.code) for a in self.answers)

    def server_errors(self) -> list[Answer]:
        """Every 5xx other than 503 (the retryable "not now"). That includes the 500 of a
        COMMIT whose answer was lost and whose outcome the node could not learn within its
        resolve window (counted apart by :meth:`outcome_unknown`)."""
        with self._lock:
            return [a for a in self.answers if a.status >= 500 and a.status != 503]

    def outcome_unknown(self) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if a.message.startswith(OUTCOME_UNKNOWN)]

    def acked_count(self) -> int:
        with self._lock:
            return len(self.acknowledged)

    def wait_acked(self, more: int, timeout: float) -> None:
        """Until ``more`` PUTs beyond the count now are acknowledged."""
        target = self.acked_count() + more
        deadline = time.monotonic() + timeout
        while self.acked_count() < target:
            assert time.monotonic() < deadline, f"fewer than {more} PUTs in {timeout} s"
            time.sleep(0.05)

    def outage_after(self, t0: float) -> tuple[float, float] | None:
        """(first failed probe, first successful probe sent after it), both as seconds
        from ``t0``; None when no probe failed after t0, or none succeeded after a failure."""
        with self._lock:
            after = [p for p in self.probes if p[0] >= t0]
        first_fail = next((p for p in after if p[2] != 200), None)
        if first_fail is None:
            return None
        ok = next((p for p in after if p[0] > first_fail[0] and p[2] == 200), None)
        if ok is None:
            return None
        return first_fail[1] - t0, ok[1] - t0

    def first_ok_after(self, t0: float) -> float | None:
        """Seconds from ``t0`` to the answer of the first probe that was sent after the last
        failed one: when writes had resumed for good."""
        with self._lock:
            after = [p for p in self.probes if p[0] >= t0]
        failed = [p for p in after if p[2] != 200]
        if not failed:
            return None
        last_fail = failed[-1]
        ok = next((p for p in after if p[0] > last_fail[0] and p[2] == 200), None)
        return None if ok is None else ok[1] - t0

    def check_readback(self, s3) -> tuple[int, list[str]]:
        """Every acknowledged key reads back with its bytes; every attempted key is either
        absent or whole (never half-visible). Returns (keys checked, problems)."""
        problems: list[str] = []
        with self._lock:
            attempted = dict(self.attempted)
            acked = set(self.acknowledged)
        for key, digest in sorted(attempted.items()):
            try:
                body = s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except ClientError as e:
                code = e.response["Error"]["Code"]
                if key in acked or code != "NoSuchKey":
                    problems.append(f"{key}: {code} (acknowledged: {key in acked})")
                continue
            if hashlib.sha256(body).digest() != digest:
                problems.append(f"{key}: wrong bytes ({len(body)} B, acknowledged: {key in acked})")
        return len(attempted), problems


def client_factory(server):
    """``(**config) -> boto3 client`` for a tests.conftest.Server: boto3's defaults unless
    told otherwise."""

    def make(**config):
        return server.client(**config) if config else server.client()

    return make
