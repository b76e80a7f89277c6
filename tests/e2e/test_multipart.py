"""Multipart uploads against a real server, with boto3's default settings, over HTTP and HTTPS.

Create, UploadPart, UploadPartCopy (ranges across 1 MiB block and part boundaries, invalid
ranges), Complete, Abort, ListParts, ListMultipartUploads; the multipart ETag; EntityTooSmall,
InvalidPart, InvalidPartOrder, NoSuchUpload, part-number limits; multipart checksums (COMPOSITE
and FULL_OBJECT, every algorithm) computed here independently; boto3's managed transfer.

Every expected ETag and checksum is computed in this file from the bytes sent, never read back
from the server.
"""

from __future__ import annotations

import base64
import hashlib
import random
import sqlite3
import zlib
from pathlib import Path

import pytest
from awscrt import checksums as crt
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from tests.conftest import Server, unique

KiB = 1024
MiB = 1024 * 1024
PART = 5 * MiB  # the smallest part that may be followed by another

_rng = random.Random(20240601)
_BLOB = _rng.randbytes(13 * MiB)


def data(size: int, seed: int = 0) -> bytes:
    """Deterministic, non-repeating-looking bytes, cheap to make."""
    start = (seed * 7919) % (len(_BLOB) - size) if size < len(_BLOB) else 0
    return _BLOB[start : start + size]


# -- independent computations ----------------------------------------------------------------


def md5_hex(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def multipart_etag(parts: list[bytes]) -> str:
    joined = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(joined).hexdigest()}-{len(parts)}"'


def raw_checksum(algorithm: str, b: bytes) -> bytes:
    if algorithm == "CRC32":
        return zlib.crc32(b).to_bytes(4, "big")
    if algorithm == "CRC32C":
        return crt.crc32c(b).to_bytes(4, "big")
    if algorithm == "CRC64NVME":
        return crt.crc64nvme(b).to_bytes(8, "big")
    if algorithm == "SHA1":
        return hashlib.sha1(b).digest()
    if algorithm == "SHA256":
        return hashlib.sha256(b).digest()
    raise AssertionError(algorithm)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def composite(algorithm: str, parts: list[bytes]) -> str:
    joined = b"".join(raw_checksum(algorithm, p) for p in parts)
    return f"{b64(raw_checksum(algorithm, joined))}-{len(parts)}"


def no_retry(server: Server):
    """A client that does not retry: botocore retries BadDigest, with back-off."""
    return server.client(retries={"total_max_attempts": 1})


def error_of(excinfo) -> tuple[str, int]:
    err = excinfo.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def test_reference_values():
    """The helpers above agree with published values, so the tests below test the server."""
    assert md5_hex(b"") == "d41d8cd98f00b204e9800998ecf8427e"
    assert b64(raw_checksum("CRC32", b"123456789")) == b64(bytes.fromhex("cbf43926"))
    assert b64(raw_checksum("CRC32C", b"123456789")) == b64(bytes.fromhex("e3069283"))
    assert raw_checksum("CRC64NVME", b"123456789").hex() == "ae8b14860a799888"
    assert multipart_etag([b""]) == f'"{hashlib.md5(hashlib.md5(b"").digest()).hexdigest()}-1"'


# -- helpers ---------------------------------------------------------------------------------


def upload(s3, bucket: str, key: str, parts: dict[int, bytes], **create) -> tuple[str, list]:
    """Create an upload and send ``parts``; returns (upload id, Complete's part list)."""
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, **create)["UploadId"]
    done = []
    for number, body in sorted(parts.items()):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body)
        assert r["ETag"] == f'"{md5_hex(body)}"'
        done.append({"PartNumber": number, "ETag": r["ETag"]})
    return upload_id, done


def complete(s3, bucket: str, key: str, upload_id: str, parts: list, **kw):
    return s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}, **kw
    )


def get(s3, bucket: str, key: str, **kw) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key, **kw)["Body"].read()


def upload_ids(s3, bucket: str, **kw) -> list[str]:
    return [
        u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket, **kw).get("Uploads", [])
    ]


# -- the basic path --------------------------------------------------------------------------


