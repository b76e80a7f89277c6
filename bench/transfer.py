"""Small, cheap HTTP client pieces for what wrk cannot do well.

Used for populating buckets, listing, and large streaming transfers. Every
request goes through a presigned URL and http.client with a persistent
connection per thread: no SDK parsing, checksumming or retries, so the client
costs little and costs the same for every server.
"""

from __future__ import annotations

import http.client
import re
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

from loadgen import Presigner

_local = threading.local()
READ_CHUNK = 1 << 20


class HttpError(RuntimeError):
    """A request that did not get the status we needed."""


def _conn(netloc: str) -> tuple[http.client.HTTPConnection, bool]:
    """This thread's connection to netloc, and whether it was used before."""
    conns = _local.__dict__.setdefault("conns", {})
    reused = netloc in conns
    if not reused:
        conns[netloc] = http.client.HTTPConnection(netloc, timeout=120)
    return conns[netloc], reused


def _drop(netloc: str) -> None:
    conn = _local.__dict__.get("conns", {}).pop(netloc, None)
    if conn:
        conn.close()


STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


def request(
    method: str,
    url: str,
    body: bytes | Sequence[bytes | memoryview] | None = None,
    length: int | None = None,
    into: memoryview | None = None,
    reuse: bool = False,
) -> tuple[int, dict[str, str], bytes | int]:
    """One request on this thread's keep-alive connection.

    A server may close an idle keep-alive connection at any time; if a reused
    connection turns out closed, the request is sent once more on a new one
    (bodies are bytes or lists of buffers, so they can be sent again).
    With `into`, the response body is read into that buffer and the byte count
    is returned instead of the bytes, so large GETs allocate nothing. With
    `reuse`, the buffer is overwritten over and over (the content is dropped).
    """
    parts = urlsplit(url)
    target = f"{parts.path}?{parts.query}"
    headers = {"Content-Length": str(length)} if length is not None else {}
    while True:
        conn, reused = _conn(parts.netloc)
        try:
            conn.request(method, target, body=body, headers=headers)
            resp = conn.getresponse()
            break
        except STALE:
            _drop(parts.netloc)
            if not reused:
                raise
        except (OSError, http.client.HTTPException):
            _drop(parts.netloc)
            raise
    try:
        got: bytes | int = _read_into(resp, into, reuse) if into is not None else resp.read()
    except (OSError, http.client.HTTPException):
        _drop(parts.netloc)  # never retried: a body cut short is a real failure
        raise
    if resp.will_close:
        _drop(parts.netloc)
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, got


def _read_into(resp: http.client.HTTPResponse, buf: memoryview, reuse: bool) -> int:
    n = 0
    if reuse:
        while got := resp.readinto(buf):
            n += got
        return n
    while True:
        got = resp.readinto(buf[n : n + READ_CHUNK]) if n < len(buf) else 0
        if not got:
            rest = resp.read()  # anything beyond the buffer means a wrong length
            return n + len(rest)
        n += got


def expect(status: int, ok: Sequence[int], what: str, body: bytes | int = b"") -> None:
    if status not in ok:
        detail = body[:300] if isinstance(body, bytes) else b""
        raise HttpError(f"{what}: HTTP {status} {detail!r}")


def create_bucket(signer: Presigner, bucket: str) -> None:
    """Create a bucket; one that already exists is fine (we are the only user).

    rclone answers BucketAlreadyExists even for the caller's own bucket.
    """
    status, _, body = request("PUT", signer.url("PUT", bucket), b"", 0)
    if status == 409 and (b"BucketAlreadyOwnedByYou" in body or b"BucketAlreadyExists" in body):
        return
    expect(status, (200,), f"create bucket {bucket}", body)


def populate(
    signer: Presigner, bucket: str, keys: Sequence[str], size: int, connections: int
) -> None:
    """PUT `size`-byte objects at `keys` with a pool of persistent connections."""
    body = b"p" * size
    urls = [signer.url("PUT", bucket, key) for key in keys]

    def put(url: str) -> None:
        status, _, resp = put_retrying(url, body, size)
        expect(status, (200,), "populate PUT", resp)

    with ThreadPoolExecutor(connections) as pool:
        for _ in pool.map(put, urls):
            pass


RETRIES = 2
retried = Counter()  # PUTs retried after a 5xx, by workload code reading and resetting it
_retried_lock = threading.Lock()


def put_retrying(url: str, body, size: int) -> tuple[int, dict[str, str], bytes | int]:
    """PUT, retried a couple of times on a 5xx.

    Under CPU contention rclone sometimes answers 500 to a concurrent PUT; one
    such answer should not void a whole figure. Retries are counted so the
    figure can carry a note, and the time they take stays in the measurement.
    """
    for attempt in range(RETRIES + 1):
        status, headers, resp = request("PUT", url, body, size)
        if status < 500 or attempt == RETRIES:
            return status, headers, resp
        with _retried_lock:
            retried["put"] += 1
        time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


_TOKEN = re.compile(rb"<NextContinuationToken>([^<]*)</NextContinuationToken>")


def list_all(signer: Presigner, bucket: str, page: int) -> tuple[int, int]:
    """Walk a bucket with ListObjectsV2; return (pages, keys).

    Presigns each page as it goes (the token is only known then) and counts
    <Key> elements without a full XML parse, to keep the client cheap.
    """
    import html

    token, pages, keys = None, 0, 0
    while True:
        query = {"list-type": "2", "max-keys": str(page)}
        if token:
            query["continuation-token"] = token
        status, _, body = request("GET", signer.url("GET", bucket, query=query))
        expect(status, (200,), "ListObjectsV2", body)
        assert isinstance(body, bytes)
        pages += 1
        keys += body.count(b"<Key>")
        found = _TOKEN.search(body)
        if not found or b"<IsTruncated>true</IsTruncated>" not in body:
            return pages, keys
        token = html.unescape(found.group(1).decode())


@dataclass
class LargeObject:
    """A large payload made of a shared random prefix and a unique tail.

    Precomputing MD5 of the shared part once keeps setup cheap while every
    object still has distinct content to verify.
    """

    key: str
    chunks: list[memoryview]
    size: int
    md5: str


def put_stream(url: str, chunks: Sequence[memoryview], size: int) -> str:
    """Streaming PUT; returns the ETag without quotes."""
    status, headers, body = put_retrying(url, chunks, size)
    expect(status, (200,), "large PUT", body)
    return headers.get("etag", "").strip('"')


def get_into(url: str, buf: memoryview) -> int:
    """Streaming GET into a caller-owned buffer; returns the byte count."""
    status, _, got = request("GET", url, into=buf)
    expect(status, (200,), "large GET", got)
    assert isinstance(got, int)
    return got


def get_discard(url: str, scratch: memoryview) -> int:
    """Streaming GET that overwrites one scratch buffer; returns the byte count."""
    status, _, got = request("GET", url, into=scratch, reuse=True)
    expect(status, (200,), "large GET", got)
    assert isinstance(got, int)
    return got
