"""An external S3-compatible service as a store (kind ``"s3"``): SeaweedFS, MinIO, AWS S3,
or another Holdfast cluster holding copies of this one's blobs (issue #14, docs/stores.md).

Layout in the back-end's bucket, under the store's prefix ``P`` (may be empty)::

    P.holdfast-store                  identity marker: {"uuid": …}, as the index knows it
    Ptmp/<random>                     a large blob being received (multipart upload)
    Pblobs/<hour>/<blob id>           finished blobs, grouped by the hour they were finished
    Pquarantine/<blob id>.<time>      copies that failed verification: kept aside

**Checksums.** Holdfast's per-block CRC32C of a blob lives where it lives for every kind: in
the index's segment (``BlobLayout.crcs``), written once when the blob is received. Nothing
about a blob's integrity is kept on the back-end itself, so a back-end that returns wrong
bytes, or whose objects were overwritten behind Holdfast's back, cannot also vouch for them:
every block read back is checked against the index's CRC before any of its bytes is handed
out (:class:`CorruptBlock`, and holdfast/stores/verify.py reads it from another copy).
Writes also send ``x-amz-checksum-crc32c`` (per part for multipart), so the back-end refuses
bytes damaged on the way.

**Streaming, bounded memory.** A blob of up to ``part_size`` bytes is kept in memory and
sent with one PutObject when :meth:`S3BlobWriter.finish` knows its id (ids are given at
finish, base.py). A larger one is sent as a multipart upload to ``Ptmp/<random>`` one part
at a time as the bytes arrive, then completed and server-side copied to its final name (one
request; S3 limits a CopyObject to 5 GiB, so does a blob here). A writer holds at most one
part in memory. Reads are ranged GETs of just the blocks a range touches, read one block at
a time off the response, so a GET failing over mid-stream continues at the failing block.

**Flow control and failures.** Every request goes through the store's :class:`Limits`: a
concurrency cap, token buckets for operations and bytes per second, and retries of
retryable failures (5xx, throttling, connection errors) with exponential backoff and
jitter (holdfast/workers/limits.py). What still fails is raised as an ``OSError`` (EACCES
for refused credentials, EIO for 5xx, ETIMEDOUT, ECONNREFUSED…), which the drive health
breaker (holdfast/stores/health.py) counts like a failing drive; a marker that is missing
or names another store is :class:`StoreMissing`. Credentials are never logged: only the
endpoint, bucket and prefix appear in ``location()``.

**Free space.** An S3 service does not report free space, so the store has a configured
``quota`` and reports ``(quota - used, quota)``; ``used`` is the sum of a listing of
``Pblobs/``, refreshed at most every ``USED_TTL`` seconds and adjusted by this process's own
writes and deletes in between. Never unlimited: a quota is required.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import logging
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import boto3
import crc32c
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from prometheus_client import Counter

from holdfast.stores.base import (
    BlobInfo,
    BlobLayout,
    BlobPage,
    BlobReader,
    BlobWriter,
    Capability,
    Store,
    StoreFull,
    StoreMissing,
    blob_hour,
    is_blob_id,
)
from holdfast.stores.blocks import BlockChecksummer, CorruptBlock, first_mismatch, verify_block
from holdfast.stores.s3_settings import LimitSettings, S3Settings
from holdfast.workers.limits import TokenBucket, jittered_delay

log = logging.getLogger("holdfast.stores.s3")

MARKER = ".holdfast-store"
MIN_PART_SIZE = 5 * 1024**2  # S3's (and SeaweedFS's) smallest part but the last
DEFAULT_PART_SIZE = 8 * 1024**2
MAX_COPY_SIZE = 5 * 1024**3  # one CopyObject
USED_TTL = 60.0

BACKEND_REQUESTS = Counter(
    "holdfast_backend_requests_total",
    "Requests to external S3 back-end stores, by store, operation and outcome.",
    ["store", "op", "outcome"],
)
BACKEND_BYTES = Counter(
    "holdfast_backend_bytes_total",
    "Bytes sent to (out) and received from (in) external S3 back-end stores.",
    ["store", "direction"],
)
BACKEND_SLOW = Counter(
    "holdfast_backend_slow_requests_total",
    "Requests to external S3 back-ends that succeeded too slowly (counted by the breaker).",
    ["store", "op"],
)
BACKEND_RETRIES = Counter(
    "holdfast_backend_retries_total",
    "Requests to external S3 back-ends retried after a retryable failure.",
    ["store"],
)


# Part uploads run here while the writer's thread receives the next part; each back-end's
# own concurrency cap (Limits) still bounds what is in flight to it.
UPLOADS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="holdfast-s3-part")


class BackendError(OSError):
    """A request to the back-end failed for good (after retries)."""


SLOW_ALLOWANCE = 1024**2  # bytes per second of allowance a request's body earns
SLOW_REMEMBERED = 100  # slow events kept between two looks by the drive monitor


RETRYABLE_CODES = frozenset(
    {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "Throttling"}
)
CREDENTIAL_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "ExpiredToken"}
)
NETWORK_ERRORS = (
    EndpointConnectionError,
    ConnectTimeoutError,
    ReadTimeoutError,
    ConnectionClosedError,
)


def _status(e: ClientError) -> int:
    return int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def is_not_found(e: ClientError) -> bool:
    """No such object (a missing copy); a missing *bucket* is the store gone (StoreMissing)."""
    if _code(e) == "NoSuchBucket":
        return False
    return _status(e) == 404 or _code(e) in ("NoSuchKey", "404", "NotFound", "NoSuchUpload")


def _retryable(e: BaseException) -> bool:
    if isinstance(e, NETWORK_ERRORS):
        return True
    if isinstance(e, ClientError):
        return _status(e) >= 500 or _code(e) in RETRYABLE_CODES
    return False


def as_os_error(store_id: str, what: str, e: BaseException) -> OSError:
    """The OSError the rest of Holdfast understands (health.py counts it against the store)."""
    if isinstance(e, ClientError):
        code, status = _code(e), _status(e)
        if status == 403 or code in CREDENTIAL_CODES:
            err = errno.EACCES
        elif is_not_found(e):
            err = errno.ENOENT
        elif code == "NoSuchBucket":
            return StoreMissing(errno.ENODEV, f"{store_id}: {what}: the bucket is gone")
        else:
            err = errno.EIO
        return BackendError(err, f"{store_id}: {what}: {status} {code}")
    if isinstance(e, (ReadTimeoutError, ConnectTimeoutError)):
        return BackendError(errno.ETIMEDOUT, f"{store_id}: {what}: timed out")
    if isinstance(e, EndpointConnectionError):
        return BackendError(errno.ECONNREFUSED, f"{store_id}: {what}: cannot connect")
    return BackendError(errno.EIO, f"{store_id}: {what}: {type(e).__name__}: {e}")


class Limits:
    """Flow control for one back-end: what keeps Holdfast from flooding it and from
    spinning on it when it fails (the EBS re-mirroring storm, again)."""

    def __init__(self, store_id: str, settings: LimitSettings) -> None:
        self.store_id = store_id
        self.settings = settings
        self._slots = threading.BoundedSemaphore(settings.concurrency)
        self._ops = TokenBucket(settings.ops_per_second)
        self._bytes = TokenBucket(settings.bytes_per_second, burst=settings.bytes_per_second)
        self.in_flight = 0
        self._slow: deque[str] = deque(maxlen=SLOW_REMEMBERED)

    def take_slow(self) -> list[str]:
        out = []
        while self._slow:
            out.append(self._slow.popleft())
        return out

    def _timed(self, op: str, started: float, nbytes: int) -> None:
        took = time.monotonic() - started
        if took > self.settings.slow_seconds + nbytes / SLOW_ALLOWANCE:
            BACKEND_SLOW.labels(self.store_id, op).inc()
            self._slow.append(f"{self.store_id}: {op} took {took:.1f}s (slow)")

    def call(self, op: str, fn: Callable[[], Any], nbytes: int = 0) -> Any:
        """Run one request under the caps, retrying what can be retried. Raises OSError."""
        s = self.settings
        for attempt in range(s.attempts):
            self._ops.take_sync(1)
            if nbytes:
                self._bytes.take_sync(nbytes)
            with self._slots:
                self.in_flight += 1
                started = time.monotonic()
                try:
                    result = fn()
                except ClientError as e:
                    if is_not_found(e):
                        BACKEND_REQUESTS.labels(self.store_id, op, "not-found").inc()
                        raise
                    error: BaseException = e
                except (BotoCoreError, OSError) as e:
                    error = e
                else:
                    BACKEND_REQUESTS.labels(self.store_id, op, "ok").inc()
                    self._timed(op, started, nbytes)
                    return result
                finally:
                    self.in_flight -= 1
            BACKEND_REQUESTS.labels(self.store_id, op, "error").inc()
            if not _retryable(error) or attempt == s.attempts - 1:
                raise as_os_error(self.store_id, op, error) from error
            BACKEND_RETRIES.labels(self.store_id).inc()
            time.sleep(jittered_delay(s.backoff_base, s.backoff_cap, attempt))
        raise AssertionError("unreachable")


def make_client(settings: S3Settings, limits: LimitSettings) -> Any:
    """A boto3 client with its own retries off (Limits retries, with the caps applied) and
    path-style addressing (what S3-compatible services answer)."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.endpoint,
        aws_access_key_id=settings.access_key,
        aws_secret_access_key=settings.secret_key,
        region_name=settings.region or "us-east-1",
        config=BotoConfig(
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=limits.timeout,
            read_timeout=limits.timeout,
            max_pool_connections=limits.concurrency,
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def _crc32c_b64(data: bytes | memoryview) -> str:
    return base64.b64encode(crc32c.crc32c(data).to_bytes(4, "big")).decode()


class S3BlobWriter(BlobWriter):
    """Receives a blob; see the module docstring for the small and multipart paths."""

    def __init__(self, store: S3Store, block_size: int) -> None:
        self.store = store
        self.size = 0
        self._blocks = BlockChecksummer(block_size)
        self._buf = bytearray()
        self._tmp_key: str | None = None
        self._upload_id: str | None = None
        self._parts: list[dict] = []
        self._done = False
        self._pending: Future | None = None  # the part being uploaded (one at a time)

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        if self.store.used_estimate() + self.size + len(view) > self.store.quota:
            raise StoreFull(f"{self.store.store_id}: quota of {self.store.quota} bytes reached")
        self._blocks.update(view)
        self._buf += view
        self.size += len(view)
        while len(self._buf) >= 2 * self.store.part_size:
            self._send_part(self.store.part_size)

    def _send_part(self, length: int) -> None:
        """Upload the first ``length`` buffered bytes as the next part."""
        st = self.store
        if self._upload_id is None:
            self._tmp_key = st.key("tmp/" + secrets.token_hex(16))
            resp = st.limits.call(
                "create-multipart",
                lambda: st.client.create_multipart_upload(
                    Bucket=st.bucket, Key=self._tmp_key, ChecksumAlgorithm="CRC32C"
                ),
            )
            self._upload_id = resp["UploadId"]
        body = bytes(self._buf[:length])
        del self._buf[:length]
        self._wait_part()
        number = len(self._parts) + 1
        checksum = _crc32c_b64(body)
        # One part travels while the next is received: the request's stream does not wait
        # for the back-end part by part (at most two parts in memory plus the one in flight).
        self._pending = UPLOADS.submit(self._upload_part, number, body, checksum)

    def _wait_part(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _upload_part(self, number: int, body: bytes, checksum: str) -> None:
        st = self.store
        resp = st.limits.call(
            "upload-part",
            lambda: st.client.upload_part(
                Bucket=st.bucket,
                Key=self._tmp_key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=body,
                ChecksumCRC32C=checksum,
            ),
            len(body),
        )
        BACKEND_BYTES.labels(st.store_id, "out").inc(len(body))
        self._parts.append({"PartNumber": number, "ETag": resp["ETag"], "ChecksumCRC32C": checksum})

    def _check(self, blob_id: str, crcs: bytes) -> None:
        if not is_blob_id(blob_id):
            raise ValueError("not a blob id")
        received = self._blocks.finish()
        if received != crcs:
            self.abort_quietly()
            bad = first_mismatch(received, crcs)
            raise CorruptBlock(blob_id, bad, "received bytes do not match their checksum")

    def finish(self, blob_id: str, crcs: bytes) -> None:
        """Check the CRCs, then make the copy durable under its name: a PutObject (small) or
        completing the multipart upload and copying it into place (large). A back-end's 200
        is its promise the object is durable; there is nothing more to fsync."""
        self._check(blob_id, crcs)
        st = self.store
        final = st.blob_key(blob_id)
        try:
            if self._upload_id is None:
                body = bytes(self._buf)
                self._buf = bytearray()
                st.limits.call(
                    "put",
                    lambda: st.client.put_object(
                        Bucket=st.bucket, Key=final, Body=body, ChecksumCRC32C=_crc32c_b64(body)
                    ),
                    len(body),
                )
                BACKEND_BYTES.labels(st.store_id, "out").inc(len(body))
            else:
                if self._buf:
                    self._send_part(len(self._buf))
                self._wait_part()
                st.limits.call(
                    "complete-multipart",
                    lambda: st.client.complete_multipart_upload(
                        Bucket=st.bucket,
                        Key=self._tmp_key,
                        UploadId=self._upload_id,
                        MultipartUpload={"Parts": self._parts},
                    ),
                )
                self._upload_id = None
                st.limits.call(
                    "copy",
                    lambda: st.client.copy_object(
                        Bucket=st.bucket,
                        Key=final,
                        CopySource={"Bucket": st.bucket, "Key": self._tmp_key},
                    ),
                )
                st.limits.call(
                    "delete", lambda: st.client.delete_object(Bucket=st.bucket, Key=self._tmp_key)
                )
        except BaseException:
            self.abort_quietly()
            raise
        self._done = True
        st.added(self.size)

    def finish_replacing(self, blob_id: str, crcs: bytes) -> str | None:
        """A repair: the bad copy under the name is copied aside first, then overwritten in
        place (an S3 PUT replaces atomically, so readers never find the name empty)."""
        self._check(blob_id, crcs)
        moved = self.store.quarantine(blob_id, keep=True)
        self.finish(blob_id, crcs)
        return moved

    def abort(self) -> None:
        self._buf = bytearray()
        if self._done:
            return
        self._done = True
        with contextlib.suppress(Exception):  # its failure is why we abort, or moot
            self._wait_part()
        st = self.store
        if self._upload_id is not None:
            upload, self._upload_id = self._upload_id, None
            st.limits.call(
                "abort-multipart",
                lambda: st.client.abort_multipart_upload(
                    Bucket=st.bucket, Key=self._tmp_key, UploadId=upload
                ),
            )
        if self._tmp_key is not None:
            st.limits.call(
                "delete", lambda: st.client.delete_object(Bucket=st.bucket, Key=self._tmp_key)
            )


class S3BlobReader(BlobReader):
    """Single blocks of one copy, each a ranged GET (repair, block by block)."""

    def __init__(self, store: S3Store, key: str, blob: BlobLayout) -> None:
        self.store = store
        self.key = key
        self.blob = blob
        if store.head(key) is None:
            raise FileNotFoundError(errno.ENOENT, f"no copy of blob {blob.blob_id} on {store}")

    def read_block(self, block: int) -> bytes:
        b = self.blob
        start = block * b.block_size
        length = min(b.block_size, b.size - start)
        data = self.store.get_range(self.key, start, start + length) if length > 0 else b""
        verify_block(data, length, b.crcs, block, b.blob_id)
        return data

    def close(self) -> None:
        return None


class S3Store(Store):
    """One bucket (and prefix) of an S3-compatible service. Construction touches nothing
    remote: the first request is made by whoever uses the store first (probe, a write)."""

    kind = "s3"
    capabilities = frozenset(
        {
            Capability.RANGED_READS,
            Capability.LISTING,
            Capability.IDENTITY,
            Capability.QUARANTINE,
            Capability.TEMPORARY_FILES,
        }
    )

    def __init__(
        self,
        store_id: str,
        settings: S3Settings,
        limits: LimitSettings | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        client: Any = None,
    ) -> None:
        if settings.quota <= 0:
            raise ValueError("an S3 back-end needs a quota: it reports no free space")
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"parts of at least {MIN_PART_SIZE} bytes (S3's minimum)")
        self.store_id = store_id
        self.settings = settings
        self.bucket = settings.bucket
        self.prefix = settings.prefix
        self.quota = settings.quota
        self.part_size = part_size
        self.limit_settings = limits or LimitSettings()
        self.limits = Limits(store_id, self.limit_settings)
        self.client = client or make_client(settings, self.limit_settings)
        self._used: tuple[float, int] | None = None
        self._used_delta = 0
        self._lock = threading.Lock()

    def __str__(self) -> str:
        return self.store_id

    def location(self) -> str:
        return f"{self.settings.endpoint.rstrip('/')}/{self.bucket}/{self.prefix}"

    # -- keys ---------------------------------------------------------------------------------

    def key(self, rest: str) -> str:
        return self.prefix + rest

    def blob_key(self, blob_id: str) -> str:
        if not is_blob_id(blob_id):
            raise ValueError("not a blob id")
        return self.key(f"blobs/{blob_hour(blob_id)}/{blob_id}")

    # -- requests -----------------------------------------------------------------------------

    def head(self, key: str) -> dict | None:
        try:
            return self.limits.call(
                "head", lambda: self.client.head_object(Bucket=self.bucket, Key=key)
            )
        except ClientError as e:
            if is_not_found(e):
                return None
            raise as_os_error(self.store_id, "head", e) from e

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of an object, whole (a short answer is returned short: the
        caller's length check calls it corrupt)."""
        return b"".join(self._stream(key, start, end, end - start))

    def _open(self, key: str, start: int, end: int) -> Any:
        try:
            resp = self.limits.call(
                "get",
                lambda: self.client.get_object(
                    Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end - 1}"
                ),
                end - start,
            )
        except ClientError as e:
            if is_not_found(e):
                raise FileNotFoundError(errno.ENOENT, f"{self.store_id}: no {key}") from e
            if _code(e) == "InvalidRange":
                return None  # the copy is shorter than the range: the reader finds it short
            raise as_os_error(self.store_id, "get", e) from e
        return resp["Body"]

    def _stream(self, key: str, start: int, end: int, piece: int) -> Iterator[bytes]:
        """The response body of a ranged GET in pieces of ``piece`` bytes (the last may be
        shorter; a body that ends early just ends)."""
        body = self._open(key, start, end)
        if body is None:
            return
        try:
            remaining = end - start
            while remaining > 0:
                want = min(piece, remaining)
                chunks = []
                got = 0
                while got < want:
                    try:
                        chunk = body.read(want - got)
                    except (BotoCoreError, OSError) as e:
                        raise as_os_error(self.store_id, "get", e) from e
                    if not chunk:
                        break
                    chunks.append(chunk)
                    got += len(chunk)
                data = b"".join(chunks)
                BACKEND_BYTES.labels(self.store_id, "in").inc(len(data))
                if not data:
                    return
                yield data
                remaining -= len(data)
                if len(data) < want:
                    return
        finally:
            body.close()

    # -- identity and health --------------------------------------------------------------------

    def identity(self) -> str | None:
        try:
            resp = self.limits.call(
                "get-marker",
                lambda: self.client.get_object(Bucket=self.bucket, Key=self.key(MARKER)),
            )
        except ClientError as e:
            if is_not_found(e):
                return None
            raise as_os_error(self.store_id, "get-marker", e) from e
        try:
            return json.loads(resp["Body"].read())["uuid"]
        except (ValueError, KeyError, TypeError) as e:
            raise StoreMissing(errno.EIO, f"{self.location()}: unreadable marker: {e}") from e

    def initialize(self, uuid: str) -> None:
        if self.identity() is not None:
            return
        payload = json.dumps({"uuid": uuid, "store_id": self.store_id, "created": time.time()})
        self.limits.call(
            "put-marker",
            lambda: self.client.put_object(
                Bucket=self.bucket, Key=self.key(MARKER), Body=payload.encode()
            ),
        )

    def probe(self, uuid: str) -> None:
        """The marker names ``uuid`` and the back-end takes (and gives back) a write."""
        found = self.identity()
        if found != uuid:
            what = "no marker" if found is None else f"marker of store {found}"
            raise StoreMissing(errno.ENODEV, f"{self.location()}: {what}, expected {uuid}")
        key = self.key(f"tmp/.probe-{os.getpid()}")
        self.limits.call(
            "probe",
            lambda: self.client.put_object(
                Bucket=self.bucket, Key=key, Body=b"probe", ChecksumCRC32C=_crc32c_b64(b"probe")
            ),
        )
        self.limits.call("probe", lambda: self.client.delete_object(Bucket=self.bucket, Key=key))
        slow = self.limits.take_slow()
        if slow:  # still crawling: it stays down until it answers in time
            raise BackendError(errno.ETIMEDOUT, slow[-1])

    def take_slow(self) -> list[str]:
        return self.limits.take_slow()

    def forget_cached_state(self) -> None:
        self._used = None

    # -- capacity: a configured quota ----------------------------------------------------------

    def used_estimate(self) -> int:
        """Bytes under ``Pblobs/``, listed at most every USED_TTL seconds (see the module
        docstring); 0 until first listed, so a writer never lists on the request path."""
        with self._lock:
            cached = self._used
            return (cached[1] if cached else 0) + self._used_delta

    def _list_used(self) -> int:
        total = 0
        token = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.key("blobs/")}
            if token:
                kwargs["ContinuationToken"] = token
            resp = self.limits.call("list", lambda kw=kwargs: self.client.list_objects_v2(**kw))
            total += sum(o["Size"] for o in resp.get("Contents", []))
            if not resp.get("IsTruncated"):
                return total
            token = resp["NextContinuationToken"]

    def space(self, fresh: bool = False) -> tuple[int, int]:
        now = time.monotonic()
        cached = self._used
        if fresh or cached is None or now - cached[0] > USED_TTL:
            used = self._list_used()
            with self._lock:
                self._used = (now, used)
                self._used_delta = 0
        used = self.used_estimate()
        return max(0, self.quota - used), self.quota

    def added(self, nbytes: int) -> None:
        with self._lock:
            self._used_delta += nbytes

    # -- blobs ----------------------------------------------------------------------------------

    def writer(self, block_size: int) -> S3BlobWriter:
        return S3BlobWriter(self, block_size)

    def read_blocks(self, blob: BlobLayout, start: int, end: int) -> Iterator[bytes]:
        """One ranged GET for the blocks [start, end) touches, verified block by block as
        they arrive: no byte of a block is yielded before its CRC matched."""
        if start >= end:
            return
        bs, size = blob.block_size, blob.size
        first, last = start // bs, (end - 1) // bs
        lo_byte, hi_byte = first * bs, min(size, (last + 1) * bs)
        pieces = self._stream(self.blob_key(blob.blob_id), lo_byte, hi_byte, bs)
        for block in range(first, last + 1):
            expected = min(bs, size - block * bs)
            data = next(pieces, b"")
            verify_block(data, expected, blob.crcs, block, blob.blob_id)
            lo = start - block * bs if block == first else 0
            hi = end - block * bs if block == last else len(data)
            yield data if (lo == 0 and hi == len(data)) else data[lo:hi]

    def open_blob(self, blob: BlobLayout, copy: str | None = None) -> S3BlobReader:
        if copy is None:
            return S3BlobReader(self, self.blob_key(blob.blob_id), blob)
        if not copy.startswith(blob.blob_id + ".") or "/" in copy:
            raise FileNotFoundError(errno.ENOENT, f"no quarantined copy {copy!r}")
        return S3BlobReader(self, self.key("quarantine/" + copy), blob)

    def stat(self, blob_id: str) -> BlobInfo | None:
        resp = self.head(self.blob_key(blob_id))
        if resp is None:
            return None
        return BlobInfo(blob_id, int(resp["ContentLength"]), resp["LastModified"].timestamp())

    def delete(self, blob_id: str) -> None:
        info = self.stat(blob_id)
        self.limits.call(
            "delete",
            lambda: self.client.delete_object(Bucket=self.bucket, Key=self.blob_key(blob_id)),
        )
        if info is not None:
            self.added(-info.size)

    # -- listing --------------------------------------------------------------------------------

    def hours(self) -> list[str]:
        out: list[str] = []
        token = None
        while True:
            kwargs: dict[str, Any] = {
                "Bucket": self.bucket,
                "Prefix": self.key("blobs/"),
                "Delimiter": "/",
            }
            if token:
                kwargs["ContinuationToken"] = token
            resp = self.limits.call("list", lambda kw=kwargs: self.client.list_objects_v2(**kw))
            for p in resp.get("CommonPrefixes", []):
                out.append(p["Prefix"][len(self.key("blobs/")) :].rstrip("/"))
            if not resp.get("IsTruncated"):
                return sorted(h for h in out if h)
            token = resp["NextContinuationToken"]

    def list_blobs(self, hour: str, cursor: str | None = None, limit: int = 1000) -> BlobPage:
        """A page of one hour's blobs; the cursor is the last blob id listed."""
        prefix = self.key(f"blobs/{hour}/")
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": limit}
        if cursor:
            kwargs["StartAfter"] = prefix + cursor
        resp = self.limits.call("list", lambda: self.client.list_objects_v2(**kwargs))
        blobs = [
            BlobInfo(o["Key"][len(prefix) :], int(o["Size"]), o["LastModified"].timestamp())
            for o in resp.get("Contents", [])
        ]
        more = bool(resp.get("IsTruncated")) and bool(blobs)
        return BlobPage(blobs, blobs[-1].blob_id if more else None)

    # -- quarantine -----------------------------------------------------------------------------

    def quarantine(self, blob_id: str, keep: bool = False) -> str | None:
        """Copy the bad copy to ``Pquarantine/`` and remove it from its name (S3 has no
        rename; with ``keep`` it stays, to be overwritten). None if there was no copy."""
        src = self.blob_key(blob_id)
        name = f"{blob_id}.{time.time_ns()}"
        try:
            self.limits.call(
                "copy",
                lambda: self.client.copy_object(
                    Bucket=self.bucket,
                    Key=self.key("quarantine/" + name),
                    CopySource={"Bucket": self.bucket, "Key": src},
                ),
            )
        except ClientError as e:
            if is_not_found(e):
                return None
            raise as_os_error(self.store_id, "copy", e) from e
        if not keep:
            self.limits.call(
                "delete", lambda: self.client.delete_object(Bucket=self.bucket, Key=src)
            )
        return name

    def quarantined(self, blob_id: str | None = None) -> list[str]:
        prefix = self.key("quarantine/")
        names: list[str] = []
        token = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix + (blob_id or "")}
            if token:
                kwargs["ContinuationToken"] = token
            resp = self.limits.call("list", lambda kw=kwargs: self.client.list_objects_v2(**kw))
            names += [o["Key"][len(prefix) :] for o in resp.get("Contents", [])]
            if not resp.get("IsTruncated"):
                break
            token = resp["NextContinuationToken"]
        return sorted(n for n in names if blob_id is None or n.startswith(blob_id + "."))

    # -- leftovers of interrupted writes: multipart uploads under Ptmp/ --------------------------

    def _stale_uploads(self, older_than: float) -> list[tuple[str, str]]:
        cutoff = time.time() - older_than
        resp = self.limits.call(
            "list-uploads",
            lambda: self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=self.key("tmp/")),
        )
        return [
            (u["Key"], u["UploadId"])
            for u in resp.get("Uploads", [])
            if u["Initiated"].timestamp() < cutoff
        ]

    def stale_temporary(self, older_than: float) -> int:
        return len(self._stale_uploads(older_than))

    def remove_stale_temporary(self, older_than: float) -> int:
        stale = self._stale_uploads(older_than)
        for key, upload in stale:
            self.limits.call(
                "abort-multipart",
                lambda k=key, u=upload: self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=k, UploadId=u
                ),
            )
        return len(stale)


__all__ = ["BackendError", "LimitSettings", "S3Settings", "S3Store"]
