"""PutBucketNotificationConfiguration and GetBucketNotificationConfiguration.

Validation and the stored form are holdfast/service/notify.py's; the targets a
configuration may name are the operator's (``holdfast notify target add``). A bucket with no
configuration answers an empty NotificationConfiguration, as S3 does.
"""

from __future__ import annotations

from holdfast.errors import S3Error
from holdfast.s3.http import Response
from holdfast.s3.ops.buckets import read_xml_body, xml_response
from holdfast.s3.ops.common import Context
from holdfast.s3.router import Operation
from holdfast.service import notify


async def put_bucket_notification_configuration(ctx: Context) -> Response:
    await ctx.owned_bucket()
    doc = await read_xml_body(ctx)
    index = ctx.service.node.index
    value = notify.parse_config(doc, await notify.load_targets(index))
    if not await index.set_bucket_config(ctx.bucket, notify.CONFIG_NAME, value):
        raise S3Error("NoSuchBucket", BucketName=ctx.bucket)
    return Response(200)


async def get_bucket_notification_configuration(ctx: Context) -> Response:
    await ctx.owned_bucket()
    text = await ctx.service.node.index.get_bucket_config(ctx.bucket, notify.CONFIG_NAME)
    return xml_response("NotificationConfiguration", notify.render_config(text))


HANDLERS = {
    Operation.PUT_BUCKET_NOTIFICATION_CONFIGURATION: put_bucket_notification_configuration,
    Operation.GET_BUCKET_NOTIFICATION_CONFIGURATION: get_bucket_notification_configuration,
}
