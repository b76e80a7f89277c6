"""Object lock, the bucket part: CreateBucket with ``x-amz-bucket-object-lock-enabled``,
Put/GetObjectLockConfiguration, and versioning kept on in a lock-enabled bucket.

What is not built yet answers 501 rather than a success that protects nothing: a default
retention (PutObjectLockConfiguration with a Rule), retention and legal hold on a version, and
the ``x-amz-object-lock-*`` headers on writes (holdfast/s3/ops/common.py). Until versions can
carry a retention, no version in Holdfast is locked, so a lock-enabled bucket holds exactly
what a versioned bucket holds and the existing delete paths stay truthful.
"""

from __future__ import annotations

from holdfast.errors import S3Error
from holdfast.s3 import objectlock as lockxml
from holdfast.s3 import versioning
from holdfast.s3.http import Response
from holdfast.s3.ops.buckets import XML_TYPE, create_bucket, read_small_body
from holdfast.s3.ops.common import Context
from holdfast.s3.ops.versions import put_bucket_versioning
from holdfast.s3.router import Operation
from holdfast.service.objectlock import LockConfiguration
from holdfast.service.versions import ENABLED

# The bucket configuration document holding the lock (ObjectLockConfiguration XML). Its
# presence means "lock enabled", which S3 never lets a bucket turn off.
CONFIG = "objectlock"
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


async def version_lock_not_built(ctx: Context) -> Response:
    """Retention and legal hold of a version: S3's answer on a bucket without the lock; on
    one with it, not built yet."""
    if await lock_of(ctx) is None:
        raise S3Error("InvalidRequest", "Bucket is missing Object Lock Configuration")
    raise S3Error("NotImplemented", "Object retention and legal hold are not implemented yet.")


Op = Operation
HANDLERS = {
    Op.CREATE_BUCKET: create_bucket_with_lock,
    Op.GET_OBJECT_LOCK_CONFIGURATION: get_object_lock_configuration,
    Op.PUT_OBJECT_LOCK_CONFIGURATION: put_object_lock_configuration,
    Op.PUT_BUCKET_VERSIONING: put_bucket_versioning_kept,
    Op.GET_OBJECT_RETENTION: version_lock_not_built,
    Op.PUT_OBJECT_RETENTION: version_lock_not_built,
    Op.GET_OBJECT_LEGAL_HOLD: version_lock_not_built,
    Op.PUT_OBJECT_LEGAL_HOLD: version_lock_not_built,
}
