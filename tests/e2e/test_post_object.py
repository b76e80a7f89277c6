"""POST object (browser form uploads): boto3's generate_presigned_post, sent by curl -F and by
requests; conditions, tampering and expiry refused with S3's error and nothing stored."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest
import requests
from botocore.exceptions import ClientError

from tests.conftest import Server, unique


def curl_post(server: Server, post: dict, file: Path, extra: dict | None = None):
    cmd = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "--max-time", "60"]
    if server.tls:
        cmd += ["--cacert", server.ca_path]
    for name, value in {**post["fields"], **(extra or {})}.items():
        cmd += ["--form-string", f"{name}={value}"]
    cmd += ["-F", f"file=@{file}", post["url"]]
    out = subprocess.run(cmd, capture_output=True, timeout=90, check=True).stdout
    body, _, status = out.rpartition(b"\n")
    return int(status), body


@pytest.fixture(params=["s3v4", "s3"])
def signer(request, server):
    """boto3 makes SigV2 POST policies by default (the "s3" signer), SigV4 with s3v4."""
    return server.client(signature_version=request.param)


def keys(s3, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_presigned_post_by_curl(server, s3, signer, bucket, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 17)
    f = tmp_path / "photo.jpg"
    f.write_bytes(data)
    post = signer.generate_presigned_post(
        bucket,
        "uploads/${filename}",
        Fields={"x-amz-meta-owner": "alice", "Content-Type": "image/jpeg"},
        Conditions=[
            {"x-amz-meta-owner": "alice"},
            {"Content-Type": "image/jpeg"},
            ["content-length-range", 1, 10 * 1024 * 1024],
        ],
        ExpiresIn=300,
    )
    status, body = curl_post(server, post, f)
    assert status == 204, body
    got = s3.get_object(Bucket=bucket, Key="uploads/photo.jpg")
    assert got["Body"].read() == data
    assert got["Metadata"] == {"owner": "alice"} and got["ContentType"] == "image/jpeg"


def test_success_action_status_and_redirect(server, s3, bucket, tmp_path):
    f = tmp_path / "a.txt"
    f.write_bytes(b"hello")
    post = s3.generate_presigned_post(
        bucket,
        "a.txt",
        Fields={"success_action_status": "201"},
        Conditions=[{"success_action_status": "201"}],
    )
    status, body = curl_post(server, post, f)
    assert status == 201 and b"<Key>a.txt</Key>" in body and b"<ETag>" in body
    post = s3.generate_presigned_post(
        bucket,
        "b.txt",
        Fields={"success_action_redirect": "https://example.com/done?x=1"},
        Conditions=[["starts-with", "$success_action_redirect", "https://example.com/"]],
    )
    r = requests.post(
        post["url"],
        data=post["fields"],
        files={"file": ("b.txt", b"hi")},
        allow_redirects=False,
        verify=server.ca_path or False,
    )
    assert r.status_code == 303
    assert r.headers["Location"].startswith("https://example.com/done?x=1&bucket=")
    assert s3.get_object(Bucket=bucket, Key="b.txt")["Body"].read() == b"hi"


def _post(server, post, fields=None, content=b"data"):
    return requests.post(
        post["url"],
        data={**post["fields"], **(fields or {})},
        files={"file": ("f.bin", content)},
        verify=server.ca_path or False,
    )


def test_violations_store_nothing(server, s3, signer, bucket):
    post = signer.generate_presigned_post(
        bucket, "fixed", Conditions=[["content-length-range", 2, 10]], ExpiresIn=300
    )
    cases = []
    # a tampered policy (a wider range), keeping the signature
    doc = json.loads(base64.b64decode(post["fields"]["policy"]))
    doc["conditions"] = [c for c in doc["conditions"] if not isinstance(c, list)]
    tampered = base64.b64encode(json.dumps(doc).encode()).decode()
    cases.append(({"policy": tampered}, b"data", 403, "SignatureDoesNotMatch"))
    sig_field = "x-amz-signature" if "x-amz-signature" in post["fields"] else "signature"
    sig = post["fields"][sig_field]
    bad_sig = ("A" if sig[0] != "A" else "B") + sig[1:]
    cases.append(({sig_field: bad_sig}, b"data", 403, "SignatureDoesNotMatch"))
    cases.append(({"key": "other"}, b"data", 403, "AccessDenied"))  # eq key violated
    cases.append(({"x-amz-meta-extra": "1"}, b"data", 403, "AccessDenied"))  # extra field
    cases.append(({}, b"x" * 11, 400, "EntityTooLarge"))
    cases.append(({}, b"x", 400, "EntityTooSmall"))
    for fields, content, status, code in cases:
        r = _post(server, post, fields, content)
        assert r.status_code == status and f"<Code>{code}</Code>" in r.text, (fields, r.text)
    expired = signer.generate_presigned_post(bucket, "late", ExpiresIn=-10)
    r = _post(server, expired)
    assert r.status_code == 403 and "expired" in r.text
    assert keys(s3, bucket) == []
    assert _post(server, post).status_code == 204
    assert keys(s3, bucket) == ["fixed"]


def test_sigv2_post(server, bucket):
    import boto3
    from botocore.client import Config

    from tests.conftest import ROOT_AK, ROOT_SK

    s3v2 = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=ROOT_AK,
        aws_secret_access_key=ROOT_SK,
        region_name="us-east-1",
        verify=server.ca_path if server.tls else None,
        config=Config(signature_version="s3"),
    )
    post = s3v2.generate_presigned_post(bucket, "v2.txt")
    assert "signature" in post["fields"]
    assert _post(server, post, content=b"v2").status_code == 204
    assert server.client().get_object(Bucket=bucket, Key="v2.txt")["Body"].read() == b"v2"


def test_post_to_a_bucket_the_policy_does_not_name_is_denied(server, s3, bucket):
    other = unique("b")
    s3.create_bucket(Bucket=other)
    post = s3.generate_presigned_post(other, "k")
    post["url"] = post["url"].replace(other, bucket)
    r = _post(server, post)
    assert r.status_code == 403
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="k")


def test_post_follows_the_bucket_default_encryption(server, s3, signer, bucket):
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    data = b"FORM-PLAINTEXT-" + os.urandom(8).hex().encode()
    post = signer.generate_presigned_post(bucket, "enc")
    assert _post(server, post, content=data).status_code == 204
    got = s3.get_object(Bucket=bucket, Key="enc")
    assert got["ServerSideEncryption"] == "AES256" and got["Body"].read() == data


def test_post_gets_the_bucket_default_retention(server, s3, signer):
    locked = f"t-{os.urandom(8).hex()}"
    s3.create_bucket(Bucket=locked, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket=locked,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 2}},
        },
    )
    post = signer.generate_presigned_post(locked, "form")
    assert _post(server, post).status_code == 204
    assert s3.head_object(Bucket=locked, Key="form")["ObjectLockMode"] == "GOVERNANCE"


def test_malformed_forms_are_client_errors(server, s3, bucket):
    url = f"{server.endpoint}/{bucket}"
    verify = server.ca_path or False
    cases = [
        ("multipart/form-data", b"garbage"),
        ("multipart/form-data; boundary=XX", b"garbage without any boundary"),
        (
            "multipart/form-data; boundary=XX",
            b'--XX\r\nContent-Disposition: form-data; name="key"\r\n\r\nk\r\n--XX--\r\n',
        ),
        (
            "multipart/form-data; boundary=XX",
            b'--XX\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\ncut',
        ),
        (
            "multipart/form-data; boundary=XX",
            b'--XX\r\nContent-Disposition: form-data; name="policy"\r\n\r\n!!notbase64\r\n--XX\r\nContent-Disposition: form-data; name="signature"\r\n\r\nx\r\n--XX\r\nContent-Disposition: form-data; name="AWSAccessKeyId"\r\n\r\nnobody\r\n--XX\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\nabc\r\n--XX--\r\n',
        ),
        (
            "multipart/form-data; boundary=XX",
            b'--XX\r\nContent-Disposition: form-data; name="big"\r\n\r\n'
            + b"x" * 70_000
            + b"\r\n--XX--\r\n",
        ),
    ]
    for ctype, body in cases:
        r = requests.post(url, data=body, headers={"Content-Type": ctype}, verify=verify)
        assert 400 <= r.status_code < 500 and "<Code>" in r.text, (body[:60], r.status_code, r.text)
    assert keys(s3, bucket) == []


def test_post_with_the_sse_field(server, s3, signer, bucket):
    fields = {"x-amz-server-side-encryption": "AES256"}
    post = signer.generate_presigned_post(bucket, "sse", Fields=fields, Conditions=[fields])
    assert _post(server, post, content=b"secret form").status_code == 204
    got = s3.get_object(Bucket=bucket, Key="sse")
    assert got["ServerSideEncryption"] == "AES256" and got["Body"].read() == b"secret form"
    c = {"x-amz-server-side-encryption-customer-algorithm": "AES256"}
    post = signer.generate_presigned_post(bucket, "ssec", Fields=c, Conditions=[c])
    assert _post(server, post).status_code == 501
    assert keys(s3, bucket) == ["sse"]
