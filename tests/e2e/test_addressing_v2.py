"""Legacy Signature Version 2 (what boto3 presigns with by default for a custom endpoint, and
what older tools send) and virtual-host-style addressing."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import boto3
import pytest
import requests
from botocore.config import Config as BotoConfig

from tests.conftest import ROOT_AK, ROOT_SK, unique


def test_default_presigned_urls_work(server, bucket):
    """boto3.generate_presigned_url with default settings yields SigV2 query auth."""
    s3 = server.client()
    key = unique("pre sign/é")
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key})
    assert "AWSAccessKeyId=" in put_url  # really the SigV2 form
    r = requests.put(put_url, data=b"via v2", verify=server.ca_path or True)
    assert r.status_code == 200, r.text
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key})
    r = requests.get(get_url, verify=server.ca_path or True)
    assert r.status_code == 200 and r.content == b"via v2"
    tampered = get_url.replace("Signature=", "Signature=A")
    r = requests.get(tampered, verify=server.ca_path or True)
    assert r.status_code == 403 and b"SignatureDoesNotMatch" in r.content


def test_expired_v2_presigned_url(server, bucket):
    s3 = server.client()
    s3.put_object(Bucket=bucket, Key="x", Body=b"1")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "x"}, ExpiresIn=-10
    )
    r = requests.get(url, verify=server.ca_path or True)
    assert r.status_code == 403 and b"AccessDenied" in r.content


def test_v2_header_signed_client(http_server):
    s3 = http_server.client(signature_version="s3")
    name = unique("v2hdr")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="a/b c", Body=b"hello", Metadata={"k": "v"})
    got = s3.get_object(Bucket=name, Key="a/b c")
    assert got["Body"].read() == b"hello" and got["Metadata"] == {"k": "v"}
    assert [o["Key"] for o in s3.list_objects(Bucket=name)["Contents"]] == ["a/b c"]
    bad = boto3.client(
        "s3",
        endpoint_url=http_server.endpoint,
        aws_access_key_id=ROOT_AK,
        aws_secret_access_key=ROOT_SK + "x",
        region_name="us-east-1",
        config=BotoConfig(signature_version="s3", retries={"max_attempts": 1}),
    )
    with pytest.raises(bad.exceptions.ClientError) as e:
        bad.get_object(Bucket=name, Key="a/b c")
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def _connect_to_loopback(request, **_):
    """<bucket>.localhost does not resolve on every machine: keep the signed Host header,
    connect to 127.0.0.1."""
    parts = urlsplit(request.url)
    request.headers["Host"] = parts.netloc
    request.url = urlunsplit(parts._replace(netloc=f"127.0.0.1:{parts.port}"))


def test_virtual_host_style(http_server):
    """Requests to <bucket>.localhost name the bucket in the Host header."""
    endpoint = f"http://localhost:{http_server.port}"
    vh = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ROOT_AK,
        aws_secret_access_key=ROOT_SK,
        region_name="us-east-1",
        config=BotoConfig(s3={"addressing_style": "virtual"}),
    )
    vh.meta.events.register("before-send", _connect_to_loopback)
    name = unique("vhost")
    path = http_server.client()
    path.create_bucket(Bucket=name)
    vh.put_object(Bucket=name, Key="dir/file.txt", Body=b"virtual")
    assert path.get_object(Bucket=name, Key="dir/file.txt")["Body"].read() == b"virtual"
    listed = vh.list_objects_v2(Bucket=name, Prefix="dir/")
    assert [o["Key"] for o in listed["Contents"]] == ["dir/file.txt"]
