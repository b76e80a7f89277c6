"""Server-side encryption end to end: SSE-S3 (header and bucket default) and SSE-C, with
boto3 over HTTP and HTTPS and with the AWS CLI. Stored blobs (and the index, for inline
objects) must never hold the plaintext."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Server, unique
from tests.e2e.test_clients import AWS, AwsCli

MiB = 1024 * 1024


def marker_data(size: int) -> bytes:
    """Random bytes with a recognisable text every 4 KiB, to grep the drives for."""
    data = bytearray(os.urandom(size))
    mark = b"PLAINTEXT-MARKER-" + os.urandom(4).hex().encode()
    for pos in range(0, size - len(mark), 4096):
        data[pos : pos + len(mark)] = mark
    return bytes(data)


def stored_anywhere(server: Server, needle: bytes) -> list[Path]:
    """Every file under the server's data directories that contains ``needle``."""
    hits = []
    for root in server.data_dirs:
        for path in root.rglob("*"):
            if path.is_file() and needle in path.read_bytes():
                hits.append(path)
    return hits


def code(exc: pytest.ExceptionInfo) -> tuple[int, str]:
    err = exc.value.response
    return err["ResponseMetadata"]["HTTPStatusCode"], err["Error"]["Code"]


@pytest.mark.parametrize("size", [1000, 3 * MiB + 12345])
def test_sse_s3_put_get_range_and_blob_holds_no_plaintext(server, s3, bucket, size):
    data = marker_data(size)
    key = unique()
    put = s3.put_object(Bucket=bucket, Key=key, Body=data, ServerSideEncryption="AES256")
    assert put["ServerSideEncryption"] == "AES256"
    assert put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'  # S3: MD5 of the data
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["ServerSideEncryption"] == "AES256"
    assert got["ContentLength"] == size
    assert got["Body"].read() == data
    for lo, hi in [(0, 0), (5, 5000), (MiB - 3, MiB + 40), (size - 10, size - 1)]:
        if hi >= size:
            continue
        part = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={lo}-{hi}")
        assert part["Body"].read() == data[lo : hi + 1], (lo, hi)
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == size and head["ServerSideEncryption"] == "AES256"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=key)["Contents"][0]
    assert listed["Size"] == size
    assert stored_anywhere(server, data[:32]) == []


def test_bucket_default_encryption(server, s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.get_bucket_encryption(Bucket=bucket)
    assert code(e) == (404, "ServerSideEncryptionConfigurationNotFoundError")
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    data = marker_data(200_000)
    s3.put_object(Bucket=bucket, Key="plain-put", Body=data)
    assert s3.head_object(Bucket=bucket, Key="plain-put")["ServerSideEncryption"] == "AES256"
    assert s3.get_object(Bucket=bucket, Key="plain-put")["Body"].read() == data
    assert stored_anywhere(server, data[:32]) == []
    s3.delete_bucket_encryption(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="after", Body=b"x")
    assert "ServerSideEncryption" not in s3.head_object(Bucket=bucket, Key="after")
    with pytest.raises(ClientError) as e:
        s3.get_bucket_encryption(Bucket=bucket)
    assert code(e)[1] == "ServerSideEncryptionConfigurationNotFoundError"


def test_malformed_encryption_config_changes_nothing(server, s3, bucket):
    import requests
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from tests.conftest import ROOT_AK, ROOT_SK

    for body in [
        b"<nope",
        b"<ServerSideEncryptionConfiguration/>",
        (
            b"<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault>"
            b"<SSEAlgorithm>DES</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule>"
            b"</ServerSideEncryptionConfiguration>"
        ),
    ]:
        url = f"{server.endpoint}/{bucket}?encryption"
        req = AWSRequest(
            "PUT",
            url,
            data=body,
            headers={"x-amz-content-sha256": hashlib.sha256(body).hexdigest()},
        )
        SigV4Auth(Credentials(ROOT_AK, ROOT_SK), "s3", "us-east-1").add_auth(req)
        r = requests.put(url, data=body, headers=dict(req.headers), verify=server.ca_path or False)
        assert r.status_code == 400 and b"<Code>MalformedXML</Code>" in r.content, r.content
    with pytest.raises(ClientError) as e:
        s3.get_bucket_encryption(Bucket=bucket)
    assert code(e)[1] == "ServerSideEncryptionConfigurationNotFoundError"


def sse_c(key: bytes, prefix: str = "SSECustomer") -> dict:
    return {f"{prefix}Algorithm": "AES256", f"{prefix}Key": key}


@pytest.fixture
def ckey() -> bytes:
    return os.urandom(32)


def test_sse_c_needs_https(http_server, ckey):
    s3 = http_server.client()
    bucket = unique("b")
    s3.create_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"secret", **sse_c(ckey))
    assert code(e) == (400, "InvalidRequest")
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="k")


