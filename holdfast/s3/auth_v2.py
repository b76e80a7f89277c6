"""AWS Signature Version 2 (HMAC-SHA1), header and presigned-query forms.

Legacy, but still what boto3's ``generate_presigned_url`` produces for a custom endpoint
unless told otherwise, and what older tools send; refusing it would break "unmodified
clients". It signs no payload, so such requests are treated as UNSIGNED-PAYLOAD: the body is
still checked against Content-MD5 and x-amz-checksum-* when sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import time
from collections.abc import Callable, Mapping
from urllib.parse import unquote

from holdfast.consttime import same
from holdfast.errors import S3Error
from holdfast.s3.auth import MAX_SKEW_SECONDS, AuthResult
from holdfast.s3.http import parse_http_date

# Sub-resources that are part of the string to sign (the list SDKs use).
SIGNED_SUBRESOURCES = frozenset(
    {
        "accelerate", "acl", "cors", "defaultObjectAcl", "location", "logging", "partNumber",
        "policy", "requestPayment", "torrent", "versioning", "versionId", "versions",
        "website", "uploads", "uploadId", "response-content-type", "response-content-language",
        "response-expires", "response-cache-control", "response-content-disposition",
        "response-content-encoding", "delete", "lifecycle", "tagging", "restore",
        "storageClass", "notification", "replication", "analytics", "metrics", "inventory",
        "select", "select-type", "object-lock",
    }
)  # fmt: skip


def is_v2(headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
    auth = headers.get("authorization", "")
    return auth.startswith("AWS ") or ("AWSAccessKeyId" in query and "Signature" in query)


def canonical_resources(raw_path: str, raw_query: str, bucket_in_host: str | None) -> list[str]:
    """The resource as the client may have signed it: a bucket-level resource is "/bucket/"
    for botocore and "/bucket" for Go SDKs (rclone), so both are candidates."""
    path = f"/{bucket_in_host}{raw_path}" if bucket_in_host else raw_path
    query = _signed_subresources(raw_query)
    paths = [path + "/", path] if path != "/" and path.count("/") == 1 else [path]
    return [p + query for p in paths]


def _signed_subresources(raw_query: str) -> str:
    pairs = []
    for part in raw_query.split("&") if raw_query else []:
        name, eq, value = part.partition("=")
        if name in SIGNED_SUBRESOURCES:
            pairs.append((name, unquote(value) if eq else None))
    if not pairs:
        return ""
    pairs.sort(key=lambda p: p[0])
    return "?" + "&".join(n if v is None else f"{n}={v}" for n, v in pairs)


def string_to_sign(method: str, headers: Mapping[str, str], date_line: str, resource: str) -> str:
    amz = sorted(
        (name, ",".join(v.strip() for v in value.split(",")))
        for name, value in headers.items()
        if name.startswith("x-amz-")
    )
    lines = [
        method,
        headers.get("content-md5", "").strip(),
        headers.get("content-type", "").strip(),
        date_line,
    ]
    lines += [f"{name}:{value}" for name, value in amz]
    return "\n".join(lines) + "\n" + resource


def _sign(secret: str, text: str) -> str:
    digest = hmac.new(secret.encode(), text.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def verify_v2(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    lookup_secret: Callable[[str], str | None],
    bucket_in_host: str | None = None,
    now: float | None = None,
) -> AuthResult:
    now = time.time() if now is None else now
    resources = canonical_resources(raw_path, raw_query, bucket_in_host)
    presigned = not headers.get("authorization", "").startswith("AWS ")
    if presigned:
        access_key, signature = query["AWSAccessKeyId"], query["Signature"]
        expires = query.get("Expires", "")
        if not (expires.isascii() and expires.isdigit()):  # "²".isdigit() is True
            raise S3Error("AccessDenied", "Query-string authentication requires Expires")
        if int(expires) < now:
            raise S3Error("AccessDenied", "Request has expired")
        date_lines = [expires]
    else:
        access_key, sep, signature = headers["authorization"][4:].strip().rpartition(":")
        if not sep or not access_key:
            raise S3Error("AuthorizationHeaderMalformed")
        date_lines = _header_date_lines(headers, now)
    secret = lookup_secret(access_key)
    if secret is None:
        raise S3Error("InvalidAccessKeyId", AWSAccessKeyId=access_key)
    for date_line, resource in itertools.product(date_lines, resources):
        expected = _sign(secret, string_to_sign(method, headers, date_line, resource))
        if same(expected, signature):
            return AuthResult(
                access_key=access_key,
                signing_key=b"",
                seed_signature="",
                amz_date="",
                scope="",
                content_sha256="UNSIGNED-PAYLOAD",
                presigned=presigned,
            )
    raise S3Error("SignatureDoesNotMatch", AWSAccessKeyId=access_key)


def _header_date_lines(headers: Mapping[str, str], now: float) -> list[str]:
    """The Date line as signed: the Date header; with x-amz-date, S3 signs an empty line
    (some clients still sign Date), so both are accepted. The time must be within 15 min."""
    raw = headers.get("x-amz-date") or headers.get("date")
    if raw is None:
        raise S3Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date")
    stamp = parse_http_date(raw)
    if stamp is None:
        raise S3Error("AccessDenied", "AWS authentication requires a valid Date")
    if abs(stamp - now) > MAX_SKEW_SECONDS:
        raise S3Error("RequestTimeTooSkewed")
    date = headers.get("date", "")
    return [date, ""] if "x-amz-date" in headers else [date]
