"""The basic round trip over both transports, with boto3's default settings."""

import os

from tests.conftest import unique


def test_put_get_list_delete(s3, bucket):
    key = unique("smoke/")
    body = os.urandom(1000)
    put = s3.put_object(Bucket=bucket, Key=key, Body=body)
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == body
    assert got["ETag"] == put["ETag"]
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="smoke/")
    assert [o["Key"] for o in listed["Contents"]] == [key]
    s3.delete_object(Bucket=bucket, Key=key)
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