@pytest.mark.parametrize("size", [5000, 2 * MiB + 7])
def test_sse_c_put_get_head_range_wrong_key(https_server, ckey, size):
    s3 = https_server.client()
    bucket = unique("b")
    s3.create_bucket(Bucket=bucket)
    data = marker_data(size)
    put = s3.put_object(Bucket=bucket, Key="k", Body=data, **sse_c(ckey))
    md5 = base64.b64encode(hashlib.md5(ckey).digest()).decode()
    assert put["SSECustomerKeyMD5"] == md5
    assert put["ETag"] != f'"{hashlib.md5(data).hexdigest()}"'  # not the data's MD5, as S3
    got = s3.get_object(Bucket=bucket, Key="k", **sse_c(ckey))
    assert got["Body"].read() == data and got["SSECustomerKeyMD5"] == md5
    assert got["ETag"] == put["ETag"]
    part = s3.get_object(Bucket=bucket, Key="k", Range="bytes=1000-4999", **sse_c(ckey))
    assert part["Body"].read() == data[1000:5000]
    assert s3.head_object(Bucket=bucket, Key="k", **sse_c(ckey))["ContentLength"] == size
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="k")
    assert code(e) == (400, "InvalidRequest")
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="k")
    assert code(e)[0] == 400
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="k", **sse_c(os.urandom(32)))
    assert code(e) == (403, "AccessDenied")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="k", Range="bytes=0-9", **sse_c(os.urandom(32)))
    assert code(e) == (403, "AccessDenied")
    assert stored_anywhere(https_server, data[:32]) == []
    # The key is never stored (nor logged): not in any file of the data directory.
    assert stored_anywhere(https_server, ckey) == []
    assert stored_anywhere(https_server, base64.b64encode(ckey)) == []
    assert base64.b64encode(ckey).decode() not in https_server.log()


def test_sse_c_bad_key_headers(https_server, ckey):
    s3 = https_server.client()
    bucket = unique("b")
    s3.create_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.put_object(
            Bucket=bucket,
            Key="k",
            Body=b"x",
            SSECustomerAlgorithm="AES256",
            SSECustomerKey=b"short",
        )
    assert code(e) == (400, "InvalidArgument")
    with pytest.raises(ClientError) as e:
        s3.put_object(
            Bucket=bucket,
            Key="k",
            Body=b"x",
            SSECustomerAlgorithm="AES256",
            SSECustomerKey=base64.b64encode(ckey).decode(),
            SSECustomerKeyMD5=base64.b64encode(hashlib.md5(b"other").digest()).decode(),
        )
    assert code(e) == (400, "InvalidArgument")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="aws:kms")
    assert code(e)[0] == 501
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_sse_c_copy_with_source_and_destination_keys(https_server, ckey):
    s3 = https_server.client()
    bucket = unique("b")
    s3.create_bucket(Bucket=bucket)
    data = marker_data(300_000)
    s3.put_object(Bucket=bucket, Key="src", Body=data, **sse_c(ckey))
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert code(e)[0] == 400
    other = os.urandom(32)
    s3.copy_object(
        Bucket=bucket,
        Key="dst",
        CopySource={"Bucket": bucket, "Key": "src"},
        **sse_c(ckey, "CopySourceSSECustomer"),
        **sse_c(other),
    )
    assert s3.get_object(Bucket=bucket, Key="dst", **sse_c(other))["Body"].read() == data
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key="dst", **sse_c(ckey))
    s3.copy_object(
        Bucket=bucket,
        Key="s3",
        CopySource={"Bucket": bucket, "Key": "src"},
        ServerSideEncryption="AES256",
        **sse_c(ckey, "CopySourceSSECustomer"),
    )
    assert s3.get_object(Bucket=bucket, Key="s3")["Body"].read() == data
    s3.copy_object(
        Bucket=bucket,
        Key="plain",
        CopySource={"Bucket": bucket, "Key": "src"},
        **sse_c(ckey, "CopySourceSSECustomer"),
    )
    plain = s3.get_object(Bucket=bucket, Key="plain")
    assert plain["Body"].read() == data and "ServerSideEncryption" not in plain


