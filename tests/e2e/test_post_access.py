"""POST object goes through the one access decision, over HTTP and HTTPS: an unsigned form
upload where the bucket policy lets everyone write a prefix (and nowhere else), a form signed
by another user that a policy allows, an explicit Deny that binds the owner's own signed
form, the ``acl`` field; and the bucket's CORS headers on the answers, errors included."""

from __future__ import annotations

import json

import pytest
import requests

from tests.e2e.test_buckets import add_user

ORIGIN = "http://app.example"


def allow(bucket: str, principal, prefix: str, effect: str = "Allow") -> dict:
    return {
        "Sid": f"{effect}{prefix.strip('/')}",
        "Effect": effect,
        "Principal": principal,
        "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{bucket}/{prefix}*",
    }


def put_policy(s3, bucket: str, *statements: dict) -> None:
    doc = {"Version": "2012-10-17", "Statement": list(statements)}
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(doc))


def form_post(server, bucket: str, fields: dict, content: bytes = b"data", **kw):
    return requests.post(
        f"{server.endpoint}/{bucket}",
        data=fields,
        files={"file": ("f.txt", content)},
        verify=server.ca_path if server.tls else None,
        timeout=30,
        **kw,
    )


def keys(s3, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_unsigned_post_where_the_policy_lets_everyone_write(server, s3, bucket):
    reply = form_post(server, bucket, {"key": "incoming/a.txt"})
    assert reply.status_code == 403 and "<Code>AccessDenied</Code>" in reply.text
    put_policy(s3, bucket, allow(bucket, "*", "incoming/"))
    reply = form_post(server, bucket, {"key": "incoming/${filename}"}, b"hello")
    assert reply.status_code == 204, reply.text
    assert s3.get_object(Bucket=bucket, Key="incoming/f.txt")["Body"].read() == b"hello"
    reply = form_post(server, bucket, {"key": "elsewhere/a.txt"})
    assert reply.status_code == 403 and "<Code>AccessDenied</Code>" in reply.text
    # A signature without the policy it signs is no signed form.
    reply = form_post(server, bucket, {"key": "incoming/b.txt", "signature": "x"})
    assert reply.status_code == 400
    assert keys(s3, bucket) == ["incoming/f.txt"]


@pytest.fixture
def uploader(server):
    ak, sk = add_user(server, f"uploader-{server.port}")
    return f"uploader-{server.port}", server.client(ak, sk, signature_version="s3v4")


def test_signed_post_by_another_user_follows_the_policy(server, s3, bucket, uploader):
    name, client = uploader
    post = client.generate_presigned_post(bucket, "shared/${filename}", ExpiresIn=300)
    reply = requests.post(
        post["url"],
        data=post["fields"],
        files={"file": ("a.txt", b"by policy")},
        verify=server.ca_path if server.tls else None,
        timeout=30,
    )
    assert reply.status_code == 403, reply.text  # not the owner, no policy yet
    user = {"AWS": f"arn:aws:iam::000000000000:user/{name}"}
    put_policy(s3, bucket, allow(bucket, user, "shared/"))
    reply = requests.post(
        post["url"],
        data=post["fields"],
        files={"file": ("a.txt", b"by policy")},
        verify=server.ca_path if server.tls else None,
        timeout=30,
    )
    assert reply.status_code == 204, reply.text
    assert s3.get_object(Bucket=bucket, Key="shared/a.txt")["Body"].read() == b"by policy"
    outside = client.generate_presigned_post(bucket, "private/x", ExpiresIn=300)
    reply = requests.post(
        outside["url"],
        data=outside["fields"],
        files={"file": ("x", b"no")},
        verify=server.ca_path if server.tls else None,
        timeout=30,
    )
    assert reply.status_code == 403
    assert keys(s3, bucket) == ["shared/a.txt"]


def test_explicit_deny_binds_the_owners_signed_post(server, s3, bucket):
    put_policy(s3, bucket, allow(bucket, "*", "locked/", effect="Deny"))
    post = s3.generate_presigned_post(bucket, "locked/x", ExpiresIn=300)
    reply = requests.post(
        post["url"],
        data=post["fields"],
        files={"file": ("x", b"no")},
        verify=server.ca_path if server.tls else None,
        timeout=30,
    )
    assert reply.status_code == 403 and "<Code>AccessDenied</Code>" in reply.text
    assert keys(s3, bucket) == []


def test_acl_field(server, s3, bucket):
    post = s3.generate_presigned_post(
        bucket, "pub", Fields={"acl": "public-read"}, Conditions=[{"acl": "public-read"}]
    )
    reply = requests.post(
        post["url"],
        data=post["fields"],
        files={"file": ("x", b"public")},
        verify=server.ca_path if server.tls else None,
        timeout=30,
    )
    assert reply.status_code == 204, reply.text
    anon = requests.get(
        f"{server.endpoint}/{bucket}/pub", verify=server.ca_path if server.tls else None, timeout=10
    )
    assert anon.status_code == 200 and anon.content == b"public"


def test_cors_headers_on_post_answers(server, s3, bucket):
    rules = {"CORSRules": [{"AllowedOrigins": [ORIGIN], "AllowedMethods": ["POST"]}]}
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=rules)
    put_policy(s3, bucket, allow(bucket, "*", "up/"))
    ok = form_post(server, bucket, {"key": "up/a"}, headers={"Origin": ORIGIN})
    assert ok.status_code == 204
    assert ok.headers["Access-Control-Allow-Origin"] == ORIGIN
    refused = form_post(server, bucket, {"key": "down/a"}, headers={"Origin": ORIGIN})
    assert refused.status_code == 403
    assert refused.headers["Access-Control-Allow-Origin"] == ORIGIN
    other = form_post(server, bucket, {"key": "up/b"}, headers={"Origin": "http://evil.example"})
    assert other.status_code == 204 and "Access-Control-Allow-Origin" not in other.headers
    assert keys(s3, bucket) == ["up/a", "up/b"]
