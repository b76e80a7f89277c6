"""Put/Get/DeleteBucketLifecycleConfiguration.

The configuration is one bucket configuration document (holdfast/service/lifecycle.py's
JSON), like the bucket's tags: it is parsed and validated whole (holdfast/s3/lifecycle.py)
before it is written, so a refused body leaves the old configuration in place. The rules are
applied by the lifecycle worker (holdfast/workers/lifecycle.py).
"""

from __future__ import annotations

import base64
import uuid

from holdfast.errors import S3Error
from holdfast.index.records import ObjectRecord
from holdfast.s3 import lifecycle as lcxml
from holdfast.s3.http import Response
from holdfast.s3.ops.buckets import XML_TYPE, read_small_body
from holdfast.s3.ops.common import Context, bucket_config
from holdfast.s3.router import Operation
from holdfast.service import lifecycle
from holdfast.service.lifecycle import CONFIG


def new_rule_id() -> str:
    """S3 names a rule written without an ID with an opaque string; so does Holdfast."""
    return base64.b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes).decode().rstrip("=")


async def get_bucket_lifecycle_configuration(ctx: Context) -> Response:
    stored = await ctx.service.buckets.get_config(ctx.user, ctx.bucket, CONFIG)
    if stored is None:
        raise S3Error("NoSuchLifecycleConfiguration", BucketName=ctx.bucket)
    return Response(200, [XML_TYPE], lcxml.render(lifecycle.from_json(stored)))


async def put_bucket_lifecycle_configuration(ctx: Context) -> Response:
    await ctx.owned_bucket()
    config = lcxml.parse(await read_small_body(ctx), new_rule_id)
    await ctx.service.buckets.set_config(ctx.user, ctx.bucket, CONFIG, lifecycle.to_json(config))
    return Response(200)


async def delete_bucket_lifecycle(ctx: Context) -> Response:
    await ctx.service.buckets.set_config(ctx.user, ctx.bucket, CONFIG, None)
    return Response(204)


async def expiration_headers(ctx: Context, obj: ObjectRecord) -> list[tuple[str, str]]:
    """``x-amz-expiration`` on GET and HEAD of a current version a rule will expire, from the
    same function the lifecycle job decides with (the rules come with the access decision's
    read: no round trip of its own)."""
    stored = await bucket_config(ctx, CONFIG)
    if stored is None:
        return []
    due = lifecycle.expiration(
        lifecycle.from_json(stored),
        obj.key,
        obj.size,
        obj.tags,
        obj.last_modified,
        ctx.service.config.lifecycle_day_seconds,
    )
    return [] if due is None else [("x-amz-expiration", lcxml.expiration_header(*due))]


Op = Operation
HANDLERS = {
    Op.GET_BUCKET_LIFECYCLE_CONFIGURATION: get_bucket_lifecycle_configuration,
    Op.PUT_BUCKET_LIFECYCLE_CONFIGURATION: put_bucket_lifecycle_configuration,
    Op.DELETE_BUCKET_LIFECYCLE: delete_bucket_lifecycle,
}