def test_create_upload_complete_get(s3, bucket):
    key = unique("mp/")
    p1, p2 = data(PART, 1), data(1234, 2)
    upload_id = s3.create_multipart_upload(
        Bucket=bucket,
        Key=key,
        ContentType="application/x-test",
        Metadata={"colour": "blue"},
        CacheControl="max-age=60",
    )["UploadId"]
    assert upload_id
    assert upload_id in upload_ids(s3, bucket)
    # Parts may arrive in any order.
    r2 = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=2, Body=p2)
    r1 = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=p1)
    assert (r1["ETag"], r2["ETag"]) == (f'"{md5_hex(p1)}"', f'"{md5_hex(p2)}"')

    # Not visible until completed.
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key=key)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert s3.list_objects_v2(Bucket=bucket, Prefix=key)["KeyCount"] == 0

    parts = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in parts] == [
        (1, r1["ETag"], PART),
        (2, r2["ETag"], 1234),
    ]

    done = complete(
        s3,
        bucket,
        key,
        upload_id,
        [{"PartNumber": 1, "ETag": r1["ETag"]}, {"PartNumber": 2, "ETag": r2["ETag"]}],
    )
    etag = multipart_etag([p1, p2])
    assert done["ETag"] == etag
    assert done["Bucket"] == bucket
    assert done["Key"] == key
    assert upload_id not in upload_ids(s3, bucket)

    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ETag"] == etag
    assert head["ContentLength"] == PART + 1234
    assert head["ContentType"] == "application/x-test"
    assert head["Metadata"] == {"colour": "blue"}
    assert head["CacheControl"] == "max-age=60"
    assert get(s3, bucket, key) == p1 + p2
    # A range across the boundary between the two parts.
    assert (
        get(s3, bucket, key, Range=f"bytes={PART - 10}-{PART + 9}")
        == (p1 + p2)[PART - 10 : PART + 10]
    )
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=key)["Contents"]
    assert [(o["Key"], o["ETag"], o["Size"]) for o in listed] == [(key, etag, PART + 1234)]


def test_unicode_key(s3, bucket):
    key = unique("mp/ü 😀 +%/")
    body = data(1000, 22)
    upload_id, parts = upload(s3, bucket, key, {1: body})
    [listed] = s3.list_multipart_uploads(Bucket=bucket, Prefix="mp/ü 😀")["Uploads"]
    assert (listed["Key"], listed["UploadId"]) == (key, upload_id)
    assert s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)["Key"] == key
    assert complete(s3, bucket, key, upload_id, parts)["Key"] == key
    assert get(s3, bucket, key) == body


def test_single_small_part_and_part_10000(s3, bucket):
    key = unique("mp/")
    body = data(777, 3)
    upload_id, parts = upload(s3, bucket, key, {10000: body})
    assert complete(s3, bucket, key, upload_id, parts)["ETag"] == multipart_etag([body])
    assert get(s3, bucket, key) == body


def test_rejected_part_leaves_the_connection_usable(s3, bucket):
    """boto3 sends UploadPart with Expect: 100-continue. A request refused before its body is
    read must not leave the connection out of step: the next request on it has to work."""
    key = unique("mp/")
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    for _ in range(3):
        with pytest.raises(ClientError) as e:
            s3.upload_part(Bucket=bucket, Key=key, UploadId="bogus", PartNumber=1, Body=b"x")
        assert error_of(e) == ("NoSuchUpload", 404)
        assert upload_ids(s3, bucket, Prefix=key) == [upload_id]


@pytest.mark.parametrize("number", [0, 10001, 99999, -1])
def test_part_number_out_of_range(s3, bucket, number):
    key = unique("mp/")
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=b"x")
    assert error_of(e) == ("InvalidArgument", 400)
    assert e.value.response["Error"].get("ArgumentValue") == str(number)
    assert s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id).get("Parts", []) == []


def test_reuploading_a_part_replaces_it_and_entity_too_small(s3, bucket):
    key = unique("mp/")
    small, tail = data(PART - 1, 4), data(10, 5)
    upload_id, parts = upload(s3, bucket, key, {1: small, 2: tail})
    with pytest.raises(ClientError) as e:
        complete(s3, bucket, key, upload_id, parts)
    assert error_of(e) == ("EntityTooSmall", 400)
    # A failed Complete leaves the upload as it was.
    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)["Parts"]
    assert [p["Size"] for p in listed] == [PART - 1, 10]

    exact = data(PART, 6)
    r = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=exact)
    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == [
        (1, f'"{md5_hex(exact)}"', PART),
        (2, f'"{md5_hex(tail)}"', 10),
    ]
    with pytest.raises(ClientError) as e:  # the replaced part's ETag is no longer valid
        complete(s3, bucket, key, upload_id, parts)
    assert error_of(e) == ("InvalidPart", 400)
    parts[0]["ETag"] = r["ETag"]
    assert complete(s3, bucket, key, upload_id, parts)["ETag"] == multipart_etag([exact, tail])
    assert get(s3, bucket, key) == exact + tail


