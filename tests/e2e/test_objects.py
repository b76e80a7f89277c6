"""PutObject, GetObject, HeadObject, DeleteObject and DeleteObjects with boto3's default
settings over HTTP and HTTPS: bodies, ETags, stored headers, metadata, checksums and keys."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import zlib
from pathlib import Path

import crc32c
import pytest
from awscrt import checksums as crt_checksums
from botocore.exceptions import ClientError

from tests.conftest import start_server, unique


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    resp = exc.value.response
    return resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"]


def md5_etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def checksum_of(algorithm: str, data: bytes) -> str:
    """The base64 value S3 reports, computed with libraries Holdfast does not use for it."""
    if algorithm == "CRC32":
        return b64(zlib.crc32(data).to_bytes(4, "big"))
    if algorithm == "CRC32C":
        return b64(crc32c.crc32c(data).to_bytes(4, "big"))
    if algorithm == "CRC64NVME":
        return b64(crt_checksums.crc64nvme(data).to_bytes(8, "big"))
    if algorithm == "SHA1":
        return b64(hashlib.sha1(data).digest())
    if algorithm == "SHA256":
        return b64(hashlib.sha256(data).digest())
    raise AssertionError(algorithm)


# -- PUT / GET / HEAD / DELETE ------------------------------------------------------------------


def test_put_get_head_delete(s3, bucket):
    key = unique("obj/")
    body = os.urandom(70_001)
    put = s3.put_object(Bucket=bucket, Key=key, Body=body)
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert put["ETag"] == md5_etag(body)

    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert got["Body"].read() == body
    assert got["ETag"] == md5_etag(body)
    assert got["ContentLength"] == len(body)
    assert got["ContentType"] == "binary/octet-stream"
    assert got["AcceptRanges"] == "bytes"
    now = dt.datetime.now(dt.UTC)
    assert now - dt.timedelta(minutes=1) < got["LastModified"] <= now + dt.timedelta(seconds=2)
    assert got["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]

    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert head["ContentLength"] == len(body)
    assert head["ETag"] == md5_etag(body)
    assert head["LastModified"] == got["LastModified"]

    deleted = s3.delete_object(Bucket=bucket, Key=key)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=key)
    assert error_of(exc) == ("NoSuchKey", 404)
    assert exc.value.response["Error"]["Key"] == key
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key=key)
    assert error_of(exc) == ("404", 404)


def test_overwrite_replaces_body_and_attributes(s3, bucket):
    key = unique()
    s3.put_object(Bucket=bucket, Key=key, Body=b"first", Metadata={"a": "1"}, ContentType="x/one")
    put = s3.put_object(Bucket=bucket, Key=key, Body=b"second!")
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == b"second!"
    assert got["ETag"] == put["ETag"] == md5_etag(b"second!")
    assert got["Metadata"] == {}
    assert got["ContentType"] == "binary/octet-stream"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == [key]


def test_delete_missing_key_is_204(s3, bucket):
    resp = s3.delete_object(Bucket=bucket, Key=unique("never-existed-"))
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_missing_bucket(s3):
    name = f"nb-{unique()}"
    for call in (
        lambda: s3.get_object(Bucket=name, Key="k"),
        lambda: s3.delete_object(Bucket=name, Key="k"),
        lambda: s3.list_objects_v2(Bucket=name),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert error_of(exc) == ("NoSuchBucket", 404)
        assert exc.value.response["Error"]["BucketName"] == name
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=name, Key="k")
    assert error_of(exc) == ("404", 404)


def test_connection_usable_after_rejected_put(s3, bucket):
    """boto3 sends `Expect: 100-continue` with every PutObject. When the server answers with
    a final status before reading the body, the client never sends it, so the server must not
    keep reading that connection as if the body were coming: the next request on it has to
    work."""
    for _ in range(3):
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=f"nb-{unique()}", Key="k", Body=b"0123456789")
        assert error_of(exc) == ("NoSuchBucket", 404)
        assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k" * 1025, Body=b"0123456789")
    assert error_of(exc) == ("KeyTooLongError", 400)
    key = unique()
    s3.put_object(Bucket=bucket, Key=key, Body=b"after")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"after"


def test_empty_object(s3, bucket):
    key = unique("empty-")
    put = s3.put_object(Bucket=bucket, Key=key, Body=b"")
    assert put["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == b""
    assert got["ContentLength"] == 0
    assert got["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == 0
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [(key, 0)]


def test_put_without_body(s3, bucket):
    key = unique("nobody-")
    s3.put_object(Bucket=bucket, Key=key)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b""


def test_20_mib_object(s3, bucket):
    key = unique("big-")
    body = os.urandom(20 * 1024 * 1024 + 17)
    put = s3.put_object(Bucket=bucket, Key=key, Body=body)
    assert put["ETag"] == md5_etag(body)
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["ContentLength"] == len(body)
    data = got["Body"].read()
    assert len(data) == len(body)
    assert hashlib.sha256(data).digest() == hashlib.sha256(body).digest()
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(body)


def test_put_from_file_object(s3, bucket, tmp_path):
    path = tmp_path / "upload.bin"
    body = os.urandom(300_000)
    path.write_bytes(body)
    key = unique("file-")
    with path.open("rb") as f:
        put = s3.put_object(Bucket=bucket, Key=key, Body=f)
    assert put["ETag"] == md5_etag(body)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body


# -- stored headers and metadata ----------------------------------------------------------------


def test_metadata_and_standard_headers_are_kept(s3, bucket):
    key = unique("hdr-")
    expires = dt.datetime(2031, 2, 3, 4, 5, 6, tzinfo=dt.UTC)
    body = b"\x1f\x8b fake gzip"
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        Metadata={"Color": "blue", "multi-word-name": "a value, with: punctuation", "n": "1"},
        ContentType="application/x-holdfast; charset=utf-8",
        ContentEncoding="gzip",
        ContentDisposition='attachment; filename="report 1.csv"',
        ContentLanguage="en-GB",
        CacheControl="max-age=3600, must-revalidate",
        Expires=expires,
    )
    for resp in (
        s3.get_object(Bucket=bucket, Key=key),
        s3.head_object(Bucket=bucket, Key=key),
    ):
        assert resp["Metadata"] == {
            "color": "blue",
            "multi-word-name": "a value, with: punctuation",
            "n": "1",
        }
        assert resp["ContentType"] == "application/x-holdfast; charset=utf-8"
        assert resp["ContentEncoding"] == "gzip"
        assert resp["ContentDisposition"] == 'attachment; filename="report 1.csv"'
        assert resp["ContentLanguage"] == "en-GB"
        assert resp["CacheControl"] == "max-age=3600, must-revalidate"
        assert resp["ExpiresString"] == "Mon, 03 Feb 2031 04:05:06 GMT"
        assert resp["Expires"] == expires
        assert resp["ContentLength"] == len(body)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body


def test_aws_chunked_is_not_a_stored_content_encoding(s3, bucket):
    """Over HTTPS boto3 sends `Content-Encoding: aws-chunked`; that framing must not be
    stored. A real coding sent next to it is kept alone."""
    plain, coded = unique("plain-"), unique("coded-")
    s3.put_object(Bucket=bucket, Key=plain, Body=b"p" * 100)
    s3.put_object(Bucket=bucket, Key=coded, Body=b"c" * 100, ContentEncoding="br")
    assert "ContentEncoding" not in s3.head_object(Bucket=bucket, Key=plain)
    assert s3.head_object(Bucket=bucket, Key=coded)["ContentEncoding"] == "br"


def test_metadata_too_large(s3, bucket):
    key = unique()
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x", Metadata={"big": "v" * 2100})
    assert error_of(exc) == ("MetadataTooLarge", 400)


def test_response_overrides_on_get(s3, bucket):
    key = unique("ovr-")
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=b"body",
        ContentType="text/plain",
        CacheControl="no-cache",
        ContentDisposition="inline",
    )
    got = s3.get_object(
        Bucket=bucket,
        Key=key,
        ResponseContentType="application/json",
        ResponseContentLanguage="fr",
        ResponseExpires=dt.datetime(2032, 1, 1, tzinfo=dt.UTC),
        ResponseCacheControl="max-age=1",
        ResponseContentDisposition='attachment; filename="x y.json"',
        ResponseContentEncoding="identity",
    )
    assert got["Body"].read() == b"body"
    headers = got["ResponseMetadata"]["HTTPHeaders"]
    assert headers["content-type"] == "application/json"
    assert headers["content-language"] == "fr"
    assert headers["expires"] == "Thu, 01 Jan 2032 00:00:00 GMT"
    assert headers["cache-control"] == "max-age=1"
    assert headers["content-disposition"] == 'attachment; filename="x y.json"'
    assert headers["content-encoding"] == "identity"
    # The overrides change the response, never the object.
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentType"] == "text/plain"
    assert head["CacheControl"] == "no-cache"
    assert head["ContentDisposition"] == "inline"
    assert "ContentLanguage" not in head


# -- checksums ----------------------------------------------------------------------------------

ALGORITHMS = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_checksum_algorithm_is_stored_and_returned(s3, bucket, algorithm):
    key = unique(f"ck-{algorithm}-")
    body = os.urandom(1024 * 1024 + 123)
    expected = checksum_of(algorithm, body)
    put = s3.put_object(Bucket=bucket, Key=key, Body=body, ChecksumAlgorithm=algorithm)
    assert put[f"Checksum{algorithm}"] == expected
    assert put["ChecksumType"] == "FULL_OBJECT"
    assert put["ETag"] == md5_etag(body)

    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert got[f"Checksum{algorithm}"] == expected
    assert got["ChecksumType"] == "FULL_OBJECT"
    assert got["Body"].read() == body
    others = [f"Checksum{a}" for a in ALGORITHMS if a != algorithm]
    assert not [name for name in others if name in got]

    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == expected
    assert head["ChecksumType"] == "FULL_OBJECT"

    # Without the mode, no checksum is returned.
    plain = s3.head_object(Bucket=bucket, Key=key)
    assert not [name for name in ALGORITHMS if f"Checksum{name}" in plain]
    assert "x-amz-checksum-type" not in plain["ResponseMetadata"]["HTTPHeaders"]


def test_default_checksum_is_returned(s3, bucket):
    """boto3 sends a CRC32 by default; it is kept like any other."""
    key = unique("ck-default-")
    body = b"default checksum " * 1000
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == checksum_of("CRC32", body)


def test_checksum_of_empty_object(s3, bucket):
    key = unique("ck-empty-")
    s3.put_object(Bucket=bucket, Key=key, Body=b"", ChecksumAlgorithm="SHA256")
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == checksum_of("SHA256", b"")


# -- keys ---------------------------------------------------------------------------------------

STRANGE_KEYS = [
    "unicode/日本語/ключ/ñandú/😀.txt",
    "spaces in key/a  b   c .txt",
    "special/!@#$%^&*()_+-=[]{};',.<>?|`~\"\\.bin",
    "plus+and%20percent%2F%.txt",
    "question?mark#hash&amp=eq",
    "dots/../x",
    "../../etc/passwd",
    "..",
    ".",
    "./a",
    "a/./b/../c",
    "a//b///c",
    "/leading-slash",
    "//two-leading-slashes",
    "trailing/",
    "~tilde",
    "tab\there",
    "é" * 512,  # 1,024 bytes of UTF-8: the longest allowed key
    "x" * 1024,
]


@pytest.mark.parametrize("key", STRANGE_KEYS, ids=range(len(STRANGE_KEYS)))
def test_strange_keys_round_trip(s3, bucket, key):
    body = key.encode() + b"|body"
    put = s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata={"k": "v"})
    assert put["ETag"] == md5_etag(body)
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == body
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(body)
    listed = s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listed["Contents"]] == [key]
    s3.delete_object(Bucket=bucket, Key=key)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_similar_keys_are_distinct(s3, bucket):
    keys = ["a/b", "a//b", "/a/b", "a/b/", "a/./b", "a/../a/b", "A/b", "a/b "]
    for i, key in enumerate(keys):
        s3.put_object(Bucket=bucket, Key=key, Body=str(i).encode())
    for i, key in enumerate(keys):
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == str(i).encode()
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert listed == sorted(keys, key=lambda k: k.encode())


def test_key_too_long(s3, bucket):
    for key in ("x" * 1025, "é" * 512 + "x"):
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=bucket, Key=key, Body=b"nope")
        assert error_of(exc) == ("KeyTooLongError", 400)
        assert exc.value.response["Error"]["MaxSizeAllowed"] == "1024"
        assert exc.value.response["Error"]["Size"] == "1025"
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_keys_never_name_paths_outside_the_data_dir(server, s3, bucket):
    marker = unique("escape-marker-")
    keys = [
        f"../{marker}",
        f"../../{marker}",
        f"../../../../../../../../../../tmp/{marker}",
        f"/../../{marker}",
        f"..\\..\\{marker}",
        f"%2e%2e/%2e%2e/{marker}",
        f"{marker}/../../../../..",
        f"a/../../{marker}/x",
    ]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"escape attempt")
    for key in keys:
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"escape attempt"
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert listed == set(keys)

    data_dir = Path(server.data_dirs[0]).resolve()
    top = data_dir.parent.parent  # this test session's base temp directory
    for root in {top, Path("/tmp").resolve(), data_dir.parent}:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                assert marker not in name, f"a key became a path: {Path(dirpath) / name}"
    # Nor any path a naive join of any data-dir directory and a key would give.
    for dirpath, _, _ in os.walk(data_dir):
        for key in keys:
            path = os.path.normpath(os.path.join(dirpath, key))
            assert marker not in path or not os.path.lexists(path), path
    assert not os.path.lexists(f"/tmp/{marker}")


# -- DeleteObjects ------------------------------------------------------------------------------


def test_delete_objects_verbose(s3, bucket):
    keys = [f"d/{i:04d}" for i in range(10)] + ["d/spécial &<>\"' key"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    s3.put_object(Bucket=bucket, Key="keep", Body=b"kept")
    missing = "d/never-existed"
    resp = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": k} for k in [*keys, missing]]}
    )
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert sorted(d["Key"] for d in resp["Deleted"]) == sorted([*keys, missing])
    assert resp.get("Errors", []) == []
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert listed == ["keep"]


def test_delete_objects_quiet(s3, bucket):
    keys = [unique("q/") for _ in range(5)]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    resp = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
    )
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert "Deleted" not in resp
    assert "Errors" not in resp
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_delete_objects_thousand_keys(s3, bucket):
    keys = [f"many/{i:05d}" for i in range(1000)]
    # Make a few hundred of them real; the rest are deleted all the same.
    for key in keys[:: 1000 // 40]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    assert len(resp["Deleted"]) == 1000
    assert {d["Key"] for d in resp["Deleted"]} == set(keys)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_delete_objects_more_than_thousand_is_malformed(s3, bucket):
    s3.put_object(Bucket=bucket, Key="many/00000", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": f"many/{i:05d}"} for i in range(1001)]}
        )
    assert error_of(exc) == ("MalformedXML", 400)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 1


@pytest.mark.parametrize(
    "digest, error",
    [
        (lambda body: b64(hashlib.md5(body).digest()), None),
        (lambda body: b64(hashlib.md5(body + b" ").digest()), ("BadDigest", 400)),
        (lambda body: "not-a-digest", ("InvalidDigest", 400)),
    ],
    ids=["right", "wrong", "malformed"],
)
def test_delete_objects_content_md5(server, bucket, digest, error):
    # botocore retries BadDigest with backoff (seconds); one attempt says the same.
    s3 = server.client(retries={"total_max_attempts": 1})
    s3.put_object(Bucket=bucket, Key="victim", Body=b"x")

    def content_md5(request, **_):
        request.headers["Content-MD5"] = digest(request.body)

    s3.meta.events.register("before-sign.s3.DeleteObjects", content_md5)
    delete = {"Objects": [{"Key": "victim"}]}
    if error is None:
        resp = s3.delete_objects(Bucket=bucket, Delete=delete)
        assert [d["Key"] for d in resp["Deleted"]] == ["victim"]
        assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
        return
    with pytest.raises(ClientError) as exc:
        s3.delete_objects(Bucket=bucket, Delete=delete)
    assert error_of(exc) == error
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 1


def test_conditional_delete_is_not_silently_ignored(s3, bucket):
    """Conditional deletes are not implemented: they must answer NotImplemented, never delete
    unconditionally."""
    key = unique("cond-del-")
    s3.put_object(Bucket=bucket, Key=key, Body=b"keep me")
    for conditions in (
        {"IfMatch": '"0123456789abcdef0123456789abcdef"'},
        {"IfMatchSize": 1},
        {"IfMatchLastModifiedTime": dt.datetime(2000, 1, 1, tzinfo=dt.UTC)},
    ):
        with pytest.raises(ClientError) as exc:
            s3.delete_object(Bucket=bucket, Key=key, **conditions)
        assert error_of(exc) == ("NotImplemented", 501)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"keep me"


@pytest.mark.parametrize(
    "wrong",
    [
        {"ContentMD5": b64(hashlib.md5(b"something else").digest())},
        {"ChecksumCRC32C": b64(b"\0\0\0\0")},
        {"ChecksumSHA256": b64(hashlib.sha256(b"something else").digest())},
    ],
    ids=["content-md5", "crc32c", "sha256"],
)
def test_a_large_body_that_fails_its_digest_leaves_nothing_on_disk(tmp_path, wrong):
    """Invariant 3 for bodies that stream into a blob (not the inline path): the mismatch
    is found after every byte was written to a temporary file, and that file must go, with
    no blob and no index row left behind."""
    server = start_server(tmp_path, workers=1)
    try:
        s3 = server.client(retries={"max_attempts": 1})
        s3.create_bucket(Bucket="digests")
        drive = server.data_dirs[0] / "drive"
        before = {p for p in drive.rglob("*") if p.is_file()}
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket="digests", Key="big", Body=os.urandom(3 * 1024 * 1024), **wrong)
        assert error_of(e)[1] == 400, error_of(e)
        left = {p for p in drive.rglob("*") if p.is_file()} - before
        assert not left, f"the rejected body left {sorted(map(str, left))}"
        with pytest.raises(ClientError) as e:
            s3.head_object(Bucket="digests", Key="big")
        assert error_of(e)[1] == 404
    finally:
        server.stop()
