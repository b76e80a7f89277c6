"""Object lock: CreateBucket with ``x-amz-bucket-object-lock-enabled``,
Put/GetObjectLockConfiguration, versioning kept on in a lock-enabled bucket,
Put/GetObjectRetention and Put/GetObjectLegalHold, the ``x-amz-object-lock-*`` headers on
PutObject and on GET/HEAD, and ``x-amz-bypass-governance-retention`` on deletes. The removal
check itself runs in the index's transaction for every removal of a version
(holdfast/service/versions.py).

What is not built yet answers 501 rather than a success that protects nothing: a default
retention (PutObjectLockConfiguration with a Rule), and the lock headers on CopyObject and
CreateMultipartUpload (holdfast/s3/ops/common.py).
"""

from __future__ import annotations

import time

from holdfast.errors import S3Error
from holdfast.index.records import ObjectRecord
from holdfast.s3 import objectlock as lockxml
from holdfast.s3 import versioning
from holdfast.s3.http import Response
from holdfast.s3.ops.buckets import XML_TYPE, create_bucket, read_small_body
from holdfast.s3.ops.common import Context
from holdfast.s3.ops.versions import put_bucket_versioning
from holdfast.s3.router import Operation
from holdfast.service.locks import CONFIG
from holdfast.service.objectlock import LockConfiguration, Retention, retention_of
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
    if config.default is not None:
        raise S3Error(
            "NotImplemented", "Default retention (object lock Rule) is not implemented by Holdfast."
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
    """The lock a PutObject's headers give the new version (checked before the body)."""
    retention, hold = lockxml.headers(ctx.request.headers)
    if retention is None and hold is None:
        return
    if await lock_of(ctx) is None:  # ownership checked there
        raise S3Error("InvalidRequest", "Bucket is missing Object Lock Configuration")
    if retention is not None:
        if retention.until <= time.time():
            raise S3Error("InvalidArgument", "The retain until date must be in the future!")
        attrs.retention_mode, attrs.retain_until = retention.mode, retention.until
    attrs.legal_hold = bool(hold)


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