def test_invalid_part_and_part_order(s3, bucket):
    key = unique("mp/")
    p1, p2 = data(PART, 7), data(100, 8)
    upload_id, parts = upload(s3, bucket, key, {1: p1, 2: p2})
    bad_etag = [parts[0], {"PartNumber": 2, "ETag": f'"{md5_hex(b"other")}"'}]
    missing = [parts[0], {"PartNumber": 3, "ETag": parts[1]["ETag"]}]
    for wrong in (bad_etag, missing, [{"PartNumber": 1, "ETag": parts[1]["ETag"]}]):
        with pytest.raises(ClientError) as e:
            complete(s3, bucket, key, upload_id, wrong)
        assert error_of(e) == ("InvalidPart", 400)
    with pytest.raises(ClientError) as e:
        complete(s3, bucket, key, upload_id, [parts[1], parts[0]])
    assert error_of(e) == ("InvalidPartOrder", 400)
    with pytest.raises(ClientError) as e:
        complete(s3, bucket, key, upload_id, [])
    assert error_of(e) == ("MalformedXML", 400)
    # Nothing appeared, and the upload still completes with its real parts; ETags are
    # accepted with or without quotes.
    assert s3.list_objects_v2(Bucket=bucket, Prefix=key)["KeyCount"] == 0
    unquoted = [{"PartNumber": p["PartNumber"], "ETag": p["ETag"].strip('"')} for p in parts]
    assert complete(s3, bucket, key, upload_id, unquoted)["ETag"] == multipart_etag([p1, p2])
    assert get(s3, bucket, key) == p1 + p2


def test_complete_with_a_subset_of_parts(s3, bucket):
    key = unique("mp/")
    p1, p2, p3 = data(PART, 9), data(PART, 10), data(50, 11)
    upload_id, parts = upload(s3, bucket, key, {1: p1, 2: p2, 3: p3})
    chosen = [parts[0], parts[2]]
    assert complete(s3, bucket, key, upload_id, chosen)["ETag"] == multipart_etag([p1, p3])
    assert get(s3, bucket, key) == p1 + p3


def _no_such_upload(s3, bucket: str, key: str, upload_id: str) -> None:
    calls = [
        lambda: s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"late"
        ),
        lambda: s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id),
        lambda: s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id),
        lambda: complete(s3, bucket, key, upload_id, [{"PartNumber": 1, "ETag": '"x"'}]),
    ]
    for call in calls:
        with pytest.raises(ClientError) as e:
            call()
        assert error_of(e) == ("NoSuchUpload", 404)


def test_no_such_upload(s3, bucket):
    key = unique("mp/")
    _no_such_upload(s3, bucket, key, "bogus-upload-id")
    _no_such_upload(s3, bucket, key, "")

    # The right id under another key is no upload either.
    upload_id, parts = upload(s3, bucket, key, {1: b"one"})
    _no_such_upload(s3, bucket, key + "-other", upload_id)

    # After Abort.
    assert (
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)["ResponseMetadata"][
            "HTTPStatusCode"
        ]
        == 204
    )
    _no_such_upload(s3, bucket, key, upload_id)
    assert s3.list_objects_v2(Bucket=bucket, Prefix=key)["KeyCount"] == 0

    # After Complete.
    upload_id, parts = upload(s3, bucket, key, {1: b"two"})
    complete(s3, bucket, key, upload_id, parts)
    for call in (
        lambda: s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=2, Body=b"late"
        ),
        lambda: s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id),
        lambda: s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert error_of(e) == ("NoSuchUpload", 404)
    assert get(s3, bucket, key) == b"two"


