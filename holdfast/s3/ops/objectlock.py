"""Object lock: CreateBucket with ``x-amz-bucket-object-lock-enabled``,
Put/GetObjectLockConfiguration, versioning kept on in a lock-enabled bucket,
Put/GetObjectRetention and Put/GetObjectLegalHold, the ``x-amz-object-lock-*`` headers on
PutObject and on GET/HEAD, and ``x-amz-bypass-governance-retention`` on deletes. The removal
check itself runs in the index's transaction for every removal of a version
(holdfast/service/versions.py).

The lock headers on CreateMultipartUpload are checked when the upload is created, kept with
it and given to the object at completion. A bucket's default retention
(PutObjectLockConfiguration with a Rule) applies to every new version whose request names no
retention: PutObject, CopyObject and CompleteMultipartUpload.
"""

from __future__ import annotations

import json
import time

from holdfast.errors import S3Error
from holdfast.index.records import ObjectRecord, UploadRecord
from holdfast.s3 import objectlock as lockxml
from holdfast.s3 import versioning
from holdfast.s3.http import Response
from holdfast.s3.ops.buckets import XML_TYPE, create_bucket, read_small_body
from holdfast.s3.ops.common import Context, bucket_config
from holdfast.s3.ops.versions import put_bucket_versioning
from holdfast.s3.router import Operation
from holdfast.service.locks import CONFIG, UPLOAD_LOCK_HEADER
from holdfast.service.objectlock import (
    LockConfiguration,
    Retention,
    retention_for_new_version,
    retention_of,
)
from holdfast.service.versions import ENABLED

# CONFIG: the bucket configuration document holding the lock (ObjectLockConfiguration XML).
# Its presence means "lock enabled", which S3 never lets a bucket turn off.
BYPASS = "x-amz-bypass-governance-retention"
HEADER = "x-amz-bucket-object-lock-enabled"


def asks_for_lock(ctx: Context) -> bool:
    return (ctx.request.headers.get(HEADER) or "").strip().lower() == "true"


async def lock_of(ctx: Context) -> LockConfiguration | None:
    """The caller's bucket's lock (after the ownership check); None without one."""
    stored = await ctx.service.buckets.get_config(ctx.user, ctx.bucket, CONFIG)
    return None if stored is None else lockxml.parse_configuration(stored.encode())


async def create_bucket_with_lock(ctx: Context) -> Response:
    """CreateBucket; with the lock header, the new bucket gets versioning and the lock.

    The bucket is created first, then its two configuration documents are written; if the
    node stops in between, the bucket exists without the lock, and the client, which got no
    answer, sees BucketAlreadyOwnedByYou on retry and GetObjectLockConfiguration tells it
    the truth (no configuration)."""
    if not asks_for_lock(ctx):
        return await create_bucket(ctx)
    response = await create_bucket(ctx, lock_ok=True)
    await ctx.service.versions.set_state(ctx.bucket, ENABLED)
    body = lockxml.render_configuration(LockConfiguration()).decode()
    await ctx.service.buckets.set_config(ctx.user, ctx.bucket, CONFIG, body)
    return response


async def get_object_lock_configuration(ctx: Context) -> Response:
    config = await lock_of(ctx)
    if config is None:
        raise S3Error("ObjectLockConfigurationNotFoundError", BucketName=ctx.bucket)
    return Response(200, [XML_TYPE], lockxml.render_configuration(config))


async def put_object_lock_configuration(ctx: Context) -> Response:
    current = await lock_of(ctx)
    config = lockxml.parse_configuration(await read_small_body(ctx))
    if current is None:
        raise S3Error(
            "InvalidBucketState",
            "Object Lock configuration cannot be enabled on existing buckets",
            BucketName=ctx.bucket,
        )
    body = lockxml.render_configuration(config).decode()
    await ctx.service.buckets.set_config(ctx.user, ctx.bucket, CONFIG, body)
    return Response(200)


async def put_bucket_versioning_kept(ctx: Context) -> Response:
    """S3 refuses to suspend versioning on a lock-enabled bucket."""
    if await lock_of(ctx) is not None:
        status = versioning.parse(await read_small_body(ctx))
        if status != ENABLED:
            raise S3Error(
                "InvalidBucketState",
                "An Object Lock configuration is present on this bucket, so the versioning "
                "state cannot be changed.",
                BucketName=ctx.bucket,
            )
        await ctx.service.versions.set_state(ctx.bucket, status)
        return Response(200)
    return await put_bucket_versioning(ctx)


def bypass_requested(ctx: Context) -> bool:
    """The request asks to bypass GOVERNANCE retention. Every caller of this has already
    checked that the caller owns the bucket, the one who may bypass."""
    return (ctx.request.headers.get(BYPASS) or "").strip().lower() == "true"


