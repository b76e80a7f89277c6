"""The request and response shapes the S3 front works with, built from raw ASGI messages.

No web framework sits in between: the raw ASGI interface lets bodies stream in both
directions with no extra copies, and keeps per-request overhead to a dict and two dataclasses.
"""

from __future__ import annotations

import email.utils
import functools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC
from typing import TYPE_CHECKING, Any

from holdfast.caching import few_params, short_lru_cache
from holdfast.errors import S3Error
from holdfast.s3.auth import QUERY_CACHE_MAX_LEN
from holdfast.s3.auth import parse_query as auth_parse_query

if TYPE_CHECKING:
    from holdfast.index.records import BucketRecord, ObjectRecord

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Body = bytes | AsyncIterator[bytes]


@dataclass
class Request:
    method: str
    raw_path: str
    raw_query: str
    query: dict[str, str]
    headers: dict[str, str]
    receive: Receive
    request_id: str
    client: str = ""
    scheme: str = "http"
    bucket: str | None = None
    key: str | None = None
    access_key: str | None = None
    user: str | None = None
    # Set by the access decision (holdfast/s3/access.py): the bucket's owner, in whose name
    # the operation runs, and the decision's reason for the request log.
    owner: str | None = None
    source_owner: str | None = None
    decision: str | None = None
    cors: str | None = None  # the bucket's CORS rules, for the answer's CORS headers
    # The request bucket's configurations the object operations read (versioning, object
    # lock, lifecycle), fetched in the access decision's one read; None when not read.
    bucket_configs: dict[str, str] | None = None
    # The request bucket's row, from the same read (handlers need not read it again).
    bucket_record: BucketRecord | None = None
    # GET and HEAD of a current version: the object, read in that same statement
    # (Index.get_object_access); ``object_read`` tells "no such key" from "not read".
    object: ObjectRecord | None = None
    object_read: bool = False
    started: float = field(default_factory=time.monotonic)
    body_requested: bool = False  # set by the first receive(), which sends 100 Continue

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    def content_length(self) -> int | None:
        raw = self.headers.get("content-length")
        if raw is None:
            return None
        if not (raw.isascii() and raw.isdigit()):  # "²".isdigit() is True
            raise S3Error("InvalidArgument", "Content-Length is not a number")
        return int(raw)

    def expects_continue(self) -> bool:
        return "100-continue" in self.headers.get("expect", "").lower()

    def body_held_back(self) -> bool:
        """True when the client sent Expect: 100-continue and the body was never asked for.

        Such a client answers a final status by not sending its body at all, while the HTTP
        layer still expects Content-Length bytes: the next request on the connection would
        be swallowed as body. The response to this request must close the connection.
        """
        return not self.body_requested and self.expects_continue()

    @property
    def host(self) -> str:
        return self.headers.get("host", "")


# The ASGI scope extension through which the app cuts a response short after its headers went
# out (holdfast/server.py provides it): a callable taking no arguments.
ABORT_EXTENSION = "holdfast.abort"


@dataclass
class Response:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: Body = b""
    # Set when the body was cut short after the headers (no good copy of a block): the error
    # code the request log and the metrics record, as a 500, whatever status was sent.
    failure: str | None = None

    def add(self, name: str, value: str | None) -> Response:
        if value is not None:
            self.headers.append((name, value))
        return self


def parse_headers(raw: list[tuple[bytes, bytes]], limit: int) -> dict[str, str]:
    """Lower-case names; repeated headers joined with ',' as SigV4 canonicalisation wants.
    Oversized header sections are refused before anything else looks at them."""
    total = 0
    headers: dict[str, str] = {}
    for name_b, value_b in raw:
        total += len(name_b) + len(value_b) + 4
        if total > limit:
            raise S3Error("RequestHeaderSectionTooLarge", MaxSizeAllowed=str(limit))
        name = name_b.decode("latin-1").lower()
        value = value_b.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


def parse_query(raw_query: str) -> dict[str, str]:
    """Query parameters decoded exactly as the signature check decodes them; a name without
    '=' (a sub-resource such as ``?uploads``) maps to ''."""
    if not raw_query:
        return {}
    return dict(_parsed_query(raw_query))


@short_lru_cache(maxsize=4096, max_len=QUERY_CACHE_MAX_LEN, worth=few_params)
def _parsed_query(raw_query: str) -> tuple[tuple[str, str], ...]:
    """Presigned URLs repeat, and their queries are the longest part of a request line."""
    return tuple(auth_parse_query(raw_query))


def json_response(status: int, payload: object, extra: list | None = None) -> Response:
    """A JSON answer from the /_holdfast/ endpoints, the admin API and the console: never
    cached, anything not JSON-native (times, paths) rendered as text."""
    headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
    return Response(status, headers + (extra or []), json.dumps(payload, default=str).encode())


def http_date(epoch: float) -> str:
    return _http_date(int(epoch))


@functools.lru_cache(maxsize=4096)
def _http_date(seconds: int) -> str:
    """HTTP dates have whole seconds, and the same objects are read again and again."""
    return email.utils.formatdate(seconds, usegmt=True)


@functools.lru_cache(maxsize=4096)
def iso_second(seconds: int) -> str:
    """The whole-second part of an ISO 8601 time: objects written together share it, and a
    listing renders a thousand of them per page."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def iso8601(epoch: float) -> str:
    """Milliseconds of the time rounded to the microsecond (so 0.123, stored as
    0.12299999..., stays .123), kept within the second that ``http_date`` shows, so a
    listing, an XML result and the Last-Modified header never disagree about the second.
    Listing inlines the same steps (s3/ops/listing.py); a unit test holds them equal."""
    seconds = int(epoch)
    return f"{iso_second(seconds)}.{min(round((epoch - seconds) * 1e6), 999_999) // 1000:03d}Z"


def parse_http_date(value: str) -> float | None:
    try:
        dt = email.utils.parsedate_to_datetime(value)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