def test_abort_frees_the_parts(server: Server, s3, bucket):
    key = unique("mp/")
    upload_id, _ = upload(s3, bucket, key, {1: data(PART, 12), 2: data(3000, 13)})
    assert upload_ids(s3, bucket, Prefix=key) == [upload_id]
    if server.index_dsn:
        pytest.skip("reads the SQLite index file")
    db = sqlite3.connect(
        f"file:{Path(server.data_dirs[0]) / 'index' / 'holdfast.db'}?mode=ro", uri=True
    )
    try:
        blobs = [
            r[0]
            for r in db.execute(
                "SELECT json_extract(segment, '$.id') FROM parts WHERE upload_id=?", (upload_id,)
            )
        ]
        assert len(blobs) == 2
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        assert upload_ids(s3, bucket, Prefix=key) == []
        with pytest.raises(ClientError) as e:
            s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)
        assert error_of(e) == ("NoSuchUpload", 404)
        # The parts' rows are gone and their blobs are queued for deletion.
        assert (
            db.execute("SELECT count(*) FROM parts WHERE upload_id=?", (upload_id,)).fetchone()[0]
            == 0
        )
        marks = ",".join("?" * len(blobs))
        queued = db.execute(f"SELECT count(*) FROM gc_queue WHERE blob_id IN ({marks})", blobs)
        assert queued.fetchone()[0] == 2
        live = db.execute(f"SELECT count(*) FROM live_blobs WHERE blob_id IN ({marks})", blobs)
        assert live.fetchone()[0] == 0
    finally:
        db.close()


# -- ListParts and ListMultipartUploads -------------------------------------------------------


def test_list_parts_pagination(s3, bucket):
    key = unique("mp/")
    numbers = [1, 2, 3, 5, 8, 13]
    bodies = {n: data(100 + n, n) for n in numbers}
    upload_id, _ = upload(s3, bucket, key, bodies)
    owner = s3.list_buckets()["Owner"]

    seen = []
    marker = 0
    for expected in ([1, 2], [3, 5], [8, 13]):
        r = s3.list_parts(
            Bucket=bucket, Key=key, UploadId=upload_id, MaxParts=2, PartNumberMarker=marker
        )
        got = [p["PartNumber"] for p in r["Parts"]]
        assert got == expected
        assert r["MaxParts"] == 2
        assert r["PartNumberMarker"] == marker
        assert r["IsTruncated"] is (expected != [8, 13])
        if r["IsTruncated"]:
            assert r["NextPartNumberMarker"] == expected[-1]
        seen += r["Parts"]
        marker = expected[-1]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in seen] == [
        (n, f'"{md5_hex(bodies[n])}"', len(bodies[n])) for n in numbers
    ]
    r = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id, PartNumberMarker=13)
    assert r.get("Parts", []) == []
    assert r["IsTruncated"] is False
    r = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id, PartNumberMarker=4)
    assert [p["PartNumber"] for p in r["Parts"]] == [5, 8, 13]

    r = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)
    assert r["Bucket"] == bucket
    assert r["Key"] == key
    assert r["UploadId"] == upload_id
    assert r["StorageClass"] == "STANDARD"
    assert r["Owner"]["ID"] == owner["ID"]
    assert r["Initiator"]["ID"] == owner["ID"]
    assert r["MaxParts"] == 1000
    assert r["IsTruncated"] is False
    assert all(p["LastModified"].year >= 2024 for p in r["Parts"])

    paged = []
    for page in s3.get_paginator("list_parts").paginate(
        Bucket=bucket, Key=key, UploadId=upload_id, PaginationConfig={"PageSize": 4}
    ):
        paged += [p["PartNumber"] for p in page["Parts"]]
    assert paged == numbers


