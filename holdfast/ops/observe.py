"""The per-request hook: what the S3 front calls for every request, and what becomes of it.

The request path is hot (a 4 KiB GET costs about 250 µs of CPU), so the hook does as little
as it can: :class:`Observation` notes the end time and appends itself to a list. Everything
else (naming the operation, building the log record, counting metrics) happens in
:class:`BatchProcessor`, in a background thread, a batch at a time, where label lookups are
cached and counters are added once per batch instead of once per request.
"""

from __future__ import annotations

import bisect
import os
import re
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from json.encoder import encode_basestring_ascii as _quote
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from holdfast.ops import metrics
from holdfast.ops.requestlog import RequestLogWriter, iso_utc
from holdfast.s3.router import resolve

if TYPE_CHECKING:
    from holdfast.s3.http import Request, Response

# Error codes that mean a body did not match the digest its client sent (edge checksums).
EDGE_CHECKSUM_CODES = frozenset({"BadDigest", "XAmzContentSHA256Mismatch"})
# Monitoring polls these every few seconds; they are counted but not logged.
QUIET_ENDPOINTS = frozenset({"health", "ready", "metrics", "status"})
ADMIN_ENDPOINTS = frozenset({"health", "ready", "metrics", "status", "api", "ui"})
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
_CODE = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")


class _Sink(Protocol):
    pending: list


class Finished(NamedTuple):
    """What is kept of a request once its response is sent: strings and numbers only (and
    the query dict when there is one), so that thousands of them waiting for the next flush
    hold no request, response or connection objects, and cost the garbage collector next to
    nothing."""

    ended: float
    latency: float
    aborted: bool
    request_id: str
    remote: str
    access_key: str | None
    authorization: str | None  # only kept to name the key of a request that failed auth
    user: str | None
    method: str
    raw_path: str
    bucket: str | None
    key: str | None
    query: dict | None
    copy: bool
    status: int
    error_body: bytes | None
    failure: str | None  # the error code of a response cut short after its headers
    content_length: str | None
    bytes_out: int
    user_agent: str
    access: str | None  # the access decision's reason (holdfast/s3/access.py)


