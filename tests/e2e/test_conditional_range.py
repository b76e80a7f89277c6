"""Conditional GET/HEAD/PUT and byte ranges, as S3 defines them, with boto3's default settings
over HTTP and HTTPS."""

from __future__ import annotations

import datetime as dt
import hashlib
import os

import pytest
from botocore.exceptions import ClientError

from tests.conftest import unique

MIB = 1024 * 1024
DAY = dt.timedelta(days=1)


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    resp = exc.value.response
    return resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"]


def status(resp: dict) -> int:
    return resp["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture
def obj(s3, bucket):
    """(key, body, etag, last_modified) of a fresh object."""
    key = unique("cond-")
    body = os.urandom(4096)
    etag = s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"]
    last_modified = s3.head_object(Bucket=bucket, Key=key)["LastModified"]
    return key, body, etag, last_modified


# -- conditional GET and HEAD -------------------------------------------------------------------


def outcome(s3, method: str, bucket: str, key: str, **conditions) -> int:
    """The status a conditional GET or HEAD gets: 200, 304 or 412."""
    call = s3.get_object if method == "GET" else s3.head_object
    try:
        resp = call(Bucket=bucket, Key=key, **conditions)
    except ClientError as e:
        code, st = e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
        if st == 412:
            assert code == ("PreconditionFailed" if method == "GET" else "412")
        elif st == 304:
            assert code == "304"
        else:
            raise
        return st
    if method == "GET":
        resp["Body"].read()
    return status(resp)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_single_conditions(s3, bucket, obj, method):
    key, _, etag, lm = obj
    cases = [
        ({"IfMatch": etag}, 200),
        ({"IfMatch": etag.strip('"')}, 200),  # unquoted is the same tag
        ({"IfMatch": '"0123456789abcdef0123456789abcdef"'}, 412),
        ({"IfMatch": "*"}, 200),
        ({"IfMatch": f'"nope", {etag}'}, 200),  # a list matches if any member does
        ({"IfNoneMatch": etag}, 304),
        ({"IfNoneMatch": '"0123456789abcdef0123456789abcdef"'}, 200),
        ({"IfNoneMatch": "*"}, 304),
        ({"IfModifiedSince": lm}, 304),
        ({"IfModifiedSince": lm - DAY}, 200),
        ({"IfModifiedSince": lm - dt.timedelta(seconds=1)}, 200),
        ({"IfUnmodifiedSince": lm}, 200),
        ({"IfUnmodifiedSince": lm + DAY}, 200),
        ({"IfUnmodifiedSince": lm - DAY}, 412),
        ({"IfUnmodifiedSince": lm - dt.timedelta(seconds=1)}, 412),
    ]
    got = [(conditions, outcome(s3, method, bucket, key, **conditions)) for conditions, _ in cases]
    assert got == cases


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_combined_conditions(s3, bucket, obj, method):
    key, _, etag, lm = obj
    other = '"0123456789abcdef0123456789abcdef"'
    cases = [
        # If-Match true and If-Unmodified-Since false: 200 (S3's documented rule).
        ({"IfMatch": etag, "IfUnmodifiedSince": lm - DAY}, 200),
        ({"IfMatch": other, "IfUnmodifiedSince": lm + DAY}, 412),
        # If-None-Match false and If-Modified-Since true: 304 (S3's documented rule).
        ({"IfNoneMatch": etag, "IfModifiedSince": lm - DAY}, 304),
        # If-None-Match true: If-Modified-Since is not evaluated (RFC 7232 section 6).
        ({"IfNoneMatch": other, "IfModifiedSince": lm}, 200),
        ({"IfNoneMatch": other, "IfModifiedSince": lm - DAY}, 200),
        # The If-Match family is evaluated first: 412 wins over 304.
        ({"IfMatch": other, "IfNoneMatch": etag}, 412),
        ({"IfUnmodifiedSince": lm - DAY, "IfModifiedSince": lm}, 412),
        ({"IfMatch": etag, "IfNoneMatch": etag}, 304),
        ({"IfMatch": etag, "IfNoneMatch": other}, 200),
        ({"IfUnmodifiedSince": lm, "IfModifiedSince": lm}, 304),
        ({"IfUnmodifiedSince": lm, "IfModifiedSince": lm - DAY}, 200),
    ]
    got = [(conditions, outcome(s3, method, bucket, key, **conditions)) for conditions, _ in cases]
    assert got == cases


def test_not_modified_response(s3, bucket, obj):
    key, _, etag, _ = obj
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=key, IfNoneMatch=etag)
    assert error_of(exc) == ("304", 304)
    headers = exc.value.response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["etag"] == etag
    assert headers.get("content-length", "0") == "0"


def test_precondition_failed_response(s3, bucket, obj):
    key, _, _, _ = obj
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=key, IfMatch='"ffffffffffffffffffffffffffffffff"')
    assert error_of(exc) == ("PreconditionFailed", 412)
    assert exc.value.response["Error"]["Condition"] == "If-Match"