def test_list_multipart_uploads(s3, bucket):
    base = unique("lmu")
    keys = [f"{base}/a", f"{base}/a", f"{base}/b", f"{base}/c/d", f"{base}/a"]
    ids = [s3.create_multipart_upload(Bucket=bucket, Key=k)["UploadId"] for k in keys]
    other = s3.create_multipart_upload(Bucket=bucket, Key=unique("other"))["UploadId"]
    # Ordered by key, then by initiation time.
    expected = [
        (f"{base}/a", ids[0]),
        (f"{base}/a", ids[1]),
        (f"{base}/a", ids[4]),
        (f"{base}/b", ids[2]),
        (f"{base}/c/d", ids[3]),
    ]

    r = s3.list_multipart_uploads(Bucket=bucket, Prefix=f"{base}/")
    assert [(u["Key"], u["UploadId"]) for u in r["Uploads"]] == expected
    assert r["IsTruncated"] is False
    assert r["Prefix"] == f"{base}/"
    assert r["Bucket"] == bucket
    assert all(u["StorageClass"] == "STANDARD" for u in r["Uploads"])
    owner = s3.list_buckets()["Owner"]["ID"]
    assert all(u["Owner"]["ID"] == owner and u["Initiator"]["ID"] == owner for u in r["Uploads"])
    assert other in upload_ids(s3, bucket)
    assert other not in upload_ids(s3, bucket, Prefix=f"{base}/")

    # One at a time, through the markers the server hands out.
    seen = []
    kw: dict = {}
    for _ in range(10):
        r = s3.list_multipart_uploads(Bucket=bucket, Prefix=f"{base}/", MaxUploads=1, **kw)
        assert r["MaxUploads"] == 1
        seen += [(u["Key"], u["UploadId"]) for u in r["Uploads"]]
        if not r["IsTruncated"]:
            break
        assert (r["NextKeyMarker"], r["NextUploadIdMarker"]) == seen[-1]
        kw = {"KeyMarker": r["NextKeyMarker"], "UploadIdMarker": r["NextUploadIdMarker"]}
    assert seen == expected

    # key-marker alone skips every upload of that key; with upload-id-marker, only those
    # up to and including that upload.
    r = s3.list_multipart_uploads(Bucket=bucket, Prefix=f"{base}/", KeyMarker=f"{base}/a")
    assert [(u["Key"], u["UploadId"]) for u in r["Uploads"]] == expected[3:]
    assert r["KeyMarker"] == f"{base}/a"
    r = s3.list_multipart_uploads(
        Bucket=bucket, Prefix=f"{base}/", KeyMarker=f"{base}/a", UploadIdMarker=ids[1]
    )
    assert [(u["Key"], u["UploadId"]) for u in r["Uploads"]] == expected[2:]
    assert r["UploadIdMarker"] == ids[1]

    paged = []
    for page in s3.get_paginator("list_multipart_uploads").paginate(
        Bucket=bucket, Prefix=f"{base}/", PaginationConfig={"PageSize": 2}
    ):
        paged += [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
    assert paged == expected

    r = s3.list_multipart_uploads(Bucket=bucket, Prefix=f"{base}/", Delimiter="/")
    assert [(u["Key"], u["UploadId"]) for u in r["Uploads"]] == expected[:4]
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == [f"{base}/c/"]

    # Completed and aborted uploads leave the listing.
    s3.abort_multipart_upload(Bucket=bucket, Key=f"{base}/a", UploadId=ids[1])
    r = s3.upload_part(Bucket=bucket, Key=f"{base}/b", UploadId=ids[2], PartNumber=1, Body=b"b")
    complete(s3, bucket, f"{base}/b", ids[2], [{"PartNumber": 1, "ETag": r["ETag"]}])
    assert upload_ids(s3, bucket, Prefix=f"{base}/") == [ids[0], ids[4], ids[3]]


def test_list_multipart_uploads_with_delimiter_pages(s3, bucket):
    base = unique("lmd")
    keys = [f"{base}/a", f"{base}/x/1", f"{base}/x/2", f"{base}/x/3", f"{base}/y", f"{base}/z/1"]
    ids = {k: s3.create_multipart_upload(Bucket=bucket, Key=k)["UploadId"] for k in keys}
    expected = [
        ("upload", f"{base}/a", ids[f"{base}/a"]),
        ("prefix", f"{base}/x/", None),
        ("upload", f"{base}/y", ids[f"{base}/y"]),
        ("prefix", f"{base}/z/", None),
    ]
    for max_uploads in (1, 2, 3, 1000):
        seen = []
        kw: dict = {}
        for _ in range(10):
            r = s3.list_multipart_uploads(
                Bucket=bucket, Prefix=f"{base}/", Delimiter="/", MaxUploads=max_uploads, **kw
            )
            page = [("upload", u["Key"], u["UploadId"]) for u in r.get("Uploads", [])]
            page += [("prefix", p["Prefix"], None) for p in r.get("CommonPrefixes", [])]
            assert 0 < len(page) <= max_uploads
            seen += sorted(page, key=lambda e: e[1])
            if not r["IsTruncated"]:
                break
            kw = {"KeyMarker": r["NextKeyMarker"]}
            if r.get("NextUploadIdMarker"):
                kw["UploadIdMarker"] = r["NextUploadIdMarker"]
        assert seen == expected, max_uploads
    # A key-marker that is a common prefix does not list that prefix again.
    r = s3.list_multipart_uploads(
        Bucket=bucket, Prefix=f"{base}/", Delimiter="/", KeyMarker=f"{base}/x/"
    )
    assert [u["Key"] for u in r["Uploads"]] == [f"{base}/y"]
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == [f"{base}/z/"]


# -- UploadPartCopy --------------------------------------------------------------------------


def test_upload_part_copy_ranges(s3, bucket):
    src_key, key = unique("src"), unique("mp/")
    src = data(6 * MiB + 777, 14)
    s3.put_object(Bucket=bucket, Key=src_key, Body=src)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    ranges = {
        1: (MiB - 6, MiB - 6 + PART - 1),  # exactly 5 MiB, across five block boundaries
        2: None,  # the whole source
        3: (2 * MiB - 52, 2 * MiB + 147),  # 200 bytes across the 2 MiB boundary
    }
    parts, pieces = [], []
    for number, rng in ranges.items():
        kw = {"CopySourceRange": f"bytes={rng[0]}-{rng[1]}"} if rng else {}
        piece = src[rng[0] : rng[1] + 1] if rng else src
        r = s3.upload_part_copy(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            CopySource={"Bucket": bucket, "Key": src_key},
            **kw,
        )["CopyPartResult"]
        assert r["ETag"] == f'"{md5_hex(piece)}"'
        assert r["LastModified"].year >= 2024
        parts.append({"PartNumber": number, "ETag": r["ETag"]})
        pieces.append(piece)
    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)["Parts"]
    assert [p["Size"] for p in listed] == [len(p) for p in pieces]
    assert complete(s3, bucket, key, upload_id, parts)["ETag"] == multipart_etag(pieces)
    whole = b"".join(pieces)
    assert get(s3, bucket, key) == whole

    # Copy from that multipart object, across the boundary between its first two parts, and
    # mix a copied part with an uploaded one.
    key2 = unique("mp/")
    upload2 = s3.create_multipart_upload(Bucket=bucket, Key=key2)["UploadId"]
    lo, hi = PART - 1000, 2 * PART + 5
    r = s3.upload_part_copy(
        Bucket=bucket,
        Key=key2,
        UploadId=upload2,
        PartNumber=1,
        CopySource=f"{bucket}/{key}",
        CopySourceRange=f"bytes={lo}-{hi}",
    )["CopyPartResult"]
    assert r["ETag"] == f'"{md5_hex(whole[lo : hi + 1])}"'
    tail = data(10, 15)
    r2 = s3.upload_part(Bucket=bucket, Key=key2, UploadId=upload2, PartNumber=2, Body=tail)
    done = complete(
        s3,
        bucket,
        key2,
        upload2,
        [{"PartNumber": 1, "ETag": r["ETag"]}, {"PartNumber": 2, "ETag": r2["ETag"]}],
    )
    assert done["ETag"] == multipart_etag([whole[lo : hi + 1], tail])
    assert get(s3, bucket, key2) == whole[lo : hi + 1] + tail


