"""The UI's bucket and object calls, on top of the service layer.

The browser never signs S3 requests: it calls these JSON endpoints with its session cookie,
and they act as the signed-in user through the same service calls the S3 front uses, with
the same ownership checks. Uploads and downloads stream through in pieces, so a large file
is never held in memory (DESIGN.md, invariant 8).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from urllib.parse import quote

from holdfast.checksums import ExpectedChecksums
from holdfast.errors import S3Error
from holdfast.index.records import ObjectRecord
from holdfast.s3.body import IncomingBody
from holdfast.s3.http import Request, Response, http_date
from holdfast.s3.ops.common import MAX_PUT_SIZE, validate_key

if TYPE_CHECKING:
    from holdfast.ops.ui.session import Session
    from holdfast.service import Service

DEFAULT_ALGORITHM = "CRC64NVME"  # as S3 PUT: every object gets an end-to-end checksum
MAX_PAGE = 1000


def _key(request: Request) -> str:
    key = request.query.get("key", "")
    if not key:
        raise S3Error("InvalidArgument", "the 'key' parameter is required")
    validate_key(key)
    return key


async def list_buckets(service: Service, session: Session) -> dict:
    buckets = await service.buckets.list(session.user)
    return {"buckets": [{"name": b.name, "created": b.created} for b in buckets]}


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
    return {
        "bucket": bucket,
        "prefix": prefix,
        "prefixes": page.prefixes,
        "objects": [
            {"key": e.key, "size": e.size, "etag": e.etag, "last_modified": e.last_modified}
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


async def delete(service: Service, session: Session, bucket: str, request: Request) -> dict:
    key = _key(request)
    request.bucket, request.key = bucket, key
    await service.buckets.get_owned(session.user, bucket)
    await service.objects.delete(bucket, key)
    return {"bucket": bucket, "key": key, "result": "deleted"}