async def apply_request_lock(ctx: Context, attrs: ObjectRecord) -> None:
    """The lock a new version gets (checked before the body): the request's headers, and
    where they name no retention, the bucket's default retention (as S3 applies it)."""
    retention, hold = lockxml.headers(ctx.request.headers)
    if retention is None and hold is None:
        await apply_default_retention(ctx, attrs)
        return
    config = await lock_of(ctx)  # ownership checked there
    if config is None:
        raise S3Error("InvalidRequest", "Bucket is missing Object Lock Configuration")
    if retention is not None and retention.until <= time.time():
        raise S3Error("InvalidArgument", "The retain until date must be in the future!")
    retention = retention_for_new_version(config, retention, time.time())
    if retention is not None:
        attrs.retention_mode, attrs.retain_until = retention.mode, retention.until
    attrs.legal_hold = bool(hold)


async def apply_default_retention(ctx: Context, attrs: ObjectRecord) -> None:
    """The bucket's default retention, for a write that names no lock: read with the access
    decision's documents (no round trip of its own), without an ownership check of its own:
    the commit's transaction checks the owner, and nothing of it is answered to the caller."""
    stored = await bucket_config(ctx, CONFIG)
    if stored is None:
        return
    retention = retention_for_new_version(
        lockxml.parse_configuration(stored.encode()), None, time.time()
    )
    if retention is not None:
        attrs.retention_mode, attrs.retain_until = retention.mode, retention.until


async def lock_for_upload(ctx: Context, headers: dict[str, str]) -> None:
    """CreateMultipartUpload: the lock headers, checked now as PutObject checks them, kept
    with the upload (the bucket's ownership is checked by the caller)."""
    retention, hold = lockxml.headers(ctx.request.headers)
    if retention is None and hold is None:
        return
    if await lock_of(ctx) is None:
        raise S3Error("InvalidRequest", "Bucket is missing Object Lock Configuration")
    if retention is not None and retention.until <= time.time():
        raise S3Error("InvalidArgument", "The retain until date must be in the future!")
    headers[UPLOAD_LOCK_HEADER] = json.dumps(
        {
            "mode": retention.mode if retention else None,
            "until": retention.until if retention else None,
            "hold": bool(hold),
        }
    )


async def lock_at_complete(
    ctx: Context, upload: UploadRecord
) -> tuple[str | None, float | None, bool]:
    """CompleteMultipartUpload: the new version's lock, from the upload's headers, and where
    they named no retention the bucket's default retention, counted from now (S3 applies it
    when the object is created)."""
    asked = json.loads(upload.headers.get(UPLOAD_LOCK_HEADER) or "{}")
    attrs = ObjectRecord(ctx.bucket, ctx.key, 0, "", 0.0, [])
    if asked.get("mode"):
        attrs.retention_mode, attrs.retain_until = asked["mode"], asked["until"]
    else:
        await apply_default_retention(ctx, attrs)
    return attrs.retention_mode, attrs.retain_until, bool(asked.get("hold"))


def read_headers(obj: ObjectRecord) -> list[tuple[str, str]]:
    return lockxml.response_headers(retention_of(obj), obj.legal_hold)


async def _version_in_lock_bucket(ctx: Context) -> ObjectRecord:
    if await lock_of(ctx) is None:
        raise S3Error("InvalidRequest", "Bucket is missing Object Lock Configuration")
    return await ctx.service.locks.get(ctx.bucket, ctx.key, ctx.request.query.get("versionId"))


async def get_object_retention(ctx: Context) -> Response:
    obj = await _version_in_lock_bucket(ctx)
    retention = retention_of(obj)
    if retention is None:
        raise S3Error("NoSuchObjectLockConfiguration")
    return Response(200, [XML_TYPE], lockxml.render_retention(retention))


async def put_object_retention(ctx: Context) -> Response:
    await _version_in_lock_bucket(ctx)
    new: Retention | None = lockxml.parse_retention(await read_small_body(ctx))
    await ctx.service.locks.set_retention(
        ctx.bucket, ctx.key, ctx.request.query.get("versionId"), new, bypass_requested(ctx)
    )
    return Response(200)


async def get_object_legal_hold(ctx: Context) -> Response:
    obj = await _version_in_lock_bucket(ctx)
    return Response(200, [XML_TYPE], lockxml.render_legal_hold(obj.legal_hold))


async def put_object_legal_hold(ctx: Context) -> Response:
    await _version_in_lock_bucket(ctx)
    on = lockxml.parse_legal_hold(await read_small_body(ctx))
    await ctx.service.locks.set_legal_hold(
        ctx.bucket, ctx.key, ctx.request.query.get("versionId"), on
    )
    return Response(200)


Op = Operation
HANDLERS = {
    Op.CREATE_BUCKET: create_bucket_with_lock,
    Op.GET_OBJECT_LOCK_CONFIGURATION: get_object_lock_configuration,
    Op.PUT_OBJECT_LOCK_CONFIGURATION: put_object_lock_configuration,
    Op.PUT_BUCKET_VERSIONING: put_bucket_versioning_kept,
    Op.GET_OBJECT_RETENTION: get_object_retention,
    Op.PUT_OBJECT_RETENTION: put_object_retention,
    Op.GET_OBJECT_LEGAL_HOLD: get_object_legal_hold,
    Op.PUT_OBJECT_LEGAL_HOLD: put_object_legal_hold,
}