def test_upload_part_copy_invalid_ranges(s3, bucket):
    src_key, key = unique("src"), unique("mp/")
    s3.put_object(Bucket=bucket, Key=src_key, Body=b"hello")
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]

    def copy(rng: str | None, source: str = src_key):
        kw = {"CopySourceRange": rng} if rng is not None else {}
        return s3.upload_part_copy(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=1,
            CopySource={"Bucket": bucket, "Key": source},
            **kw,
        )

    for rng in ("bytes=0-21", "bytes=0-5", "bytes=5-5", "bytes=3-9"):  # past the end
        with pytest.raises(ClientError) as e:
            copy(rng)
        code, status = error_of(e)
        assert code == "InvalidRange", rng
        assert status in (400, 416), rng
    for rng in ("0-2", "bytes=0", "bytes=hello-world", "bytes=0-bar", "bytes=hello-",
                "bytes=0-2,3-5", "bytes=3-1", "bytes=-2", "bytes=1-"):  # fmt: skip
        with pytest.raises(ClientError) as e:
            copy(rng)
        assert error_of(e) == ("InvalidArgument", 400), rng
    with pytest.raises(ClientError) as e:
        copy("bytes=0-1", source=unique("missing"))
    assert error_of(e) == ("NoSuchKey", 404)
    # None of that left a part behind; the last byte is a valid range.
    assert s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id).get("Parts", []) == []
    r = copy("bytes=4-4")["CopyPartResult"]
    assert r["ETag"] == f'"{md5_hex(b"o")}"'
    complete(s3, bucket, key, upload_id, [{"PartNumber": 1, "ETag": r["ETag"]}])
    assert get(s3, bucket, key) == b"o"


