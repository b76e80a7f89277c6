"""The UI's bucket and object calls, on top of the service layer.

The browser never signs S3 requests: it calls these JSON endpoints with its session cookie,
and they act as the signed-in user through the same service calls the S3 front uses, with
the same ownership checks. Uploads and downloads stream through in pieces, so a large file
is never held in memory (DESIGN.md, invariant 8).
"""

from __future__ import annotations

import mimetypes
import time
from typing import TYPE_CHECKING
from urllib.parse import quote

from holdfast.checksums import ExpectedChecksums
from holdfast.errors import S3Error
from holdfast.index.records import ObjectRecord
from holdfast.s3.body import IncomingBody
from holdfast.s3.http import Request, Response, http_date, json_response
from holdfast.s3.ops.common import MAX_PUT_SIZE, validate_key
from holdfast.service.objects import DataLost

if TYPE_CHECKING:
    from holdfast.ops.ui.session import Session
    from holdfast.service import Service

DEFAULT_ALGORITHM = "CRC64NVME"  # as S3 PUT: every object gets an end-to-end checksum
MAX_PAGE = 1000
MAX_BULK_DELETE = 1000  # as S3 DeleteObjects
# Previews are bounded: an image is shown whole only up to this size, text only its start.
MAX_IMAGE_PREVIEW = 4 * 1024 * 1024
TEXT_PREVIEW = 64 * 1024
# Raster formats only: an SVG can carry script, and a preview must never run content.
IMAGE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp"}
)
TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/xml",
        "application/javascript",
        "application/x-yaml",
        "application/yaml",
        "application/x-sh",
        "application/toml",
        "application/sql",
    }
)
GENERIC_TYPES = frozenset({"", "binary/octet-stream", "application/octet-stream"})
MAX_SHARE_SECONDS = 7 * 24 * 3600  # the longest a SigV4 presigned URL may live


def _checked_key(key: str) -> str:
    try:
        validate_key(key)
    except UnicodeError:  # a lone surrogate: no UTF-8 key can hold it
        raise S3Error("InvalidArgument", "the key is not valid UTF-8") from None
    return key


def _key(request: Request) -> str:
    key = request.query.get("key", "")
    if not key:
        raise S3Error("InvalidArgument", "the 'key' parameter is required")
    return _checked_key(key)


async def list_buckets(service: Service, session: Session) -> dict:
    """The user's own buckets with their object counts and sizes (the index's per-bucket
    totals): never another user's, root included."""
    usage = await service.buckets.usage(session.user)
    return {
        "buckets": [
            {
                "name": u.bucket.name,
                "created": u.bucket.created,
                "objects": u.objects,
                "bytes": u.bytes,
                "damaged": u.damaged,
            }
            for u in usage
        ]
    }


async def create_bucket(service: Service, session: Session, name: str) -> dict:
    record = await service.buckets.create(session.user, name, service.config.region)
    return {"name": record.name, "created": record.created}


async def delete_bucket(service: Service, session: Session, name: str) -> dict:
    await service.buckets.delete(session.user, name)
    return {"name": name, "result": "deleted"}


async def list_objects(service: Service, session: Session, bucket: str, request: Request) -> dict:
    """One page of a bucket 'folder': the keys directly under ``prefix`` and the sub-prefixes
    ('/' delimiter), resuming after ``after``."""
    await service.buckets.get_owned(session.user, bucket)
    prefix = request.query.get("prefix", "")
    after = request.query.get("after") or None
    try:
        limit = max(1, min(int(request.query.get("max") or MAX_PAGE), MAX_PAGE))
    except ValueError:
        raise S3Error("InvalidArgument", "max must be a number") from None
    page = await service.listing.page(bucket, prefix, "/", after, limit)
    damaged = (
        await service.buckets.damaged_keys(bucket, page.entries[0].key, page.entries[-1].key)
        if page.entries
        else set()
    )
    return {
        "bucket": bucket,
        "prefix": prefix,
        "prefixes": page.prefixes,
        "objects": [
            {
                "key": e.key,
                "size": e.size,
                "etag": e.etag,
                "last_modified": e.last_modified,
                "damaged": e.key in damaged,
            }
            for e in page.entries
        ],
        "truncated": page.truncated,
        "next": page.last if page.truncated else None,
    }