def test_sse_c_multipart_every_part(https_server, ckey):
    s3 = https_server.client()
    bucket = unique("b")
    s3.create_bucket(Bucket=bucket)
    parts = [marker_data(5 * MiB), marker_data(MiB + 3)]
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", **sse_c(ckey))
    uid = up["UploadId"]
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1, Body=parts[0])
    assert code(e)[0] == 400
    with pytest.raises(ClientError) as e:
        s3.upload_part(
            Bucket=bucket,
            Key="mp",
            UploadId=uid,
            PartNumber=1,
            Body=parts[0],
            **sse_c(os.urandom(32)),
        )
    assert code(e)[0] in (400, 403)
    etags = []
    for n, body in enumerate(parts, 1):
        r = s3.upload_part(
            Bucket=bucket, Key="mp", UploadId=uid, PartNumber=n, Body=body, **sse_c(ckey)
        )
        etags.append({"PartNumber": n, "ETag": r["ETag"]})
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=uid, MultipartUpload={"Parts": etags}
    )
    whole = b"".join(parts)
    assert s3.get_object(Bucket=bucket, Key="mp", **sse_c(ckey))["Body"].read() == whole
    lo, hi = 5 * MiB - 100, 5 * MiB + 100
    got = s3.get_object(Bucket=bucket, Key="mp", Range=f"bytes={lo}-{hi}", **sse_c(ckey))
    assert got["Body"].read() == whole[lo : hi + 1]
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key="mp")
    assert stored_anywhere(https_server, parts[1][:32]) == []


def test_sse_s3_multipart(server, s3, bucket):
    parts = [marker_data(5 * MiB), marker_data(1000)]
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", ServerSideEncryption="AES256")
    assert up["ServerSideEncryption"] == "AES256"
    etags = []
    for n, body in enumerate(parts, 1):
        r = s3.upload_part(
            Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=n, Body=body
        )
        etags.append({"PartNumber": n, "ETag": r["ETag"]})
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=up["UploadId"], MultipartUpload={"Parts": etags}
    )
    got = s3.get_object(Bucket=bucket, Key="mp")
    assert got["ServerSideEncryption"] == "AES256"
    assert got["Body"].read() == b"".join(parts)
    second = s3.get_object(Bucket=bucket, Key="mp", PartNumber=2)
    assert second["Body"].read() == parts[1] and second["ContentLength"] == len(parts[1])
    assert stored_anywhere(server, parts[0][:32]) == []


@pytest.mark.skipif(not AWS.exists(), reason="the AWS CLI is installed with the test extras")
def test_aws_cli_sse_s3_and_sse_c(https_server, tmp_path):
    aws = AwsCli(https_server, tmp_path / "home")
    bucket = unique("b")
    aws("s3", "mb", f"s3://{bucket}")
    src = tmp_path / "f.bin"
    data = marker_data(700_000)
    src.write_bytes(data)
    aws("s3", "cp", src, f"s3://{bucket}/s3.bin", "--sse", "AES256")
    ckey = os.urandom(32)
    keyfile = tmp_path / "key.bin"
    keyfile.write_bytes(ckey)
    aws(
        "s3",
        "cp",
        src,
        f"s3://{bucket}/c.bin",
        "--sse-c",
        "AES256",
        "--sse-c-key",
        f"fileb://{keyfile}",
    )
    down = tmp_path / "down.bin"
    aws("s3", "cp", f"s3://{bucket}/s3.bin", down)
    assert down.read_bytes() == data
    aws(
        "s3",
        "cp",
        f"s3://{bucket}/c.bin",
        down,
        "--sse-c",
        "AES256",
        "--sse-c-key",
        f"fileb://{keyfile}",
    )
    assert down.read_bytes() == data
    assert stored_anywhere(https_server, data[:32]) == []


def test_sse_s3_objects_survive_a_master_key_rotation(tmp_path):
    import subprocess
    import sys

    from tests.conftest import start_server

    server = start_server(tmp_path)
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="bkt")
        data = marker_data(150_000)
        s3.put_object(Bucket="bkt", Key="k", Body=data, ServerSideEncryption="AES256")
        server.stop()
        rotated = subprocess.run(
            [
                sys.executable,
                "-m",
                "holdfast.cli",
                "key",
                "rotate",
                "--data",
                str(server.data_dirs[0]),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert rotated.returncode == 0, rotated.stderr
        server.start()
        assert server.client().get_object(Bucket="bkt", Key="k")["Body"].read() == data
    finally:
        server.stop()