# -- checksums -------------------------------------------------------------------------------

CHECKSUM_CASES = [
    # algorithm, requested type (None: let the server choose), resulting type
    ("CRC32", "COMPOSITE", "COMPOSITE"),
    ("CRC32C", "COMPOSITE", "COMPOSITE"),
    ("SHA1", "COMPOSITE", "COMPOSITE"),
    ("SHA256", None, "COMPOSITE"),
    ("CRC64NVME", "FULL_OBJECT", "FULL_OBJECT"),
    ("CRC32", "FULL_OBJECT", "FULL_OBJECT"),
    ("CRC32C", "FULL_OBJECT", "FULL_OBJECT"),
    ("CRC64NVME", None, "FULL_OBJECT"),
]


@pytest.mark.parametrize(
    ("algorithm", "requested", "ctype"),
    CHECKSUM_CASES,
    ids=[f"{a}-{r or 'default'}" for a, r, _ in CHECKSUM_CASES],
)
def test_multipart_checksums(server: Server, s3, bucket, algorithm, requested, ctype):
    key = unique("mp/")
    bodies = [data(PART, 16), data(3000, 17)]
    field = f"Checksum{algorithm}"
    expected = (
        composite(algorithm, bodies)
        if ctype == "COMPOSITE"
        else b64(raw_checksum(algorithm, b"".join(bodies)))
    )
    create = {"ChecksumAlgorithm": algorithm}
    if requested:
        create["ChecksumType"] = requested
    r = s3.create_multipart_upload(Bucket=bucket, Key=key, **create)
    assert r["ChecksumAlgorithm"] == algorithm
    assert r.get("ChecksumType") == ctype
    upload_id = r["UploadId"]

    parts = []
    for number, body in enumerate(bodies, 1):
        r = s3.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
            ChecksumAlgorithm=algorithm,
        )
        assert r[field] == b64(raw_checksum(algorithm, body))
        parts.append({"PartNumber": number, "ETag": r["ETag"], field: r[field]})

    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)
    assert listed["ChecksumAlgorithm"] == algorithm
    assert listed.get("ChecksumType") == ctype
    assert [p[field] for p in listed["Parts"]] == [p[field] for p in parts]
    [mpu] = s3.list_multipart_uploads(Bucket=bucket, Prefix=key)["Uploads"]
    assert mpu["ChecksumAlgorithm"] == algorithm

    # A part checksum in Complete that does not match the part is InvalidPart.
    wrong = [dict(parts[0]), parts[1]]
    wrong[0][field] = parts[1][field]
    with pytest.raises(ClientError) as e:
        complete(s3, bucket, key, upload_id, wrong)
    assert error_of(e) == ("InvalidPart", 400)

    kw = {field: expected}
    if ctype == "FULL_OBJECT":
        # The whole object's checksum may be asserted on Complete; a wrong one is BadDigest.
        kw["ChecksumType"] = "FULL_OBJECT"
        bad = b64(raw_checksum(algorithm, b"not the object"))
        with pytest.raises(ClientError) as e:
            complete(
                no_retry(server), bucket, key, upload_id, parts, **{field: bad}, ChecksumType=ctype
            )
        assert error_of(e) == ("BadDigest", 400)
    done = complete(s3, bucket, key, upload_id, parts, **kw)
    assert done[field] == expected
    assert done["ChecksumType"] == ctype
    assert done["ETag"] == multipart_etag(bodies)

    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head[field] == expected
    assert head["ChecksumType"] == ctype
    assert field not in s3.head_object(Bucket=bucket, Key=key)
    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert got[field] == expected
    assert got["ChecksumType"] == ctype
    assert got["Body"].read() == b"".join(bodies)  # boto3 verifies FULL_OBJECT values itself
    [obj] = s3.list_objects_v2(Bucket=bucket, Prefix=key)["Contents"]
    assert obj["ChecksumAlgorithm"] == [algorithm]
    assert obj.get("ChecksumType") == ctype