def test_unparseable_date_is_ignored(s3, bucket, obj):
    key, body, _, _ = obj

    def garbage(request, **_):
        request.headers["If-Modified-Since"] = "not a date"
        request.headers["If-Unmodified-Since"] = "yesterday-ish"

    s3.meta.events.register("before-sign.s3.GetObject", garbage)
    got = s3.get_object(Bucket=bucket, Key=key)
    assert status(got) == 200
    assert got["Body"].read() == body


def test_conditions_on_missing_key(s3, bucket):
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=unique("absent-"), IfMatch="*")
    assert error_of(exc) == ("NoSuchKey", 404)


# -- conditional PUT ----------------------------------------------------------------------------


def test_put_if_none_match_star(s3, bucket):
    key = unique("create-only-")
    first = s3.put_object(Bucket=bucket, Key=key, Body=b"first", IfNoneMatch="*")
    assert status(first) == 200
    assert first["ETag"] == f'"{hashlib.md5(b"first").hexdigest()}"'
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key=key, Body=b"second", IfNoneMatch="*")
    assert error_of(exc) == ("PreconditionFailed", 412)
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == b"first"
    assert got["ETag"] == first["ETag"]
    # Once the key is gone, the create succeeds again.
    s3.delete_object(Bucket=bucket, Key=key)
    s3.put_object(Bucket=bucket, Key=key, Body=b"third", IfNoneMatch="*")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"third"


def test_put_if_match(s3, bucket):
    key = unique("cas-")
    v1 = s3.put_object(Bucket=bucket, Key=key, Body=b"v1")["ETag"]
    v2 = s3.put_object(Bucket=bucket, Key=key, Body=b"v2", IfMatch=v1)["ETag"]
    assert v2 == f'"{hashlib.md5(b"v2").hexdigest()}"'
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"v2"
    # A stale tag fails and changes nothing.
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key=key, Body=b"v3", IfMatch=v1)
    assert error_of(exc) == ("PreconditionFailed", 412)
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == b"v2"
    assert got["ETag"] == v2
    # If-Match on a key that does not exist: NoSuchKey.
    missing = unique("cas-missing-")
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key=missing, Body=b"x", IfMatch=v1)
    assert error_of(exc) == ("NoSuchKey", 404)
    assert s3.list_objects_v2(Bucket=bucket, Prefix=missing)["KeyCount"] == 0


# -- ranges -------------------------------------------------------------------------------------


@pytest.fixture
def three_mib(s3, bucket):
    key = unique("range-")
    body = os.urandom(3 * MIB)
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return key, body


def ranged(s3, bucket, key, header):
    resp = s3.get_object(Bucket=bucket, Key=key, Range=header)
    return resp, resp["Body"].read()


@pytest.mark.parametrize(
    "header, start, end",
    [
        ("bytes=0-0", 0, 1),
        ("bytes=0-99", 0, 100),
        ("bytes=1048575-1048576", MIB - 1, MIB + 1),  # straddles the first block boundary
        ("bytes=1048576-2097151", MIB, 2 * MIB),  # exactly the second block
        ("bytes=1000000-2200000", 1_000_000, 2_200_001),  # crosses two boundaries
        ("bytes=1-3145726", 1, 3 * MIB - 1),  # all but the first and last bytes
        ("bytes=2097152-", 2 * MIB, 3 * MIB),  # open-ended, from a boundary
        ("bytes=1048577-", MIB + 1, 3 * MIB),
        ("bytes=-1", 3 * MIB - 1, 3 * MIB),  # suffix
        ("bytes=-1048577", 2 * MIB - 1, 3 * MIB),
        ("bytes=3145727-3145727", 3 * MIB - 1, 3 * MIB),  # the last byte
        ("bytes=3000000-99999999", 3_000_000, 3 * MIB),  # end past the object clamps
        ("bytes=-99999999", 0, 3 * MIB),  # suffix longer than the object: all of it
        ("bytes=0-", 0, 3 * MIB),
    ],
)
def test_range_get(s3, bucket, three_mib, header, start, end):
    key, body = three_mib
    size = len(body)
    resp, data = ranged(s3, bucket, key, header)
    assert status(resp) == 206
    assert resp["ContentRange"] == f"bytes {start}-{end - 1}/{size}"
    assert resp["ContentLength"] == end - start
    assert len(data) == end - start
    assert data == body[start:end]
    assert resp["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    assert resp["AcceptRanges"] == "bytes"


def test_range_head(s3, bucket, three_mib):
    key, body = three_mib
    head = s3.head_object(Bucket=bucket, Key=key, Range="bytes=100-199")
    assert status(head) == 206
    assert head["ContentLength"] == 100
    assert head["ContentRange"] == f"bytes 100-199/{len(body)}"


@pytest.mark.parametrize("header", ["bytes=3145728-", "bytes=3145728-3145730", "bytes=9999999-"])
def test_range_not_satisfiable(s3, bucket, three_mib, header):
    key, body = three_mib
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=key, Range=header)
    assert error_of(exc) == ("InvalidRange", 416)
    assert exc.value.response["ResponseMetadata"]["HTTPHeaders"]["content-range"] == (
        f"bytes */{len(body)}"
    )
    assert exc.value.response["Error"]["ActualObjectSize"] == str(len(body))


