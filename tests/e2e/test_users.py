"""Users: ``holdfast user add|list`` and bucket ownership between users, over HTTP and HTTPS."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.conftest import ROOT_AK, Server, unique

HOLDFAST = Path(sys.executable).parent / "holdfast"


def holdfast(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [str(HOLDFAST)] if HOLDFAST.exists() else [sys.executable, "-m", "holdfast.cli"]
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60)
    if check:
        assert proc.returncode == 0, f"{args}\n{proc.stdout}\n{proc.stderr}"
    return proc


def add_user(server: Server, name: str) -> tuple[str, str]:
    out = holdfast("user", "add", name, "--data", str(server.data_dirs[0])).stdout
    access = re.search(r"^access key:\s*(\S+)\s*$", out, re.M)
    secret = re.search(r"^secret key:\s*(\S+)\s*$", out, re.M)
    assert access and secret, out
    return access.group(1), secret.group(1)


def error_code(info: pytest.ExceptionInfo) -> str:
    return info.value.response["Error"]["Code"]


def status(info: pytest.ExceptionInfo) -> int:
    return info.value.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture
def alice(server):
    """A second user, created with the CLI while the server runs, and its boto3 client."""
    name = unique("alice")
    access, secret = add_user(server, name)
    return name, access, secret, server.client(access, secret)


def test_user_add_prints_working_keys(server, alice):
    name, access, secret, client = alice
    assert access != ROOT_AK
    assert len(access) >= 16 and len(secret) >= 30
    assert secret not in access
    bucket = unique("ab")
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="hello", Body=b"from alice")
    assert client.get_object(Bucket=bucket, Key="hello")["Body"].read() == b"from alice"
    owner = client.list_buckets()["Owner"]
    assert owner.get("DisplayName") in (None, name)


def test_wrong_secret_for_new_user(server, alice):
    _, access, _, _ = alice
    bad = server.client(access, "x" * 40, retries={"max_attempts": 1})
    with pytest.raises(ClientError) as info:
        bad.list_buckets()
    assert error_code(info) == "SignatureDoesNotMatch"


def test_buckets_are_private_to_their_owner(server, s3, alice):
    _, _, _, client = alice
    root_bucket, alice_bucket = unique("rb"), unique("ab")
    s3.create_bucket(Bucket=root_bucket)
    s3.put_object(Bucket=root_bucket, Key="r", Body=b"root data")
    client.create_bucket(Bucket=alice_bucket)
    client.put_object(Bucket=alice_bucket, Key="a", Body=b"alice data")

    # ListBuckets shows only one's own buckets.
    root_names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    alice_names = {b["Name"] for b in client.list_buckets()["Buckets"]}
    assert root_bucket in root_names and alice_bucket not in root_names
    assert alice_names == {alice_bucket}

    # Each user is denied everything on the other's bucket.
    for actor, bucket, key in ((client, root_bucket, "r"), (s3, alice_bucket, "a")):
        attempts = [
            lambda a=actor, b=bucket, k=key: a.get_object(Bucket=b, Key=k),
            lambda a=actor, b=bucket: a.list_objects_v2(Bucket=b),
            lambda a=actor, b=bucket: a.list_objects(Bucket=b),
            lambda a=actor, b=bucket, k=key: a.put_object(Bucket=b, Key=k, Body=b"overwrite"),
            lambda a=actor, b=bucket: a.put_object(Bucket=b, Key="new", Body=b"intruder"),
            lambda a=actor, b=bucket, k=key: a.delete_object(Bucket=b, Key=k),
            lambda a=actor, b=bucket, k=key: a.delete_objects(
                Bucket=b, Delete={"Objects": [{"Key": k}]}
            ),
            lambda a=actor, b=bucket: a.delete_bucket(Bucket=b),
            lambda a=actor, b=bucket: a.get_bucket_location(Bucket=b),
            lambda a=actor, b=bucket: a.list_multipart_uploads(Bucket=b),
            lambda a=actor, b=bucket: a.create_multipart_upload(Bucket=b, Key="mp"),
        ]
        for attempt in attempts:
            with pytest.raises(ClientError) as info:
                attempt()
            assert error_code(info) == "AccessDenied", info.value.response
            assert status(info) == 403
        for call in (
            lambda a=actor, b=bucket, k=key: a.head_object(Bucket=b, Key=k),
            lambda a=actor, b=bucket: a.head_bucket(Bucket=b),
        ):
            with pytest.raises(ClientError) as info:
                call()
            assert status(info) == 403

    # Copying out of someone else's bucket is denied too.
    with pytest.raises(ClientError) as info:
        client.copy_object(
            Bucket=alice_bucket, Key="stolen", CopySource={"Bucket": root_bucket, "Key": "r"}
        )
    assert error_code(info) == "AccessDenied"
    # ...and copying into it.
    with pytest.raises(ClientError) as info:
        client.copy_object(
            Bucket=root_bucket, Key="planted", CopySource={"Bucket": alice_bucket, "Key": "a"}
        )
    assert error_code(info) == "AccessDenied"

    # Nothing changed on either side.
    assert s3.get_object(Bucket=root_bucket, Key="r")["Body"].read() == b"root data"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=root_bucket)["Contents"]] == ["r"]
    assert client.get_object(Bucket=alice_bucket, Key="a")["Body"].read() == b"alice data"
    assert [o["Key"] for o in client.list_objects_v2(Bucket=alice_bucket)["Contents"]] == ["a"]
    assert s3.list_multipart_uploads(Bucket=root_bucket).get("Uploads", []) == []


def test_multipart_upload_of_another_user(server, s3, alice):
    _, _, _, client = alice
    bucket = unique("rb")
    s3.create_bucket(Bucket=bucket)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    try:
        for call in (
            lambda: client.upload_part(
                Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=b"x"
            ),
            lambda: client.list_parts(Bucket=bucket, Key="mp", UploadId=upload),
            lambda: client.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload),
            lambda: client.complete_multipart_upload(
                Bucket=bucket,
                Key="mp",
                UploadId=upload,
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"x"'}]},
            ),
        ):
            with pytest.raises(ClientError) as info:
                call()
            assert error_code(info) == "AccessDenied"
        assert s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload).get("Parts", []) == []
    finally:
        s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload)


def test_bucket_names_are_global(server, s3, alice):
    _, _, _, client = alice
    root_bucket, alice_bucket = unique("rb"), unique("ab")
    s3.create_bucket(Bucket=root_bucket)
    client.create_bucket(Bucket=alice_bucket)
    with pytest.raises(ClientError) as info:
        client.create_bucket(Bucket=root_bucket)
    assert error_code(info) == "BucketAlreadyExists"
    assert status(info) == 409
    with pytest.raises(ClientError) as info:
        s3.create_bucket(Bucket=alice_bucket)
    assert error_code(info) == "BucketAlreadyExists"
    with pytest.raises(ClientError) as info:
        client.create_bucket(Bucket=alice_bucket)
    # us-east-1 answers a repeated CreateBucket by the owner with success (legacy) or
    # BucketAlreadyOwnedByYou; either way the bucket keeps its owner.
    assert error_code(info) == "BucketAlreadyOwnedByYou"
    assert root_bucket not in {b["Name"] for b in client.list_buckets()["Buckets"]}


def test_user_list(server, alice):
    name, access, _, _ = alice
    data = str(server.data_dirs[0])
    out = holdfast("user", "list", "--data", data).stdout
    line = next((line for line in out.splitlines() if line.split()[:1] == [name]), None)
    assert line is not None, out
    assert access in line
    records = json.loads(holdfast("user", "list", "--json", "--data", data).stdout)
    mine = [r for r in records if r["name"] == name]
    assert mine and mine[0]["access_key"] == access
    assert not mine[0].get("disabled")
    # The secret is printed once, at creation, and never listed.
    assert "secret" not in json.dumps(records).lower()


def test_user_add_refuses_duplicates_and_root(server, alice):
    name, access, _, _ = alice
    data = str(server.data_dirs[0])
    dup = holdfast("user", "add", name, "--data", data, check=False)
    assert dup.returncode != 0
    assert "exists" in dup.stderr
    root = holdfast("user", "add", "root", "--data", data, check=False)
    assert root.returncode != 0
    # The original keys still work.
    records = json.loads(holdfast("user", "list", "--json", "--data", data).stdout)
    assert [r["access_key"] for r in records if r["name"] == name] == [access]


def test_user_add_without_index(tmp_path):
    proc = holdfast("user", "add", "bob", "--data", str(tmp_path / "nothing"), check=False)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
