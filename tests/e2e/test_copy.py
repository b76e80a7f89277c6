"""CopyObject with boto3's default settings over HTTP and HTTPS: metadata directives, copy onto
itself, x-amz-copy-source-if-*, multipart sources, encoded keys and ownership."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os

import pytest
from botocore.exceptions import ClientError

from tests.conftest import unique
from tests.e2e.test_buckets import add_user

MIB = 1024 * 1024
DAY = dt.timedelta(days=1)


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    resp = exc.value.response
    return resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"]


def md5_etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


@pytest.fixture
def source(s3, bucket):
    """(key, body, etag, last_modified) of an object with every kind of stored attribute."""
    key = unique("src/")
    body = os.urandom(200_000)
    etag = s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        Metadata={"origin": "source", "Mixed-Case": "Value"},
        ContentType="text/x-source",
        ContentEncoding="identity",
        ContentDisposition="inline; filename=src.txt",
        ContentLanguage="de",
        CacheControl="private, max-age=60",
        Expires=dt.datetime(2030, 5, 6, 7, 8, 9, tzinfo=dt.UTC),
    )["ETag"]
    last_modified = s3.head_object(Bucket=bucket, Key=key)["LastModified"]
    return key, body, etag, last_modified


def test_copy_directive_copy_keeps_metadata(s3, bucket, source):
    key, body, etag, _ = source
    dest = unique("dst/")
    resp = s3.copy_object(Bucket=bucket, Key=dest, CopySource={"Bucket": bucket, "Key": key})
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert resp["CopyObjectResult"]["ETag"] == etag == md5_etag(body)
    now = dt.datetime.now(dt.UTC)
    assert now - dt.timedelta(minutes=1) < resp["CopyObjectResult"]["LastModified"] <= now + DAY

    got = s3.get_object(Bucket=bucket, Key=dest)
    assert got["Body"].read() == body
    assert got["ETag"] == etag
    assert got["Metadata"] == {"origin": "source", "mixed-case": "Value"}
    assert got["ContentType"] == "text/x-source"
    assert got["ContentEncoding"] == "identity"
    assert got["ContentDisposition"] == "inline; filename=src.txt"
    assert got["ContentLanguage"] == "de"
    assert got["CacheControl"] == "private, max-age=60"
    assert got["ExpiresString"] == "Mon, 06 May 2030 07:08:09 GMT"
    # The source is untouched.
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body


def test_copy_explicit_copy_directive_ignores_request_metadata(s3, bucket, source):
    key, body, _, _ = source
    dest = unique("dst/")
    s3.copy_object(
        Bucket=bucket,
        Key=dest,
        CopySource={"Bucket": bucket, "Key": key},
        MetadataDirective="COPY",
        Metadata={"ignored": "yes"},
        ContentType="application/ignored",
    )
    head = s3.head_object(Bucket=bucket, Key=dest)
    assert head["Metadata"] == {"origin": "source", "mixed-case": "Value"}
    assert head["ContentType"] == "text/x-source"


def test_copy_directive_replace(s3, bucket, source):
    key, body, _, _ = source
    dest = unique("dst/")
    s3.copy_object(
        Bucket=bucket,
        Key=dest,
        CopySource={"Bucket": bucket, "Key": key},
        MetadataDirective="REPLACE",
        Metadata={"fresh": "1"},
        ContentType="application/x-new",
        CacheControl="no-store",
    )
    got = s3.get_object(Bucket=bucket, Key=dest)
    assert got["Body"].read() == body
    assert got["ETag"] == md5_etag(body)
    assert got["Metadata"] == {"fresh": "1"}
    assert got["ContentType"] == "application/x-new"
    assert got["CacheControl"] == "no-store"
    for gone in ("ContentEncoding", "ContentDisposition", "ContentLanguage", "ExpiresString"):
        assert gone not in got, gone


def test_copy_replace_without_content_type_gets_default(s3, bucket, source):
    key, _, _, _ = source
    dest = unique("dst/")
    s3.copy_object(
        Bucket=bucket,
        Key=dest,
        CopySource={"Bucket": bucket, "Key": key},
        MetadataDirective="REPLACE",
    )
    head = s3.head_object(Bucket=bucket, Key=dest)
    assert head["Metadata"] == {}
    assert head["ContentType"] == "binary/octet-stream"


def test_copy_onto_itself(s3, bucket, source):
    key, body, etag, _ = source
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key})
    assert error_of(exc) == ("InvalidRequest", 400)
    with pytest.raises(ClientError) as exc:
        s3.copy_object(
            Bucket=bucket,
            Key=key,
            CopySource={"Bucket": bucket, "Key": key},
            MetadataDirective="COPY",
        )
    assert error_of(exc) == ("InvalidRequest", 400)
    assert s3.head_object(Bucket=bucket, Key=key)["Metadata"]["origin"] == "source"

    resp = s3.copy_object(
        Bucket=bucket,
        Key=key,
        CopySource={"Bucket": bucket, "Key": key},
        MetadataDirective="REPLACE",
        Metadata={"origin": "replaced"},
        ContentType="text/x-replaced",
    )
    assert resp["CopyObjectResult"]["ETag"] == etag
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == body
    assert got["Metadata"] == {"origin": "replaced"}
    assert got["ContentType"] == "text/x-replaced"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == [key]


def test_copy_between_buckets(s3, bucket, source):
    key, body, etag, _ = source
    target = f"t-{unique()}"
    s3.create_bucket(Bucket=target)
    resp = s3.copy_object(Bucket=target, Key=key, CopySource=f"{bucket}/{key}")
    assert resp["CopyObjectResult"]["ETag"] == etag
    assert s3.get_object(Bucket=target, Key=key)["Body"].read() == body


def test_copy_overwrites_destination(s3, bucket, source):
    key, body, etag, _ = source
    dest = unique("dst/")
    s3.put_object(Bucket=bucket, Key=dest, Body=b"old", Metadata={"old": "1"})
    s3.copy_object(Bucket=bucket, Key=dest, CopySource={"Bucket": bucket, "Key": key})
    got = s3.get_object(Bucket=bucket, Key=dest)
    assert got["Body"].read() == body
    assert got["ETag"] == etag
    assert "old" not in got["Metadata"]


# -- x-amz-copy-source-if-* ---------------------------------------------------------------------


def copy_status(s3, bucket, key, **conditions) -> int:
    dest = unique("cond-dst/")
    try:
        resp = s3.copy_object(
            Bucket=bucket, Key=dest, CopySource={"Bucket": bucket, "Key": key}, **conditions
        )
    except ClientError as e:
        assert e.response["Error"]["Code"] == "PreconditionFailed"
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 412
        assert s3.list_objects_v2(Bucket=bucket, Prefix=dest)["KeyCount"] == 0
        return 412
    assert s3.head_object(Bucket=bucket, Key=dest)["ETag"] == resp["CopyObjectResult"]["ETag"]
    return resp["ResponseMetadata"]["HTTPStatusCode"]


def test_copy_source_conditions(s3, bucket, source):
    key, _, etag, lm = source
    other = '"0123456789abcdef0123456789abcdef"'
    cases = [
        ({"CopySourceIfMatch": etag}, 200),
        ({"CopySourceIfMatch": other}, 412),
        ({"CopySourceIfNoneMatch": other}, 200),
        ({"CopySourceIfNoneMatch": etag}, 412),
        ({"CopySourceIfModifiedSince": lm - DAY}, 200),
        ({"CopySourceIfModifiedSince": lm}, 412),
        ({"CopySourceIfUnmodifiedSince": lm}, 200),
        ({"CopySourceIfUnmodifiedSince": lm - DAY}, 412),
        # S3's documented pairs: if-match true with if-unmodified-since false copies;
        ({"CopySourceIfMatch": etag, "CopySourceIfUnmodifiedSince": lm - DAY}, 200),
        # if-none-match false with if-modified-since true fails.
        ({"CopySourceIfNoneMatch": etag, "CopySourceIfModifiedSince": lm - DAY}, 412),
        ({"CopySourceIfMatch": other, "CopySourceIfUnmodifiedSince": lm}, 412),
        ({"CopySourceIfMatch": etag, "CopySourceIfNoneMatch": other}, 200),
    ]
    got = [(conditions, copy_status(s3, bucket, key, **conditions)) for conditions, _ in cases]
    assert got == cases


# -- sources ------------------------------------------------------------------------------------


def test_copy_of_multipart_object(s3, bucket):
    key = unique("mp-src/")
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(123_457)]
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, Metadata={"from": "multipart"})
    etags = [
        s3.upload_part(
            Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=i + 1, Body=part
        )["ETag"]
        for i, part in enumerate(parts)
    ]
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"ETag": e, "PartNumber": i + 1} for i, e in enumerate(etags)]},
    )
    assert done["ETag"].endswith('-3"')
    body = b"".join(parts)

    dest = unique("mp-dst/")
    resp = s3.copy_object(Bucket=bucket, Key=dest, CopySource={"Bucket": bucket, "Key": key})
    # A copy is written as one new object: its ETag is the MD5 of the whole body.
    assert resp["CopyObjectResult"]["ETag"] == md5_etag(body)
    got = s3.get_object(Bucket=bucket, Key=dest)
    assert got["ContentLength"] == len(body)
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(body).digest()
    assert got["Metadata"] == {"from": "multipart"}
    assert "PartsCount" not in s3.head_object(Bucket=bucket, Key=dest, PartNumber=1)


def test_copy_keeps_checksum_algorithm(s3, bucket):
    key = unique("ck-src/")
    body = os.urandom(50_000)
    s3.put_object(Bucket=bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256")
    dest = unique("ck-dst/")
    resp = s3.copy_object(Bucket=bucket, Key=dest, CopySource={"Bucket": bucket, "Key": key})
    sha = base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert resp["CopyObjectResult"]["ChecksumSHA256"] == sha
    head = s3.head_object(Bucket=bucket, Key=dest, ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == sha


@pytest.mark.parametrize(
    "key",
    [
        "dir with spaces/file name.txt",
        "ünïcødé/日本語 ファイル/😀.bin",
        "plus+percent%25 and%20literal&amp;?query=1#frag",
        "/leading/../dots/./x",
    ],
    ids=["spaces", "unicode", "reserved", "dots"],
)
def test_copy_with_encoded_source_key(s3, bucket, key):
    body = key.encode() * 3
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    dest = key + " (copy ✓)"
    s3.copy_object(Bucket=bucket, Key=dest, CopySource={"Bucket": bucket, "Key": key})
    assert s3.get_object(Bucket=bucket, Key=dest)["Body"].read() == body
    # The string form names the same object (botocore URL-encodes it).
    dest2 = key + " (copy 2)"
    s3.copy_object(Bucket=bucket, Key=dest2, CopySource=f"{bucket}/{key}")
    assert s3.get_object(Bucket=bucket, Key=dest2)["Body"].read() == body
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {key, dest, dest2}


def test_copy_missing_source(s3, bucket):
    with pytest.raises(ClientError) as exc:
        s3.copy_object(
            Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": unique("absent-")}
        )
    assert error_of(exc) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as exc:
        s3.copy_object(
            Bucket=bucket, Key="dst", CopySource={"Bucket": f"nb-{unique()}", "Key": "k"}
        )
    assert error_of(exc) == ("NoSuchBucket", 404)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_copy_with_invalid_directive(s3, bucket, source):
    key, _, _, _ = source

    def bad_directive(request, **_):
        request.headers["x-amz-metadata-directive"] = "MERGE"

    s3.meta.events.register("before-sign.s3.CopyObject", bad_directive)
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key=unique(), CopySource={"Bucket": bucket, "Key": key})
    assert error_of(exc) == ("InvalidArgument", 400)


# -- ownership ----------------------------------------------------------------------------------


def test_copy_across_users_is_denied(server, s3, bucket, source):
    key, body, _, _ = source
    other = server.client(*add_user(server, f"other-{server.port}"))
    theirs = f"o-{unique()}"
    other.create_bucket(Bucket=theirs)
    other.put_object(Bucket=theirs, Key="their-key", Body=b"theirs")

    # Reading another user's object through a copy into one's own bucket.
    with pytest.raises(ClientError) as exc:
        s3.copy_object(
            Bucket=bucket, Key="stolen", CopySource={"Bucket": theirs, "Key": "their-key"}
        )
    assert error_of(exc) == ("AccessDenied", 403)
    # Writing one's object into another user's bucket.
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=theirs, Key="planted", CopySource={"Bucket": bucket, "Key": key})
    assert error_of(exc) == ("AccessDenied", 403)
    # And the other way round.
    with pytest.raises(ClientError) as exc:
        other.copy_object(Bucket=theirs, Key="stolen", CopySource={"Bucket": bucket, "Key": key})
    assert error_of(exc) == ("AccessDenied", 403)

    assert [o["Key"] for o in other.list_objects_v2(Bucket=theirs)["Contents"]] == ["their-key"]
    assert "stolen" not in {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}


def test_copy_destination_conditions(s3, bucket, source):
    """If-None-Match: * and If-Match on a copy are conditions on the destination, as on PUT."""
    key, body, etag, _ = source
    src = {"Bucket": bucket, "Key": key}
    fresh = unique("dst-new/")
    s3.copy_object(Bucket=bucket, Key=fresh, CopySource=src, IfNoneMatch="*")
    assert s3.get_object(Bucket=bucket, Key=fresh)["Body"].read() == body

    existing = unique("dst-old/")
    old_etag = s3.put_object(Bucket=bucket, Key=existing, Body=b"old")["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key=existing, CopySource=src, IfNoneMatch="*")
    assert error_of(exc) == ("PreconditionFailed", 412)
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key=existing, CopySource=src, IfMatch=etag)
    assert error_of(exc) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key=existing)["Body"].read() == b"old"

    s3.copy_object(Bucket=bucket, Key=existing, CopySource=src, IfMatch=old_etag)
    assert s3.get_object(Bucket=bucket, Key=existing)["Body"].read() == body

    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key=unique("dst-none/"), CopySource=src, IfMatch=etag)
    assert error_of(exc) == ("NoSuchKey", 404)


def test_copy_of_empty_object(s3, bucket):
    key = unique("empty-src-")
    s3.put_object(Bucket=bucket, Key=key, Body=b"")
    dest = unique("empty-dst-")
    resp = s3.copy_object(Bucket=bucket, Key=dest, CopySource={"Bucket": bucket, "Key": key})
    assert resp["CopyObjectResult"]["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'
    got = s3.get_object(Bucket=bucket, Key=dest)
    assert got["ContentLength"] == 0
    assert got["Body"].read() == b""
