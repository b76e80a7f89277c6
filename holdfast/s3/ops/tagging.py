"""Object and bucket tagging: Put/Get/DeleteObjectTagging and Put/Get/DeleteBucketTagging.

Tags are validated whole (holdfast/s3/tagging.py) before anything is written, so a rejected
tag set leaves the old one in place. Object tags belong to the object's current version and
are replaced with it (a PUT without ``x-amz-tagging`` has none); a bucket's tags are one
configuration document of the bucket, removed with it. With ``versionId`` the object
operations read or change that version's tags, current or not (405 for a delete marker).
"""

from __future__ import annotations

import json

from holdfast.errors import S3Error
from holdfast.s3 import tagging
from holdfast.s3.http import Response
from holdfast.s3.ops import versions
from holdfast.s3.ops.buckets import XML_TYPE, read_small_body
from holdfast.s3.ops.common import Context, validate_key
from holdfast.s3.router import Operation

BUCKET_CONFIG = "tagging"


async def get_object_tagging(ctx: Context) -> Response:
    validate_key(ctx.key)
    version = ctx.request.query.get("versionId")
    if version:
        await ctx.owned_bucket()
        obj = await ctx.service.versions.get(ctx.bucket, ctx.key, version)
        if obj.delete_marker:
            raise versions.marker_error(obj, "MethodNotAllowed", 405)
    else:
        obj = await ctx.service.objects.get_owned(ctx.user, ctx.bucket, ctx.key)
    headers = versions.read_headers(obj, await versions.bucket_versioned(ctx))
    return Response(200, [XML_TYPE, *headers], tagging.render_xml(obj.tags))


async def _set_tags(ctx: Context, tags: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Set the named version's tags (the current version's without ``versionId``); the
    version id header of the answer."""
    version = ctx.request.query.get("versionId")
    if version:
        obj = await ctx.service.objects.set_version_tags(
            ctx.user, ctx.bucket, ctx.key, version, tags
        )
        return versions.read_headers(obj, True)
    await ctx.service.objects.set_tags(ctx.user, ctx.bucket, ctx.key, tags)
    return []


async def put_object_tagging(ctx: Context) -> Response:
    validate_key(ctx.key)
    tags = tagging.parse_xml(await read_small_body(ctx), tagging.OBJECT_TAG_LIMIT)
    return Response(200, await _set_tags(ctx, tags))


async def delete_object_tagging(ctx: Context) -> Response:
    validate_key(ctx.key)
    return Response(204, await _set_tags(ctx, []))


async def get_bucket_tagging(ctx: Context) -> Response:
    stored = await ctx.service.buckets.get_config(ctx.user, ctx.bucket, BUCKET_CONFIG)
    if stored is None:
        raise S3Error("NoSuchTagSet", BucketName=ctx.bucket)
    tags = [(k, v) for k, v in json.loads(stored)]
    return Response(200, [XML_TYPE], tagging.render_xml(tags))


async def put_bucket_tagging(ctx: Context) -> Response:
    """An empty TagSet leaves the bucket without tags (Get then answers NoSuchTagSet)."""
    await ctx.owned_bucket()
    tags = tagging.parse_xml(await read_small_body(ctx), tagging.BUCKET_TAG_LIMIT)
    value = json.dumps(tags, separators=(",", ":")) if tags else None
    await ctx.service.buckets.set_config(ctx.user, ctx.bucket, BUCKET_CONFIG, value)
    return Response(204)


async def delete_bucket_tagging(ctx: Context) -> Response:
    await ctx.service.buckets.set_config(ctx.user, ctx.bucket, BUCKET_CONFIG, None)
    return Response(204)


Op = Operation
HANDLERS = {
    Op.GET_OBJECT_TAGGING: get_object_tagging,
    Op.PUT_OBJECT_TAGGING: put_object_tagging,
    Op.DELETE_OBJECT_TAGGING: delete_object_tagging,
    Op.GET_BUCKET_TAGGING: get_bucket_tagging,
    Op.PUT_BUCKET_TAGGING: put_bucket_tagging,
    Op.DELETE_BUCKET_TAGGING: delete_bucket_tagging,
}
