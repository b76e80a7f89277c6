"""Which presigned requests the verification cache may remember (holdfast/s3/presign_cache.py):
downloads only, and never one carrying an x-amz-* header or an Authorization header."""

from __future__ import annotations

import pytest

from holdfast.s3.http import Request
from holdfast.s3.presign_cache import PresignedCache

QUERY = {
    "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
    "X-Amz-SignedHeaders": "host",
    "X-Amz-Signature": "0" * 64,
    "X-Amz-Expires": "3600",
}


def _request(method: str, headers: dict[str, str] | None = None) -> Request:
    return Request(
        method=method,
        raw_path="/b/k",
        raw_query="X-Amz-Signature=" + "0" * 64,
        query=dict(QUERY),
        headers={"host": "127.0.0.1:9000", **(headers or {})},
        receive=None,  # type: ignore[arg-type]
        request_id="R",
    )


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_downloads_are_cached(method: str) -> None:
    assert PresignedCache().key(_request(method)) is not None


@pytest.mark.parametrize("method", ["PUT", "POST", "DELETE"])
def test_writes_are_always_checked_in_full(method: str) -> None:
    assert PresignedCache().key(_request(method)) is None


@pytest.mark.parametrize(
    "headers", [{"x-amz-meta-a": "1"}, {"authorization": "AWS4-HMAC-SHA256 ..."}]
)
def test_requests_with_amz_or_authorization_headers_are_not_cached(headers) -> None:
    assert PresignedCache().key(_request("GET", headers)) is None
    assert PresignedCache(size=0).key(_request("GET")) is None


def test_long_paths_and_queries_are_not_kept_as_keys() -> None:
    long_query = _request("GET")
    long_query.raw_query += "&pad=" + "x" * 4096
    long_path = _request("GET")
    long_path.raw_path = "/b/" + "%41" * 2000
    assert PresignedCache().key(long_query) is None
    assert PresignedCache().key(long_path) is None