def test_composite_complete_needs_every_part_checksum(s3, bucket):
    key = unique("mp/")
    bodies = [data(PART, 20), data(10, 21)]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32C")[
        "UploadId"
    ]
    parts = []
    for number, body in enumerate(bodies, 1):
        r = s3.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
            ChecksumAlgorithm="CRC32C",
        )
        parts.append(
            {"PartNumber": number, "ETag": r["ETag"], "ChecksumCRC32C": r["ChecksumCRC32C"]}
        )
    without = [parts[0], {"PartNumber": 2, "ETag": parts[1]["ETag"]}]
    with pytest.raises(ClientError) as e:
        complete(s3, bucket, key, upload_id, without)
    assert error_of(e) == ("InvalidRequest", 400)
    assert "part 2" in e.value.response["Error"]["Message"]
    done = complete(s3, bucket, key, upload_id, parts)
    assert done["ChecksumCRC32C"] == composite("CRC32C", bodies)


@pytest.mark.parametrize(
    ("algorithm", "ctype"),
    [("SHA256", "FULL_OBJECT"), ("SHA1", "FULL_OBJECT"), ("CRC64NVME", "COMPOSITE")],
)
def test_checksum_type_not_allowed_for_algorithm(s3, bucket, algorithm, ctype):
    key = unique("mp/")
    with pytest.raises(ClientError) as e:
        s3.create_multipart_upload(
            Bucket=bucket, Key=key, ChecksumAlgorithm=algorithm, ChecksumType=ctype
        )
    assert error_of(e) == ("InvalidRequest", 400)
    assert upload_ids(s3, bucket, Prefix=key) == []


def test_part_checksum_must_match_the_upload_algorithm(server: Server, s3, bucket):
    key = unique("mp/")
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256")[
        "UploadId"
    ]
    with pytest.raises(ClientError) as e:  # boto3's default is CRC32
        s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"abc")
    assert error_of(e) == ("InvalidRequest", 400)
    with pytest.raises(ClientError) as e:  # a wrong value for the right algorithm
        no_retry(server).upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=1,
            Body=b"abc",
            ChecksumSHA256=b64(raw_checksum("SHA256", b"abd")),
        )
    assert error_of(e) == ("BadDigest", 400)
    assert s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id).get("Parts", []) == []


def test_upload_part_copy_checksum(s3, bucket):
    src_key, key = unique("src"), unique("mp/")
    src = data(3 * MiB, 18)
    s3.put_object(Bucket=bucket, Key=src_key, Body=src)
    upload_id = s3.create_multipart_upload(
        Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32C", ChecksumType="FULL_OBJECT"
    )["UploadId"]
    piece = src[MiB - 1 : 2 * MiB + 1]
    r = s3.upload_part_copy(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": src_key},
        CopySourceRange=f"bytes={MiB - 1}-{2 * MiB}",
    )["CopyPartResult"]
    assert r["ChecksumCRC32C"] == b64(raw_checksum("CRC32C", piece))
    done = complete(s3, bucket, key, upload_id, [{"PartNumber": 1, "ETag": r["ETag"]}])
    assert done["ChecksumCRC32C"] == b64(raw_checksum("CRC32C", piece))
    assert get(s3, bucket, key, ChecksumMode="ENABLED") == piece


# -- boto3's managed transfer ----------------------------------------------------------------


def test_upload_file_and_download_file(s3, bucket, tmp_path):
    size = 12 * MiB + 7
    content = data(size, 19)
    src = tmp_path / "upload.bin"
    src.write_bytes(content)
    key = unique("transfer/")
    config = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART)
    s3.upload_file(str(src), bucket, key, Config=config)

    chunks = [content[i : i + PART] for i in range(0, size, PART)]
    assert len(chunks) == 3
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head["ContentLength"] == size
    assert head["ETag"] == multipart_etag(chunks)
    # boto3 asks for CRC32 on multipart uploads by default (COMPOSITE).
    assert head["ChecksumCRC32"] == composite("CRC32", chunks)
    assert head["ChecksumType"] == "COMPOSITE"
    assert upload_ids(s3, bucket, Prefix=key) == []

    dst = tmp_path / "download.bin"
    s3.download_file(bucket, key, str(dst), Config=config)  # ranged GETs, in parallel
    assert dst.read_bytes() == content
    assert get(s3, bucket, key) == content

    # Below the threshold: one PUT, a plain MD5 ETag.
    small = tmp_path / "small.bin"
    small.write_bytes(content[: PART - 1])
    s3.upload_file(str(small), bucket, key + "-small", Config=config)
    assert s3.head_object(Bucket=bucket, Key=key + "-small")["ETag"] == (
        f'"{md5_hex(content[: PART - 1])}"'
    )