async def upload(service: Service, session: Session, bucket: str, request: Request) -> dict:
    """Stream the request body into a new object, as a PUT would. The browser sends the file
    itself as the body (XMLHttpRequest.send(file)), so Content-Length is known up front."""
    key = _key(request)
    request.bucket, request.key = bucket, key  # so the request log can find this upload
    expected = ExpectedChecksums(None, None, None, None)
    body = IncomingBody(request, None, expected, MAX_PUT_SIZE, default_algorithm=DEFAULT_ALGORITHM)
    if body.declared is None:
        raise S3Error("MissingContentLength", status=411)
    await service.buckets.get_owned(session.user, bucket)  # before receiving a byte
    received = await service.objects.receive(body, body.declared, bucket=bucket)
    verified = received.verified
    record = ObjectRecord(
        bucket=bucket,
        key=key,
        size=received.segment.size,
        etag=verified.etag,
        last_modified=time.time(),
        segments=[received.segment],
        content_type=request.headers.get("content-type") or "binary/octet-stream",
        checksum_algorithm=verified.algorithm,
        checksum_type="FULL_OBJECT" if verified.algorithm else None,
        checksum_value=verified.checksum_b64,
        inline=received.inline,
    )
    await service.objects.commit(record, owner=session.user)
    return {"bucket": bucket, "key": key, "size": record.size, "etag": record.etag}


def attachment(key: str) -> str:
    """Content-Disposition naming the file after the last part of its key (RFC 6266 with
    an ASCII fallback), so no browser ever renders an object inside the admin UI's origin."""
    name = key.rsplit("/", 1)[-1] or "download"
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;' else "_" for c in name)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


async def download(service: Service, session: Session, bucket: str, request: Request) -> Response:
    key = _key(request)
    request.bucket, request.key = bucket, key
    obj = await service.objects.get_owned(session.user, bucket, key)
    headers = [
        # Always a download, never content run in the UI's origin: the object may be HTML.
        ("Content-Type", "application/octet-stream"),
        ("Content-Disposition", attachment(key)),
        ("Content-Length", str(obj.size)),
        ("ETag", obj.etag),
        ("Last-Modified", http_date(obj.last_modified)),
        ("X-Content-Type-Options", "nosniff"),
        ("Content-Security-Policy", "sandbox; default-src 'none'"),
        ("Cache-Control", "no-store"),
    ]
    wanted = obj.size and request.method != "HEAD"
    body = service.objects.read(obj, 0, obj.size) if wanted else b""
    return Response(200, headers, body)


def _media_type(obj: ObjectRecord) -> str:
    """The stored Content-Type without parameters; for a generic one (boto3 and many tools
    send none), what the key's extension suggests."""
    ctype = obj.content_type.split(";", 1)[0].strip().lower()
    if ctype in GENERIC_TYPES:
        ctype = (mimetypes.guess_type(obj.key)[0] or ctype).lower()
    return ctype


def preview_kind(obj: ObjectRecord) -> str | None:
    """Which preview the panel shows: "image", "text", or None for none."""
    ctype = _media_type(obj)
    if ctype in IMAGE_TYPES and obj.size <= MAX_IMAGE_PREVIEW:
        return "image"
    if ctype.startswith("text/") or ctype in TEXT_TYPES or ctype.endswith(("+json", "+xml")):
        return "text"
    return None


async def info(service: Service, session: Session, bucket: str, request: Request) -> dict:
    """What the detail panel shows: the object's metadata as HEAD would give it."""
    key = _key(request)
    obj = await service.objects.get_owned(session.user, bucket, key)
    return {
        "bucket": bucket,
        "key": key,
        "size": obj.size,
        "etag": obj.etag,
        "last_modified": obj.last_modified,
        "content_type": obj.content_type,
        "headers": obj.headers,
        "metadata": obj.meta,
        "checksum": (
            {
                "algorithm": obj.checksum_algorithm,
                "type": obj.checksum_type,
                "value": obj.checksum_value,
            }
            if obj.checksum_algorithm
            else None
        ),
        "parts": obj.parts_count,
        "state": obj.state,
        "preview": preview_kind(obj),
    }


