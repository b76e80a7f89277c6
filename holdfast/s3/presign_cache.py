"""Remembering presigned URLs that already verified.

A presigned URL is a bearer token: the same method, path, query and signed header values
verify the same way until the URL expires. Popular presigned links (an object embedded in a
web page, a download handed to many clients) are requested again and again, and the SigV4
check was the largest single cost of a small GET. This cache keeps the outcome of a
successful check, bounded in size, and re-checks on every hit what can change: the time
window and the user's current secret (so a disabled user or a rotated key stops working at
once). Requests carrying any x-amz-* header are never cached, so the rule that such headers
must be signed is always enforced by the full check.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from holdfast.consttime import same
from holdfast.s3.auth import MAX_SKEW_SECONDS, QUERY_CACHE_MAX_LEN, AuthResult, parse_amz_date
from holdfast.s3.http import Request

# A 1,024-byte key, every byte percent-encoded, plus the bucket: longer paths are not cached.
MAX_PATH_LEN = 4096
# Signed header values are part of the key (a URL signed with a header must come with it):
# beyond this much of them together, the request is verified each time.
MAX_SIGNED_VALUES_LEN = 1024
# What the entries may hold together, keys counted by length plus a fixed cost per entry (the
# AuthResult, the secret, the tuples and the dict slot: measured ~700 bytes). 4,096 typical
# entries (a ~450-character query, a short path) fit; long ones evict sooner.
MAX_BYTES = 8 * 1024 * 1024
ENTRY_OVERHEAD = 768


@dataclass(frozen=True)
class _Entry:
    auth: AuthResult
    secret: str
    valid_from: float
    valid_until: float
    cost: int


def _cost(key: tuple) -> int:
    method, path, query, values = key
    return ENTRY_OVERHEAD + len(path) + len(query) + sum(len(v) for v in values if v)


class PresignedCache:
    """At most ``size`` entries and ``max_bytes`` of them, least recently used out first."""

    def __init__(self, size: int = 4096, max_bytes: int = MAX_BYTES) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[tuple, _Entry] = OrderedDict()

    def key(self, request: Request) -> tuple | None:
        """The cache key of a SigV4 presigned request, or None if it must not be cached."""
        if self.size <= 0 or "X-Amz-Signature" not in request.query:
            return None
        # Reads only: the links shared and fetched over and over are downloads. A presigned
        # PUT is normally used once, and caching it would only push reads out of the cache.
        if request.method not in ("GET", "HEAD"):
            return None
        if "authorization" in request.headers:
            return None
        # Keys are kept: a long path or query (up to the 256 KiB head limit) is verified
        # each time rather than held by up to 4,096 entries (holdfast/caching.py).
        if len(request.raw_query) > QUERY_CACHE_MAX_LEN or len(request.raw_path) > MAX_PATH_LEN:
            return None
        if any(name.startswith("x-amz-") for name in request.headers):
            return None
        signed = request.query.get("X-Amz-SignedHeaders", "").split(";")
        values = tuple(request.headers.get(name) for name in signed)
        if sum(len(v) for v in values if v) > MAX_SIGNED_VALUES_LEN:
            return None
        return (request.method, request.raw_path, request.raw_query, values)

    def get(self, key: tuple, now: float, secret_for: Callable[[str], str | None]):
        entry = self._entries.get(key)
        if entry is None:
            return None
        secret = secret_for(entry.auth.access_key)
        fresh = entry.valid_from <= now <= entry.valid_until
        if not fresh or secret is None or not same(secret, entry.secret):
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry.auth

    def put(self, key: tuple, request: Request, auth: AuthResult, secret: str) -> None:
        signed = parse_amz_date(auth.amz_date)
        try:
            expires = int(request.query["X-Amz-Expires"])
        except (KeyError, ValueError):
            return
        if signed is None:
            return
        signed_at = signed.timestamp()
        self._drop(key)
        entry = _Entry(auth, secret, signed_at - MAX_SKEW_SECONDS, signed_at + expires, _cost(key))
        self._entries[key] = entry
        self.bytes += entry.cost
        while self._entries and (len(self._entries) > self.size or self.bytes > self.max_bytes):
            _, old = self._entries.popitem(last=False)
            self.bytes -= old.cost

    def _drop(self, key: tuple) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.bytes -= entry.cost
