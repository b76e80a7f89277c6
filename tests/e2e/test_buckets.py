"""Service and bucket operations, and the ownership rule between two users, with boto3's
default settings over HTTP and HTTPS."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.conftest import ROOT_AK, ROOT_SK, Server, unique

_USERS: dict[tuple[int, str], tuple[str, str]] = {}


def add_user(server: Server, name: str) -> tuple[str, str]:
    """`holdfast user add NAME --data DIR` against a running server's data directory; the
    server reads users from its index, so the keys work at once. Cached per server."""
    cached = _USERS.get((server.port, name))
    if cached:
        return cached
    cmd = [sys.executable, "-m", "holdfast.cli", "user", "add", name]
    for d in server.data_dirs:
        cmd += ["--data", str(d)]
    env = {**os.environ, "HOLDFAST_ACCESS_KEY": ROOT_AK, "HOLDFAST_SECRET_KEY": ROOT_SK}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30, check=True)
    fields = dict(line.split(": ", 1) for line in out.stdout.strip().splitlines())
    assert fields["user"] == name
    keys = (fields["access key"], fields["secret key"])
    _USERS[(server.port, name)] = keys
    return keys


@pytest.fixture
def other(server):
    """A client for a second user, who owns nothing of root's."""
    ak, sk = add_user(server, f"other-{server.port}")
    return server.client(ak, sk)


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    resp = exc.value.response
    return resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"]


def bucket_name() -> str:
    return f"b-{uuid.uuid4().hex[:20]}"


# -- ListBuckets --------------------------------------------------------------------------------


def test_list_buckets_shows_own_buckets_only(s3, other):
    mine = bucket_name()
    theirs = bucket_name()
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    s3.create_bucket(Bucket=mine)
    other.create_bucket(Bucket=theirs)
    listed = s3.list_buckets()
    names = [b["Name"] for b in listed["Buckets"]]
    assert mine in names
    assert theirs not in names
    assert names == sorted(names)
    entry = next(b for b in listed["Buckets"] if b["Name"] == mine)
    assert before <= entry["CreationDate"] <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    assert listed["Owner"]["DisplayName"] == "root"
    assert listed["Owner"]["ID"]

    other_listed = other.list_buckets()
    other_names = [b["Name"] for b in other_listed["Buckets"]]
    assert theirs in other_names
    assert mine not in other_names
    assert other_listed["Owner"]["ID"] != listed["Owner"]["ID"]


# -- CreateBucket -------------------------------------------------------------------------------


def test_create_bucket_returns_location(s3):
    name = bucket_name()
    resp = s3.create_bucket(Bucket=name)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert resp["Location"] == f"/{name}"
    assert s3.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_create_bucket_with_own_region_constraint(s3):
    name = bucket_name()
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "us-east-1"})
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] is None
    assert s3.head_bucket(Bucket=name)["BucketRegion"] == "us-east-1"


@pytest.mark.parametrize("region", ["eu-west-1", "us-west-2", "ap-southeast-2"])
def test_create_bucket_with_other_region_is_rejected(s3, region):
    name = bucket_name()
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    assert error_of(exc) == ("IllegalLocationConstraintException", 400)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=name)
    assert error_of(exc) == ("404", 404)


INVALID_NAMES = [
    "ab",  # too short
    "a" * 64,  # too long
    "UpperCase",
    "under_score",
    "-leading-hyphen",
    "trailing-hyphen-",
    ".leading-dot",
    "trailing-dot.",
    "two..dots",
    "dot-.hyphen",
    "hyphen.-dot",
    "192.168.5.4",
    "xn--punycode",
    "sthree-reserved",
    "amzn-s3-demo-reserved",
    "name-s3alias",
    "name--ol-s3",
    "name.mrap",
    "name--table-s3",
]


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_create_bucket_invalid_name(s3, name):
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=name)
    assert error_of(exc) == ("InvalidBucketName", 400)
    assert exc.value.response["Error"]["BucketName"] == name
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_create_bucket_valid_edge_names(s3):
    tag = uuid.uuid4().hex
    names = [
        tag[:3],  # shortest
        ("x" + tag * 2)[:63],  # longest
        f"{tag[:8]}.with.dots",
        f"{tag[:8]}-with-hyphens",
        f"1{tag[:8]}-starts-with-digit",
        f"{tag[:8]}9",
        f"192.168.5.{tag[:6]}",  # dotted but not an IP address
    ]
    for name in names:
        s3.create_bucket(Bucket=name)
    listed = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    for name in names:
        assert name in listed
        s3.delete_bucket(Bucket=name)


def test_create_existing_bucket_owned_by_you(s3, bucket):
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=bucket)
    assert error_of(exc) == ("BucketAlreadyOwnedByYou", 409)
    assert exc.value.response["Error"]["BucketName"] == bucket


