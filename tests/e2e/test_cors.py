"""CORS, end to end: Put/Get/DeleteBucketCors with boto3 over HTTP and HTTPS (validated whole;
MalformedXML/InvalidRequest change nothing), OPTIONS preflight answered from the rules, CORS
headers on actual requests that match. The real-browser test is tests/e2e/test_cors_browser.py."""

from __future__ import annotations

import pytest
import requests

from tests.e2e.test_access import error
from tests.e2e.test_auth_modes import signed_request

RULES = {
    "CORSRules": [
        {
            "ID": "app",
            "AllowedOrigins": ["https://*.example.com"],
            "AllowedMethods": ["GET", "PUT"],
            "AllowedHeaders": ["content-type", "x-amz-*"],
            "ExposeHeaders": ["ETag"],
            "MaxAgeSeconds": 600,
        },
        {"AllowedOrigins": ["*"], "AllowedMethods": ["HEAD"]},
    ]
}


def options(server, bucket: str, key: str = "k", **headers) -> requests.Response:
    return requests.options(
        f"{server.endpoint}/{bucket}/{key}",
        headers=headers,
        verify=server.ca_path if server.tls else None,
        timeout=10,
    )


def test_cors_put_get_delete(s3, bucket):
    assert error(lambda: s3.get_bucket_cors(Bucket=bucket)) == ("NoSuchCORSConfiguration", 404)
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=RULES)
    got = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert got[0] == RULES["CORSRules"][0]
    assert got[1] == RULES["CORSRules"][1]
    s3.delete_bucket_cors(Bucket=bucket)
    assert error(lambda: s3.get_bucket_cors(Bucket=bucket))[0] == "NoSuchCORSConfiguration"


def test_preflight_and_actual_headers(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    origin = "https://app.example.com"
    r = options(server, bucket, **{"Origin": origin, "Access-Control-Request-Method": "PUT"})
    assert r.status_code == 403  # no CORS configuration yet
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=RULES)
    r = options(
        server,
        bucket,
        **{
            "Origin": origin,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "Content-Type, X-Amz-Date",
        },
    )
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == origin
    assert r.headers["access-control-allow-methods"] == "GET, PUT"
    assert r.headers["access-control-allow-headers"] == "content-type, x-amz-date"
    assert r.headers["access-control-expose-headers"] == "ETag"
    assert r.headers["access-control-max-age"] == "600"
    # No rule: another origin, method or header.
    for h in (
        {"Origin": "https://evil.test", "Access-Control-Request-Method": "GET"},
        {"Origin": origin, "Access-Control-Request-Method": "DELETE"},
        {
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "x-other",
        },
    ):
        r = options(server, bucket, **h)
        assert r.status_code == 403 and b"AccessForbidden" in r.content, h
    # The wildcard origin rule allows HEAD from anywhere.
    r = options(
        server, bucket, **{"Origin": "http://x.test", "Access-Control-Request-Method": "HEAD"}
    )
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
    assert options(server, bucket, **{"Access-Control-Request-Method": "GET"}).status_code == 400
    # Actual requests: headers when a rule matches, none otherwise.
    reply = signed_request(server, "GET", f"/{bucket}/k", headers={"Origin": origin})
    assert reply.status == 200
    assert reply.headers["access-control-allow-origin"] == origin
    assert reply.headers["access-control-expose-headers"] == "ETag"
    reply = signed_request(server, "GET", f"/{bucket}/k", headers={"Origin": "https://evil.test"})
    assert "access-control-allow-origin" not in reply.headers
    reply = signed_request(server, "GET", f"/{bucket}/k")
    assert "access-control-allow-origin" not in reply.headers


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>", "MalformedXML"),
        (b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>PATCH</AllowedMethod></CORSRule></CORSConfiguration>", "InvalidRequest"),
        (b"<CORSConfiguration><CORSRule><AllowedOrigin>*.*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>", "InvalidRequest"),
        (b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin>", "MalformedXML"),
        (b"<CORSConfiguration/>", "MalformedXML"),
        (b"<Other/>", "MalformedXML"),
    ],
)  # fmt: skip
def test_bad_cors_changes_nothing(server, s3, bucket, body, code):
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=RULES)
    reply = signed_request(server, "PUT", f"/{bucket}?cors", body=body)
    assert reply.status == 400 and f"<Code>{code}</Code>".encode() in reply.body
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"][0]["ID"] == "app"