async def preview(service: Service, session: Session, bucket: str, request: Request) -> Response:
    """A bounded preview: a raster image whole (up to 4 MiB) with its own type, or the first
    64 KiB of a text as text/plain. Sandboxed and never sniffed, like a download."""
    key = _key(request)
    request.bucket, request.key = bucket, key
    obj = await service.objects.get_owned(session.user, bucket, key)
    kind = preview_kind(obj)
    if kind is None:
        raise S3Error("InvalidArgument", "no preview for this type of object")
    end = obj.size if kind == "image" else min(obj.size, TEXT_PREVIEW)
    body = bytearray()
    try:
        if end:
            async for chunk in service.objects.read(obj, 0, end):
                body += chunk
    except DataLost:
        return json_response(
            500, {"error": "DataLost", "message": "no good copy: restore from backup, or delete it"}
        )
    ctype = _media_type(obj) if kind == "image" else "text/plain; charset=utf-8"
    headers = [
        ("Content-Type", ctype),
        ("Content-Length", str(len(body))),
        ("X-Content-Type-Options", "nosniff"),
        ("Content-Security-Policy", "sandbox; default-src 'none'"),
        ("Cache-Control", "no-store"),
        ("X-Holdfast-Truncated", "true" if end < obj.size else "false"),
    ]
    return Response(200, headers, bytes(body))


def presign_get(
    host: str,
    scheme: str,
    bucket: str,
    key: str,
    access_key: str,
    secret_key: str,
    region: str,
    expires: int,
) -> str:
    """A SigV4 presigned GET URL, signed by the AWS Common Runtime's signer (awscrt, already
    a dependency), path-style so it works whatever domains the node serves."""
    import datetime

    from awscrt import auth, http

    config = auth.AwsSigningConfig(
        algorithm=auth.AwsSigningAlgorithm.V4,
        signature_type=auth.AwsSignatureType.HTTP_REQUEST_QUERY_PARAMS,
        credentials_provider=auth.AwsCredentialsProvider.new_static(access_key, secret_key),
        region=region,
        service="s3",
        date=datetime.datetime.now(datetime.UTC),
        signed_body_value=auth.AwsSignedBodyValue.UNSIGNED_PAYLOAD,
        expiration_in_seconds=expires,
        use_double_uri_encode=False,
        should_normalize_uri_path=False,
    )
    path = "/" + quote(bucket, safe="") + "/" + quote(key, safe="/~")
    request = http.HttpRequest("GET", path, http.HttpHeaders([("host", host)]))
    signed = auth.aws_sign_request(request, config).result(10)
    return f"{scheme}://{host}{signed.path}"


async def share(
    service: Service, session: Session, bucket: str, request: Request, data: dict
) -> dict:
    """A presigned link to one object, signed with the signed-in user's own keys: it grants
    no more than they have, and it stops working if their key is disabled or changed."""
    key = data.get("key")
    if not isinstance(key, str) or not key:
        raise S3Error("InvalidArgument", "the 'key' field is required")
    _checked_key(key)
    try:
        expires = int(data.get("expires", 3600))
    except (TypeError, ValueError, OverflowError):
        raise S3Error("InvalidArgument", "expires must be a number of seconds") from None
    if not 1 <= expires <= MAX_SHARE_SECONDS:
        raise S3Error("InvalidArgument", f"expires must be 1 to {MAX_SHARE_SECONDS} seconds")
    await service.objects.get_owned(session.user, bucket, key)
    user = await service.users.lookup(session.access_key)
    if user is None:
        raise S3Error("InvalidAccessKeyId")
    host = request.host or f"{service.config.host}:{service.config.port}"
    url = presign_get(
        host,
        request.scheme,
        bucket,
        key,
        user.access_key,
        user.secret_key,
        service.config.region,
        expires,
    )
    return {"bucket": bucket, "key": key, "url": url, "expires_at": time.time() + expires}


async def delete_many(service: Service, session: Session, bucket: str, data: dict) -> dict:
    """Bulk delete from the browser's checkboxes: up to 1000 keys in one index write."""
    keys = data.get("keys")
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) and k for k in keys):
        raise S3Error("InvalidArgument", "keys must be a non-empty list of object keys")
    if len(keys) > MAX_BULK_DELETE:
        raise S3Error("InvalidArgument", f"at most {MAX_BULK_DELETE} keys at once")
    for key in keys:
        _checked_key(key)
    await service.buckets.get_owned(session.user, bucket)
    await service.objects.delete_many(bucket, list(dict.fromkeys(keys)))
    return {"bucket": bucket, "deleted": len(set(keys))}


async def delete(service: Service, session: Session, bucket: str, request: Request) -> dict:
    key = _key(request)
    request.bucket, request.key = bucket, key
    await service.buckets.get_owned(session.user, bucket)
    await service.objects.delete(bucket, key)
    return {"bucket": bucket, "key": key, "result": "deleted"}
