"""Versioning end to end with boto3 over HTTP and HTTPS (the core flows also on PostgreSQL:
tests/e2e/test_postgres_core.py imports them): turning it on, version ids on every write,
reads and deletes of single versions, delete markers, suspended buckets and the null
version, ListObjectVersions with a model of its pages under concurrent writers, DeleteObjects
with versions, and DeleteBucket while versions remain."""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET

import pytest
from botocore.exceptions import ClientError

from tests.e2e.test_auth_modes import signed_request
from tests.e2e.test_buckets import add_user, bucket_name

MiB = 1024 * 1024


def error(call) -> tuple[str, int, dict]:
    with pytest.raises(ClientError) as exc:
        call()
    e = exc.value.response
    return (
        e["Error"]["Code"],
        e["ResponseMetadata"]["HTTPStatusCode"],
        e["ResponseMetadata"]["HTTPHeaders"],
    )


def enable(s3, bucket: str, status: str = "Enabled") -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})


def all_versions(s3, bucket: str, **kw) -> list[tuple[str, str, bool, bool]]:
    """(key, version id, is latest, is delete marker) of every version, page by page."""
    out = []
    args = dict(kw)
    while True:
        page = s3.list_object_versions(Bucket=bucket, **args)
        rows = [
            (v["Key"], v["VersionId"], v["IsLatest"], False, v) for v in page.get("Versions", [])
        ]
        rows += [
            (m["Key"], m["VersionId"], m["IsLatest"], True, m)
            for m in page.get("DeleteMarkers", [])
        ]
        # boto3 splits versions and markers; S3's order is key, then newest first.
        rows.sort(key=lambda r: (r[0], -r[4]["LastModified"].timestamp()))
        out += [r[:4] for r in rows]
        if not page["IsTruncated"]:
            return out
        args["KeyMarker"] = page["NextKeyMarker"]
        if page.get("NextVersionIdMarker"):
            args["VersionIdMarker"] = page["NextVersionIdMarker"]
        else:
            args.pop("VersionIdMarker", None)


def test_versioning_configuration(server, s3, bucket):
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    enable(s3, bucket)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    enable(s3, bucket, "Suspended")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    for body in (
        b"<VersioningConfiguration><Status>On</Status></VersioningConfiguration>",
        b"<nope",
    ):
        reply = signed_request(server, "PUT", f"/{bucket}?versioning", body=body)
        assert reply.status == 400 and ET.fromstring(reply.body).findtext("Code") == "MalformedXML"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    ak, sk = add_user(server, f"versioner-{server.port}")
    other = server.client(ak, sk)
    assert error(lambda: enable(other, bucket))[:2] == ("AccessDenied", 403)
    assert error(lambda: other.get_bucket_versioning(Bucket=bucket))[:2] == ("AccessDenied", 403)
    assert error(lambda: enable(s3, bucket_name()))[:2] == ("NoSuchBucket", 404)