def test_range_on_empty_object_not_satisfiable(s3, bucket):
    key = unique("empty-range-")
    s3.put_object(Bucket=bucket, Key=key, Body=b"")
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-")
    assert error_of(exc) == ("InvalidRange", 416)
    assert exc.value.response["ResponseMetadata"]["HTTPHeaders"]["content-range"] == "bytes */0"


@pytest.mark.parametrize("header", ["bytes=5-2", "bytes=0-1,5-6", "items=0-5", "bytes=abc"])
def test_ranges_s3_ignores_return_whole_object(s3, bucket, header):
    key = unique("ignored-range-")
    body = b"0123456789" * 10
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    resp, data = ranged(s3, bucket, key, header)
    assert status(resp) == 200
    assert "ContentRange" not in resp
    assert data == body


def test_range_with_conditions(s3, bucket, three_mib):
    key, body = three_mib
    etag = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    resp = s3.get_object(Bucket=bucket, Key=key, Range="bytes=10-19", IfMatch=etag)
    assert status(resp) == 206
    assert resp["Body"].read() == body[10:20]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=key, Range="bytes=10-19", IfNoneMatch=etag)
    assert error_of(exc) == ("304", 304)


def test_range_with_checksum_mode_returns_no_whole_object_checksum(s3, bucket, three_mib):
    key, body = three_mib
    resp = s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-9", ChecksumMode="ENABLED")
    assert resp["Body"].read() == body[:10]
    assert not [k for k in resp if k.startswith("Checksum") and k != "ChecksumType"]


# -- partNumber ---------------------------------------------------------------------------------


def test_part_number_on_single_part_object(s3, bucket):
    key = unique("pn-single-")
    body = os.urandom(10_000)
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    resp = s3.get_object(Bucket=bucket, Key=key, PartNumber=1)
    assert status(resp) == 206
    assert resp["Body"].read() == body
    assert resp["ContentLength"] == len(body)
    assert resp["ContentRange"] == f"bytes 0-{len(body) - 1}/{len(body)}"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=key, PartNumber=2)
    assert error_of(exc) == ("InvalidPartNumber", 416)
    # A part and a range together are refused, as S3 does.
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=key, PartNumber=1, Range="bytes=0-9")
    assert error_of(exc) == ("InvalidRequest", 400)
    assert exc.value.response["Error"]["Message"] == (
        "Cannot specify both Range header and partNumber query parameter"
    )


def test_part_number_on_multipart_object(s3, bucket):
    key = unique("pn-multi-")
    parts = [os.urandom(5 * MIB), os.urandom(MIB + 7)]
    up = s3.create_multipart_upload(Bucket=bucket, Key=key)
    etags = [
        s3.upload_part(
            Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=i + 1, Body=part
        )["ETag"]
        for i, part in enumerate(parts)
    ]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"ETag": e, "PartNumber": i + 1} for i, e in enumerate(etags)]},
    )
    total = sum(len(p) for p in parts)
    first = s3.get_object(Bucket=bucket, Key=key, PartNumber=1)
    assert status(first) == 206
    assert first["ContentRange"] == f"bytes 0-{len(parts[0]) - 1}/{total}"
    assert first["PartsCount"] == 2
    assert first["Body"].read() == parts[0]
    second = s3.get_object(Bucket=bucket, Key=key, PartNumber=2)
    assert second["ContentRange"] == f"bytes {len(parts[0])}-{total - 1}/{total}"
    assert second["Body"].read() == parts[1]
    head = s3.head_object(Bucket=bucket, Key=key, PartNumber=2)
    assert head["ContentLength"] == len(parts[1])
    assert head["PartsCount"] == 2
    plain = s3.head_object(Bucket=bucket, Key=key)
    assert "PartsCount" not in plain, "S3 names the parts count only for part reads"
    # A range across the part boundary reads from both parts.
    resp, data = ranged(s3, bucket, key, f"bytes={5 * MIB - 10}-{5 * MIB + 9}")
    assert data == (parts[0] + parts[1])[5 * MIB - 10 : 5 * MIB + 10]
    assert resp["ContentRange"] == f"bytes {5 * MIB - 10}-{5 * MIB + 9}/{total}"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=key, PartNumber=3)
    assert error_of(exc) == ("InvalidPartNumber", 416)
