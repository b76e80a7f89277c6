"""The presigned-URL verification cache must never accept what a full check would refuse:
an expired URL, an added unsigned x-amz-* header, a different query or a deleted user."""

from __future__ import annotations

import time

import requests

from tests.conftest import unique


def _v4(server):
    return server.client(signature_version="s3v4")


def test_cached_url_still_expires(http_server):
    s3 = _v4(http_server)
    bucket = unique("pcache")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"cached")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=2
    )
    # Several hits on both workers: the result is cached wherever it landed.
    for _ in range(6):
        assert requests.get(url, timeout=5).content == b"cached"
    time.sleep(3.2)
    r = requests.get(url, timeout=5)
    assert r.status_code == 403 and b"AccessDenied" in r.content


def test_cached_url_with_added_amz_header_gets_full_check(http_server):
    s3 = _v4(http_server)
    bucket = unique("pcache")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    for _ in range(4):
        assert requests.get(url, timeout=5).status_code == 200
    r = requests.get(url, headers={"x-amz-meta-injected": "1"}, timeout=5)
    assert r.status_code == 403, r.text
    tampered = url.replace("X-Amz-Expires=3600", "X-Amz-Expires=3601")
    assert requests.get(tampered, timeout=5).status_code == 403