def test_versions_reads_and_deletes(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"before")  # written unversioned: "null"
    enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"two")["VersionId"]
    assert v1 != v2 and "null" not in (v1, v2)
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"two" and got["VersionId"] == v2
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=v1)["Body"].read() == b"one"
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"before"
    assert s3.head_object(Bucket=bucket, Key="k", VersionId=v1)["ContentLength"] == 3
    # The version written before versioning was turned on is the "null" version, and says so.
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["VersionId"] == "null"
    assert s3.head_object(Bucket=bucket, Key="k", VersionId="null")["VersionId"] == "null"
    assert [(v[1], v[2]) for v in all_versions(s3, bucket)] == [
        (v2, True),
        (v1, False),
        ("null", False),
    ]
    # Listing shows the current version only.
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]

    # DELETE without a version id writes a delete marker.
    deleted = s3.delete_object(Bucket=bucket, Key="k")
    assert deleted["DeleteMarker"] is True
    marker = deleted["VersionId"]
    code, status, headers = error(lambda: s3.get_object(Bucket=bucket, Key="k"))
    assert (code, status) == ("NoSuchKey", 404)
    assert headers["x-amz-delete-marker"] == "true" and headers["x-amz-version-id"] == marker
    assert error(lambda: s3.head_object(Bucket=bucket, Key="k"))[1] == 404
    code, status, headers = error(lambda: s3.get_object(Bucket=bucket, Key="k", VersionId=marker))
    assert status == 405 and headers["x-amz-delete-marker"] == "true"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    listed = all_versions(s3, bucket)
    assert listed[0] == ("k", marker, True, True) and len(listed) == 4
    # Old versions are still readable.
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=v2)["Body"].read() == b"two"

    # Removing the marker uncovers the version before it.
    resp = s3.delete_object(Bucket=bucket, Key="k", VersionId=marker)
    assert resp["DeleteMarker"] is True and resp["VersionId"] == marker
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"two"
    # Removing the newest version for good makes the previous one current.
    assert s3.delete_object(Bucket=bucket, Key="k", VersionId=v2)["VersionId"] == v2
    assert s3.get_object(Bucket=bucket, Key="k")["VersionId"] == v1
    assert error(lambda: s3.get_object(Bucket=bucket, Key="k", VersionId=v2))[:2] == (
        "NoSuchVersion",
        404,
    )
    assert error(lambda: s3.get_object(Bucket=bucket, Key="k", VersionId="not-an-id"))[:2] == (
        "InvalidArgument",
        400,
    )
    # Deleting a version that does not exist is no error, as in S3.
    s3.delete_object(Bucket=bucket, Key="k", VersionId=v2)


def test_copy_multipart_and_tags_make_versions(s3, bucket):
    enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="src", Body=b"first")["VersionId"]
    s3.put_object(Bucket=bucket, Key="src", Body=b"second")
    copied = s3.copy_object(
        Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src", "VersionId": v1}
    )
    assert copied["CopySourceVersionId"] == v1 and copied["VersionId"]
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"first"
    up = s3.create_multipart_upload(Bucket=bucket, Key="dst")
    part = s3.upload_part(
        Bucket=bucket, Key="dst", UploadId=up["UploadId"], PartNumber=1, Body=b"m" * MiB
    )
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="dst",
        UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert done["VersionId"] not in ("null", copied["VersionId"])
    assert [v[1] for v in all_versions(s3, bucket, Prefix="dst")] == [
        done["VersionId"],
        copied["VersionId"],
    ]


def test_suspended_bucket_and_the_null_version(s3, bucket):
    enable(s3, bucket)
    kept = s3.put_object(Bucket=bucket, Key="k", Body=b"kept")["VersionId"]
    enable(s3, bucket, "Suspended")
    assert s3.put_object(Bucket=bucket, Key="k", Body=b"n1")["VersionId"] == "null"
    assert s3.put_object(Bucket=bucket, Key="k", Body=b"n2")["VersionId"] == "null"
    assert [(v[1], v[2]) for v in all_versions(s3, bucket)] == [("null", True), (kept, False)]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"n2"
    deleted = s3.delete_object(Bucket=bucket, Key="k")
    assert deleted["DeleteMarker"] is True and deleted["VersionId"] == "null"
    assert [(v[1], v[3]) for v in all_versions(s3, bucket)] == [("null", True), (kept, False)]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=kept)["Body"].read() == b"kept"


def test_delete_objects_with_versions_and_delete_bucket(s3):
    bucket = bucket_name()
    s3.create_bucket(Bucket=bucket)
    enable(s3, bucket)
    a1 = s3.put_object(Bucket=bucket, Key="a", Body=b"1")["VersionId"]
    s3.put_object(Bucket=bucket, Key="b", Body=b"2")
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a"}, {"Key": "b"}]})
    assert all(d["DeleteMarker"] and d["DeleteMarkerVersionId"] for d in result["Deleted"])
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    assert error(lambda: s3.delete_bucket(Bucket=bucket))[:2] == ("BucketNotEmpty", 409)
    everything = [{"Key": k, "VersionId": v} for k, v, _, _ in all_versions(s3, bucket)]
    assert {"Key": "a", "VersionId": a1} in everything
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": everything})
    assert len(result["Deleted"]) == 4 and "Errors" not in result
    assert all_versions(s3, bucket) == []
    s3.delete_bucket(Bucket=bucket)


