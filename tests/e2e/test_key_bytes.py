"""A NUL character in an object key, a copy source, a tag or a listing parameter is a client
mistake: 400 InvalidArgument with S3's error XML, on both index engines, and nothing changes.

PostgreSQL's ``text`` cannot hold NUL (SQLite's can), so before the S3 front refused it a
NUL reached the index and the PostgreSQL engine answered 500. These tests start one server on
each engine, whatever HOLDFAST_TEST_INDEX says, and send the same requests to both.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from botocore.exceptions import ClientError

from tests.conftest import Server, start_server, unique


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def engine_server(request, tmp_path_factory) -> Iterator[Server]:
    if request.param == "postgres":
        request.getfixturevalue("postgres")  # the session's PostgreSQL (skips without one)
    server = start_server(tmp_path_factory.mktemp(f"nul-{request.param}"), index=request.param)
    yield server
    server.stop()


@pytest.fixture
def s3(engine_server):
    return engine_server.client()


@pytest.fixture
def filled(s3) -> tuple[str, dict]:
    """A bucket with one object; returns it and a snapshot of what a listing shows."""
    bucket = unique("nul")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="plain", Body=b"kept", Tagging="a=b")
    return bucket, snapshot(s3, bucket)


def snapshot(s3, bucket: str) -> dict:
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    tags = s3.get_object_tagging(Bucket=bucket, Key="plain")["TagSet"]
    return {
        "keys": [(o["Key"], o["ETag"], o["Size"]) for o in listed],
        "uploads": [u["Key"] for u in uploads],
        "tags": tags,
        "body": s3.get_object(Bucket=bucket, Key="plain")["Body"].read(),
    }


def assert_invalid(call, *args, code: str = "InvalidArgument", **kwargs) -> None:
    with pytest.raises(ClientError) as e:
        call(*args, **kwargs)
    status = e.value.response["ResponseMetadata"]["HTTPStatusCode"]
    got = e.value.response["Error"]["Code"]
    assert (status, got) == (400, code), e.value.response


BAD_KEYS = ["a\x00b", "\x00", "dir/\x00/x", "end\x00"]


@pytest.mark.parametrize("key", BAD_KEYS, ids=["middle", "alone", "segment", "end"])
def test_nul_in_a_key_is_a_400_on_every_object_operation(s3, filled, key):
    bucket, before = filled
    assert_invalid(s3.put_object, Bucket=bucket, Key=key, Body=b"x")
    assert_invalid(s3.get_object, Bucket=bucket, Key=key)
    assert_invalid(s3.delete_object, Bucket=bucket, Key=key)
    assert_invalid(s3.create_multipart_upload, Bucket=bucket, Key=key)
    assert_invalid(s3.put_object_tagging, Bucket=bucket, Key=key, Tagging={"TagSet": []})
    assert_invalid(s3.copy_object, Bucket=bucket, Key=key, CopySource=f"{bucket}/plain")
    assert_invalid(s3.copy_object, Bucket=bucket, Key="dest", CopySource=f"{bucket}/{key}")
    with pytest.raises(ClientError) as e:  # HEAD has no body: the status says it
        s3.head_object(Bucket=bucket, Key=key)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert snapshot(s3, bucket) == before


@pytest.mark.parametrize("param", ["Prefix", "StartAfter", "Delimiter"])
def test_nul_in_a_listing_parameter_is_a_400(s3, filled, param):
    bucket, before = filled
    assert_invalid(s3.list_objects_v2, Bucket=bucket, **{param: "pl\x00"})
    v1 = {"StartAfter": "Marker"}.get(param, param)
    assert_invalid(s3.list_objects, Bucket=bucket, **{v1: "pl\x00"})
    assert_invalid(s3.list_object_versions, Bucket=bucket, Prefix="pl\x00")
    assert_invalid(s3.list_multipart_uploads, Bucket=bucket, Prefix="pl\x00")
    assert snapshot(s3, bucket) == before


def test_nul_in_a_tag_header_is_a_400(s3, filled):
    """A tag's characters are S3's short list (InvalidTag, as AWS answers)."""
    bucket, before = filled
    put = s3.put_object
    assert_invalid(put, Bucket=bucket, Key="plain", Body=b"new", Tagging="a=%00", code="InvalidTag")
    assert_invalid(put, Bucket=bucket, Key="other", Body=b"new", Tagging="%00=b", code="InvalidTag")
    assert snapshot(s3, bucket) == before


def test_the_error_is_s3_xml_and_the_server_logs_no_traceback(engine_server, filled):
    bucket, before = filled
    log_before = len(engine_server.log())
    s3 = engine_server.client()
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "x\x00y"})
    assert "%00" in url
    r = requests.put(url, data=b"body", timeout=10)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/xml")
    assert "<Code>InvalidArgument</Code>" in r.text
    assert snapshot(s3, bucket) == before
    assert "Traceback" not in engine_server.log()[log_before:]
