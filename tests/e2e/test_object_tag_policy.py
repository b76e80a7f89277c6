"""``s3:ExistingObjectTag/<key>`` in a bucket policy, end to end over HTTP and HTTPS: the tags
of the object a request names reach the evaluator for the object actions S3 gives that key
for (GetObject, HeadObject, Get/Put/DeleteObjectTagging, ...), for an Allow to another user
and for a Deny that binds the owner too."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.e2e.test_buckets import add_user


def code_of(call) -> str:
    with pytest.raises(ClientError) as exc:
        call()
    return exc.value.response["Error"]["Code"] or str(
        exc.value.response["ResponseMetadata"]["HTTPStatusCode"]
    )


def test_existing_object_tag_allows_and_denies(server, s3, bucket):
    name = f"tagreader-{server.port}"
    other = server.client(*add_user(server, name))
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "SharedByTag",
                "Effect": "Allow",
                "Principal": {"AWS": [f"arn:aws:iam::000000000000:user/{name}"]},
                "Action": ["s3:GetObject", "s3:GetObjectTagging"],
                "Resource": f"arn:aws:s3:::{bucket}/*",
                "Condition": {"StringEquals": {"s3:ExistingObjectTag/share": "yes"}},
            },
            {
                "Sid": "NeverSecret",
                "Effect": "Deny",
                "Principal": "*",
                "Action": ["s3:GetObject", "s3:PutObjectTagging", "s3:DeleteObjectTagging"],
                "Resource": f"arn:aws:s3:::{bucket}/*",
                "Condition": {"StringEquals": {"s3:ExistingObjectTag/class": "secret"}},
            },
        ],
    }
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    s3.put_object(Bucket=bucket, Key="shared", Body=b"shared", Tagging="share=yes")
    s3.put_object(Bucket=bucket, Key="plain", Body=b"plain")
    s3.put_object(Bucket=bucket, Key="secret", Body=b"secret", Tagging="class=secret&share=yes")

    assert other.get_object(Bucket=bucket, Key="shared")["Body"].read() == b"shared"
    assert other.head_object(Bucket=bucket, Key="shared")["ContentLength"] == 6
    assert other.get_object_tagging(Bucket=bucket, Key="shared")["TagSet"]
    assert code_of(lambda: other.get_object(Bucket=bucket, Key="plain")) == "AccessDenied"
    # The explicit Deny wins over the Allow, and binds the owner as well.
    assert code_of(lambda: other.get_object(Bucket=bucket, Key="secret")) == "AccessDenied"
    assert code_of(lambda: s3.get_object(Bucket=bucket, Key="secret")) == "AccessDenied"
    untag = lambda: s3.delete_object_tagging(Bucket=bucket, Key="secret")  # noqa: E731
    assert code_of(untag) == "AccessDenied"
    assert s3.get_object(Bucket=bucket, Key="plain")["Body"].read() == b"plain"
    # Retagging the object changes what the next request is allowed.
    s3.put_object_tagging(
        Bucket=bucket, Key="plain", Tagging={"TagSet": [{"Key": "share", "Value": "yes"}]}
    )
    assert other.get_object(Bucket=bucket, Key="plain")["Body"].read() == b"plain"
    s3.delete_object_tagging(Bucket=bucket, Key="plain")
    assert code_of(lambda: other.get_object(Bucket=bucket, Key="plain")) == "AccessDenied"
    # A missing key is the handler's answer, not a crash of the condition lookup.
    assert code_of(lambda: s3.get_object(Bucket=bucket, Key="nope")) == "NoSuchKey"