def test_list_versions_prefix_delimiter_and_markers(s3, bucket):
    enable(s3, bucket)
    for key in ("a/1", "a/2", "b", "c/x/y"):
        for _ in range(2):
            s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    page = s3.list_object_versions(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["a/", "c/"]
    assert [v["Key"] for v in page["Versions"]] == ["b", "b"]
    page = s3.list_object_versions(Bucket=bucket, Prefix="a/", MaxKeys=3)
    assert page["IsTruncated"] and len(page["Versions"]) == 3
    rest = s3.list_object_versions(
        Bucket=bucket,
        Prefix="a/",
        KeyMarker=page["NextKeyMarker"],
        VersionIdMarker=page["NextVersionIdMarker"],
    )
    assert len(rest["Versions"]) == 1 and not rest["IsTruncated"]
    # A page of common prefixes resumes after the prefix, never inside it.
    first = s3.list_object_versions(Bucket=bucket, Delimiter="/", MaxKeys=1)
    assert first["CommonPrefixes"] == [{"Prefix": "a/"}] and first["NextKeyMarker"] == "a/"
    after = s3.list_object_versions(Bucket=bucket, Delimiter="/", KeyMarker="a/")
    assert [v["Key"] for v in after["Versions"]] == ["b", "b"]
    enc = s3.list_object_versions(Bucket=bucket, Prefix="a/", EncodingType="url")
    assert enc["EncodingType"] == "url"
    err = error(lambda: s3.list_object_versions(Bucket=bucket, VersionIdMarker="null"))
    assert err[:2] == ("InvalidArgument", 400)


def test_many_writers_on_one_key(s3, bucket):
    enable(s3, bucket)
    errors = []

    def writer(n):
        try:
            for i in range(5):
                s3.put_object(Bucket=bucket, Key="hot", Body=f"{n}-{i}".encode())
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    listed = all_versions(s3, bucket)
    assert len(listed) == 40 and len({v[1] for v in listed}) == 40
    assert sum(1 for v in listed if v[2]) == 1
    latest = next(v for v in listed if v[2])
    assert s3.get_object(Bucket=bucket, Key="hot")["VersionId"] == latest[1]


def test_list_versions_pagination_while_writing(s3, bucket):
    """The model: every version that exists before the listing starts and is not deleted
    during it comes back exactly once, in key order, whatever is written meanwhile."""
    enable(s3, bucket)
    before = set()
    for i in range(12):
        for _ in range(2):
            before.add(
                (f"k{i:02d}", s3.put_object(Bucket=bucket, Key=f"k{i:02d}", Body=b"x")["VersionId"])
            )
    stop = threading.Event()

    def writer():
        n = 0
        while not stop.is_set() and n < 200:
            s3.put_object(Bucket=bucket, Key=f"k{n % 14:02d}", Body=b"y")
            if n % 5 == 0:
                s3.delete_object(Bucket=bucket, Key=f"k{(n + 3) % 14:02d}")
            n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        seen = []
        args: dict = {"MaxKeys": 5}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            page = s3.list_object_versions(Bucket=bucket, **args)
            seen += [(v["Key"], v["VersionId"]) for v in page.get("Versions", [])]
            seen += [(m["Key"], m["VersionId"]) for m in page.get("DeleteMarkers", [])]
            if not page["IsTruncated"]:
                break
            args["KeyMarker"] = page["NextKeyMarker"]
            args["VersionIdMarker"] = page["NextVersionIdMarker"]
    finally:
        stop.set()
        thread.join(60)
    assert len(seen) == len(set(seen)), "a version came back twice"
    assert before <= set(seen), "a version that existed throughout was skipped"
    keys = [k for k, _ in seen]
    assert keys == sorted(keys)