class Observation:
    """One request on its way out. Used as ``with hook.observe(request, response): send``."""

    __slots__ = ("sink", "request", "response", "sent")

    def __init__(self, sink: _Sink, request: Request, response: Response) -> None:
        self.sink = sink
        self.request = request
        self.response = response
        self.sent = -1  # a bytes body is measured from the body itself
        if not isinstance(response.body, bytes):
            self.sent = 0
            response.body = self._counted(response.body)

    async def _counted(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in body:
            self.sent += len(chunk)
            yield chunk

    def __enter__(self) -> Observation:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        request, response = self.request, self.response
        headers = request.headers
        body = response.body
        status = response.status
        # Cut short after the headers: DataLost (no good copy), or any exception while sending.
        failure = response.failure or ("InternalError" if exc_type is not None else None)
        sent = self.sent
        if sent < 0:
            sent = 0 if request.method == "HEAD" else len(body)
        # A plain tuple (Finished._make'd later): cheaper to build than a NamedTuple, and
        # the collector stops tracking tuples that hold only strings and numbers.
        self.sink.pending.append(  # looked up now: the flusher swaps the list
            (
                time.time(),
                time.monotonic() - request.started,
                failure is not None,
                request.request_id,
                request.client,
                request.access_key,
                None if request.access_key else headers.get("authorization"),
                request.user,
                request.method,
                request.raw_path,
                request.bucket,
                request.key,
                request.query or None,
                "x-amz-copy-source" in headers,
                status,
                body if status >= 400 and isinstance(body, bytes) else None,
                failure,
                headers.get("content-length") if request.body_requested else None,
                sent,
                headers.get("user-agent", ""),
                request.decision,
            )
        )
        self.request = self.response = None


class NullObservation:
    """Used before the ops runtime has started (or after it stopped)."""

    def __enter__(self) -> NullObservation:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        return None


NULL_OBSERVATION = NullObservation()


# -- turning observations into records and metrics (background thread) -----------------------


def endpoint_of(path: str) -> str:
    name = path[len("/_holdfast/") :].split("/", 1)[0] if path.startswith("/_holdfast/") else ""
    return name if name in ADMIN_ENDPOINTS else "other"


def operation_of(f: Finished) -> str:
    if f.raw_path.startswith("/_holdfast"):
        return "Holdfast:" + endpoint_of(f.raw_path)
    if f.bucket is None and f.raw_path not in ("", "/"):
        return "Unknown"  # the path could not even be split into bucket and key
    if f.query:
        return resolve(f.method, f.bucket, f.key, f.query, f.copy).value
    # Without a query string the operation depends only on these four: remember the answer.
    shape = (f.method, f.bucket is None, f.key is None, f.copy)
    op = _SIMPLE_OPERATIONS.get(shape)
    if op is None:
        op = _SIMPLE_OPERATIONS[shape] = resolve(f.method, f.bucket, f.key, {}, f.copy).value
    return op


_SIMPLE_OPERATIONS: dict[tuple[str, bool, bool, bool], str] = {}


def claimed_access_key(f: Finished) -> str | None:
    """The access key a request names, even if its signature failed: that is the request an
    operator looks for when a user says their upload failed. Never the signature."""
    if f.access_key:
        return f.access_key
    auth = f.authorization or ""
    if auth.startswith("AWS "):
        return auth[4:].split(":", 1)[0] or None
    m = _CREDENTIAL.search(auth)
    if m:
        return m.group(1)
    query = f.query or {}
    cred = query.get("X-Amz-Credential") or ""
    if cred:
        return cred.split("/", 1)[0]
    return query.get("AWSAccessKeyId") or None


def error_code_of(f: Finished) -> str | None:
    if f.error_body is None:
        return None
    m = _CODE.search(f.error_body, 0, 512)
    return m.group(1).decode() if m else None


def bytes_in_of(f: Finished) -> int:
    raw = f.content_length or ""
    return int(raw) if raw.isascii() and raw.isdigit() else 0


class _Clock:
    """ISO 8601 times, formatting the date and time part once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def iso(self, epoch: float) -> str:
        second = int(epoch)
        if second != self._second:
            self._second, self._prefix = second, iso_utc(second)[:-5]
        return f"{self._prefix}.{int((epoch - second) * 1000):03d}Z"


class Record(NamedTuple):
    """One finished request, as the log and the metrics see it."""

    started: float
    request_id: str
    remote: str
    access_key: str | None
    user: str | None
    operation: str
    method: str
    bucket: str | None
    key: str | None
    status: int
    error_code: str | None
    bytes_in: int
    bytes_out: int
    latency: float
    user_agent: str
    aborted: bool
    status_sent: int  # the status line the client got; ``status`` is 500 for an abort
    access: str | None = None


def record_of(f: Finished) -> Record:
    """A response cut short is a server-side failure, whatever its status line said: it is
    recorded as a 500 with its error code, so log search, metrics, charts and the error-rate
    alert all count it."""
    return Record(
        f.ended - f.latency,
        f.request_id,
        f.remote,
        claimed_access_key(f),
        f.user,
        operation_of(f),
        f.method,
        f.bucket,
        f.key,
        500 if f.failure else f.status,
        f.failure or error_code_of(f),
        bytes_in_of(f),
        f.bytes_out,
        f.latency,
        f.user_agent[:200],
        f.aborted,
        f.status,
        f.access,
    )


def _str(value: str | None) -> str:
    return "null" if value is None else _quote(value)


def encode_line(r: Record, clock: _Clock, pid: int) -> str:
    """The JSON line of a record, fields in ``requestlog.FIELDS`` order. Written out by
    hand: it is what ``json.dumps(..., separators=(",", ":"))`` gives, at half the cost."""
    aborted = (
        f',"outcome":"aborted","status_sent":{r.status_sent},"aborted":true' if r.aborted else ""
    )
    access = f',"access":{_quote(r.access)}' if r.access else ""
    return (
        f'{{"time":"{clock.iso(r.started)}","ts":{r.started:.6f},"request_id":{_quote(r.request_id)}'
        f',"remote":{_quote(r.remote)},"access_key":{_str(r.access_key)},"user":{_str(r.user)}'
        f',"operation":{_quote(r.operation)},"method":{_quote(r.method)},"bucket":{_str(r.bucket)}'
        f',"key":{_str(r.key)},"status":{r.status},"error_code":{_str(r.error_code)}'
        f',"bytes_in":{r.bytes_in},"bytes_out":{r.bytes_out},"latency_ms":{r.latency * 1000:.3f}'
        f',"user_agent":{_quote(r.user_agent)}{aborted}{access},"pid":{pid}}}'
    )


def observe_many(child: Any, values: list[float]) -> None:
    """Add many observations to one histogram child with one write per bucket touched,
    instead of two writes per observation (each a locked write to the mmap'd file in
    multiprocess mode). Uses the child's ``_sum`` and ``_buckets``; if a future
    prometheus-client renames them, falls back to ``observe``."""
    buckets = getattr(child, "_buckets", None)
    total = getattr(child, "_sum", None)
    if buckets is None or total is None or len(buckets) != len(metrics.LATENCY_BUCKETS):
        for v in values:
            child.observe(v)
        return
    counts = Counter(bisect.bisect_left(metrics.LATENCY_BUCKETS, v) for v in values)
    for i, n in counts.items():
        buckets[min(i, len(buckets) - 1)].inc(n)
    total.inc(sum(values))


class _Children:
    """prometheus-client child objects cached by label values: ``labels()`` takes a lock and
    builds a key on every call, which adds up at thousands of requests per second."""

    def __init__(self, parent: Any) -> None:
        self.parent = parent
        self.cache: dict[tuple[str, ...], Any] = {}

    def __call__(self, *labels: str) -> Any:
        child = self.cache.get(labels)
        if child is None:
            child = self.cache[labels] = self.parent.labels(*labels)
        return child


class BatchProcessor:
    """Turns a batch of observations into log lines and metric updates. Blocking: it runs
    in the ops log thread, never on the event loop."""

    def __init__(self, writer: RequestLogWriter | None) -> None:
        self.writer = writer
        self.requests = _Children(metrics.REQUESTS)
        self.duration = _Children(metrics.DURATION)
        self.received = _Children(metrics.RECEIVED_BYTES)
        self.sent = _Children(metrics.SENT_BYTES)
        self.errors = _Children(metrics.ERRORS)
        self.aborted = _Children(metrics.ABORTED)
        self.admin = _Children(metrics.ADMIN_REQUESTS)
        self.log_errors = 0
        self.last_log_error: str | None = None
        self.clock = _Clock()
        self.pid = os.getpid()

    def process(self, batch: list[tuple]) -> None:
        lines: list[str] = []
        counts: Counter[tuple[str, str]] = Counter()
        admin: Counter[tuple[str, str]] = Counter()
        received: Counter[str] = Counter()
        sent: Counter[str] = Counter()
        errors: Counter[tuple[str, str]] = Counter()
        aborted: Counter[str] = Counter()
        latencies: defaultdict[str, list[float]] = defaultdict(list)
        edge = 0
        clock, pid = self.clock, self.pid
        for raw in batch:
            r = record_of(Finished._make(raw))
            op, status = r.operation, str(r.status)
            if op.startswith("Holdfast:"):
                endpoint = op[len("Holdfast:") :]
                admin[(endpoint, status)] += 1
                if endpoint in QUIET_ENDPOINTS and r.method in ("GET", "HEAD"):
                    continue
            else:
                counts[(op, status)] += 1
                latencies[op].append(r.latency)
                received[op] += r.bytes_in
                sent[op] += r.bytes_out
                if r.error_code:
                    errors[(op, r.error_code)] += 1
                    edge += r.error_code in EDGE_CHECKSUM_CODES
                if r.aborted:
                    aborted[op] += 1
            lines.append(encode_line(r, clock, pid))
        for op, values in latencies.items():
            observe_many(self.duration(op), values)
        self._count(counts, admin, received, sent, errors, edge)
        for op, n in aborted.items():
            self.aborted(op).inc(n)
        self._write(lines)

    def _count(self, counts, admin, received, sent, errors, edge: int) -> None:
        for labels, n in counts.items():
            self.requests(*labels).inc(n)
        for labels, n in admin.items():
            self.admin(*labels).inc(n)
        for op, n in received.items():
            if n:
                self.received(op).inc(n)
        for op, n in sent.items():
            if n:
                self.sent(op).inc(n)
        for labels, n in errors.items():
            self.errors(*labels).inc(n)
        if edge:
            metrics.CHECKSUM_FAILURES.labels("edge").inc(edge)

    def _write(self, lines: list[str]) -> None:
        if not lines or self.writer is None:
            return
        try:
            self.writer.write(("\n".join(lines) + "\n").encode())
        except OSError as e:  # a full or failed drive must not take requests down with it
            self.log_errors += 1
            self.last_log_error = str(e)
            metrics.REQUEST_LOG_DROPPED.inc(len(lines))
            self.writer.close()
            return
        metrics.REQUEST_LOG_RECORDS.inc(len(lines))
