"""Configurations Holdfast does not store yet: what S3 answers for a bucket (or an object)
that has none.

Tools read a bucket's configuration to describe it (``s3cmd info``, the AWS console's
equivalents, backup tools checking for versioning or a lock) and treat S3's "not configured"
answer as "none". A 501 there breaks them; a made-up configuration would mislead them. So:

* each Get answers S3's own "not configured" 404 (``NoSuchBucketPolicy``, ...), or, for the
  configurations S3 always has (logging, accelerate, request payment), the
  value S3 reports for a bucket that never set one;
* each Delete answers 204, as S3 does when there is nothing to delete: nothing can have been
  set, so removing it is truthfully already done;
* each Put answers 501 NotImplemented, because storing the configuration is the part that
  does not exist yet.

Every answer comes after the bucket is found and found to belong to the caller, so a missing
bucket is ``NoSuchBucket`` and another user's bucket ``AccessDenied``, as for every other
bucket operation.

Objects likewise: no bucket can have object lock (CreateBucket refuses it), so retention and
legal hold answer what S3 answers on a bucket without it. (Tagging, object and bucket, is
stored: holdfast/s3/ops/tagging.py; so is the lifecycle configuration,
holdfast/s3/ops/lifecycle.py, and the policy, ACL, ownership controls, public access block
and CORS rules: holdfast/s3/ops/access.py; notifications: holdfast/s3/ops/notify.py.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from holdfast.errors import S3Error
from holdfast.s3 import xml
from holdfast.s3.http import Response
from holdfast.s3.ops.buckets import XML_TYPE, xml_response
from holdfast.s3.ops.common import Context
from holdfast.s3.router import Operation

Handler = Callable[[Context], Awaitable[Response]]
Op = Operation

# Get operation -> the error S3 answers when the bucket has no such configuration.
NOT_CONFIGURED: dict[Operation, str] = {
    Op.GET_OBJECT_LOCK_CONFIGURATION: "ObjectLockConfigurationNotFoundError",
    Op.GET_BUCKET_REPLICATION: "ReplicationConfigurationNotFoundError",
}

# Deletes of a configuration that cannot have been set: S3 answers 204 for these too.
NOTHING_TO_DELETE = (Op.DELETE_BUCKET_REPLICATION,)

# Writes that would need the configuration stored: not built yet.
NOT_BUILT = (
    Op.PUT_OBJECT_LOCK_CONFIGURATION,
    Op.PUT_BUCKET_REPLICATION,
    Op.PUT_BUCKET_LOGGING,
    Op.PUT_BUCKET_ACCELERATE_CONFIGURATION,
    Op.PUT_BUCKET_REQUEST_PAYMENT,
)

# S3 answers the logging status in its older namespace.
LOGGING_NS = "http://doc.s3.amazonaws.com/2006-03-01"


def not_configured(code: str) -> Handler:
    async def handler(ctx: Context) -> Response:
        await ctx.owned_bucket()
        raise S3Error(code, BucketName=ctx.bucket)

    return handler


async def nothing_to_delete(ctx: Context) -> Response:
    await ctx.owned_bucket()
    return Response(204)


def not_built(op: Operation) -> Handler:
    async def handler(ctx: Context) -> Response:
        await ctx.owned_bucket()
        raise S3Error("NotImplemented", f"{op.value} is not implemented by Holdfast.")

    return handler


async def get_bucket_logging(ctx: Context) -> Response:
    await ctx.owned_bucket()
    body = xml.render("BucketLoggingStatus", [], namespace=LOGGING_NS)
    return Response(200, [XML_TYPE], body)


async def get_bucket_accelerate_configuration(ctx: Context) -> Response:
    """A bucket that never had acceleration set has no Status at all (not "Suspended")."""
    await ctx.owned_bucket()
    return xml_response("AccelerateConfiguration", [])


async def get_bucket_request_payment(ctx: Context) -> Response:
    await ctx.owned_bucket()
    return xml_response("RequestPaymentConfiguration", [("Payer", "BucketOwner")])


async def no_object_lock(ctx: Context) -> Response:
    """Retention and legal hold, read or written, on a bucket without object lock."""
    await ctx.owned_bucket()
    raise S3Error("InvalidRequest", "Bucket is missing Object Lock Configuration")


HANDLERS: dict[Operation, Handler] = {
    **{op: not_configured(code) for op, code in NOT_CONFIGURED.items()},
    **{op: nothing_to_delete for op in NOTHING_TO_DELETE},
    **{op: not_built(op) for op in NOT_BUILT},
    Op.GET_BUCKET_LOGGING: get_bucket_logging,
    Op.GET_BUCKET_ACCELERATE_CONFIGURATION: get_bucket_accelerate_configuration,
    Op.GET_BUCKET_REQUEST_PAYMENT: get_bucket_request_payment,
    Op.GET_OBJECT_RETENTION: no_object_lock,
    Op.PUT_OBJECT_RETENTION: no_object_lock,
    Op.GET_OBJECT_LEGAL_HOLD: no_object_lock,
    Op.PUT_OBJECT_LEGAL_HOLD: no_object_lock,
}