def test_create_bucket_owned_by_another_user(s3, other, bucket):
    s3.put_object(Bucket=bucket, Key="keep", Body=b"root's")
    with pytest.raises(ClientError) as exc:
        other.create_bucket(Bucket=bucket)
    assert error_of(exc) == ("BucketAlreadyExists", 409)
    # Nothing changed hands.
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert bucket not in [b["Name"] for b in other.list_buckets()["Buckets"]]
    assert s3.get_object(Bucket=bucket, Key="keep")["Body"].read() == b"root's"


# -- HeadBucket ---------------------------------------------------------------------------------


def test_head_bucket(s3, other, bucket):
    resp = s3.head_bucket(Bucket=bucket)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert resp["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == "us-east-1"

    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=bucket_name())
    assert error_of(exc) == ("404", 404)

    with pytest.raises(ClientError) as exc:
        other.head_bucket(Bucket=bucket)
    assert error_of(exc) == ("403", 403)


# -- DeleteBucket -------------------------------------------------------------------------------


def test_delete_bucket_not_empty_then_empty(s3, bucket):
    s3.put_object(Bucket=bucket, Key="a/b", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=bucket)
    assert error_of(exc) == ("BucketNotEmpty", 409)
    assert exc.value.response["Error"]["BucketName"] == bucket
    assert s3.get_object(Bucket=bucket, Key="a/b")["Body"].read() == b"x"

    s3.delete_object(Bucket=bucket, Key="a/b")
    resp = s3.delete_bucket(Bucket=bucket)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=bucket)
    assert error_of(exc) == ("404", 404)
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    # The name is free again.
    s3.create_bucket(Bucket=bucket)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_delete_bucket_aborts_unfinished_uploads(s3, bucket):
    """Unfinished multipart uploads do not keep a bucket alive; they go with it."""
    up = s3.create_multipart_upload(Bucket=bucket, Key="pending")
    s3.delete_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=bucket)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    with pytest.raises(ClientError) as exc:
        s3.upload_part(
            Bucket=bucket, Key="pending", UploadId=up["UploadId"], PartNumber=1, Body=b"x"
        )
    assert error_of(exc) == ("NoSuchUpload", 404)


def test_delete_missing_bucket(s3):
    name = bucket_name()
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=name)
    assert error_of(exc) == ("NoSuchBucket", 404)
    assert exc.value.response["Error"]["BucketName"] == name


# -- GetBucketLocation --------------------------------------------------------------------------


def test_get_bucket_location(s3, bucket):
    resp = s3.get_bucket_location(Bucket=bucket)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    # us-east-1 is reported as an empty LocationConstraint, which boto3 turns into None.
    assert resp["LocationConstraint"] is None
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_location(Bucket=bucket_name())
    assert error_of(exc) == ("NoSuchBucket", 404)


# -- Ownership ----------------------------------------------------------------------------------


def test_other_user_gets_access_denied(s3, other, bucket):
    key = unique("private/")
    s3.put_object(Bucket=bucket, Key=key, Body=b"secret")

    denied = [
        lambda: other.get_object(Bucket=bucket, Key=key),
        lambda: other.list_objects_v2(Bucket=bucket),
        lambda: other.list_objects(Bucket=bucket),
        lambda: other.delete_object(Bucket=bucket, Key=key),
        lambda: other.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key}]}),
        lambda: other.get_bucket_location(Bucket=bucket),
        lambda: other.delete_bucket(Bucket=bucket),
        lambda: other.create_multipart_upload(Bucket=bucket, Key=unique("mp-")),
        lambda: other.list_multipart_uploads(Bucket=bucket),
        lambda: other.put_object(Bucket=bucket, Key=key, Body=b"overwritten"),
        lambda: other.put_object(Bucket=bucket, Key=unique("new-"), Body=b"intruder"),
        lambda: other.copy_object(Bucket=bucket, Key="c", CopySource=f"{bucket}/{key}"),
    ]
    for call in denied:
        with pytest.raises(ClientError) as exc:
            call()
        assert error_of(exc) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as exc:
        other.head_object(Bucket=bucket, Key=key)
    assert error_of(exc) == ("403", 403)

    # Nothing the other user tried changed anything.
    listed = s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listed["Contents"]] == [key]
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"secret"
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_other_user_cannot_reach_missing_key_in_foreign_bucket(s3, other, bucket):
    # Denied before existence is revealed: the answer does not depend on the key.
    with pytest.raises(ClientError) as exc:
        other.get_object(Bucket=bucket, Key=unique("absent-"))
    assert error_of(exc) == ("AccessDenied", 403)


def test_unknown_access_key_is_rejected(server, bucket):
    stranger = server.client("HFNOSUCHACCESSKEY000", "x" * 40)
    with pytest.raises(ClientError) as exc:
        stranger.list_objects_v2(Bucket=bucket)
    assert error_of(exc) == ("InvalidAccessKeyId", 403)
