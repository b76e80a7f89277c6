"""Service- and bucket-level operations."""

from __future__ import annotations

from holdfast.checksums import ExpectedChecksums, expected_from_headers
from holdfast.errors import S3Error
from holdfast.s3 import xml
from holdfast.s3.body import IncomingBody
from holdfast.s3.http import Response, iso8601
from holdfast.s3.ops.common import Context, owner_xml, reject_unsupported_headers

XML_TYPE = ("Content-Type", "application/xml")


def xml_response(root: str, children: list, status: int = 200) -> Response:
    return Response(status, [XML_TYPE], xml.render(root, children))


async def read_small_body(ctx: Context) -> bytes:
    """A small request body (an XML document), size-limited, its digests verified."""
    expected: ExpectedChecksums = expected_from_headers(ctx.request.headers)
    body = IncomingBody(ctx.request, ctx.auth, expected, max_size=xml.MAX_XML_BODY)
    return await body.read_all()


async def read_xml_body(ctx: Context, required: bool = True) -> xml.ET.Element | None:
    """A small XML request body, size-limited, its digests verified before it is parsed."""
    raw = await read_small_body(ctx)
    if not raw.strip():
        if required:
            raise S3Error("MalformedXML")
        return None
    return xml.parse(raw)


async def list_buckets(ctx: Context) -> Response:
    buckets = await ctx.service.buckets.list(ctx.user)
    return xml_response(
        "ListAllMyBucketsResult",
        [
            ("Owner", owner_xml(ctx.user)),
            (
                "Buckets",
                [
                    (
                        "Bucket",
                        [
                            ("Name", b.name),
                            ("CreationDate", iso8601(b.created)),
                            ("BucketRegion", b.region),
                        ],
                    )
                    for b in buckets
                ],
            ),
        ],
    )


def reject_unsupported_bucket_headers(ctx: Context, lock_ok: bool = False) -> None:
    """CreateBucket headers asking for what Holdfast cannot keep. Ignoring them would leave a
    bucket that later reports no object lock, or a private ACL, to a client that asked for
    one: a wrong success. ``lock_ok``: the caller (holdfast/s3/ops/objectlock.py) sets the
    lock up itself."""
    headers = ctx.request.headers
    lock = (headers.get("x-amz-bucket-object-lock-enabled") or "").strip().lower() == "true"
    if lock and not lock_ok:
        raise S3Error("NotImplemented", "Object lock is not implemented by Holdfast.")
    reject_unsupported_headers(ctx.request, acls=True)


async def create_bucket(ctx: Context, lock_ok: bool = False) -> Response:
    from holdfast.s3.ops.access import apply_create_bucket_acl, create_bucket_settings

    reject_unsupported_bucket_headers(ctx, lock_ok)
    create_bucket_settings(ctx)  # validated before the bucket exists
    region = ctx.service.config.region
    config = await read_xml_body(ctx, required=False)
    if config is not None:
        constraint = xml.text(config, "LocationConstraint")
        if constraint and constraint != region:
            # What S3 answers on a region-specific endpoint, which every Holdfast node is.
            raise S3Error(
                "IllegalLocationConstraintException",
                f"The {constraint} location constraint is incompatible for the region "
                f"specific endpoint this request was sent to ({region}).",
                status=400,
            )
    await ctx.service.buckets.create(ctx.user, ctx.bucket, region)
    await apply_create_bucket_acl(ctx)
    return Response(200, [("Location", f"/{ctx.bucket}")])


async def head_bucket(ctx: Context) -> Response:
    bucket = await ctx.owned_bucket()
    return Response(200, [("x-amz-bucket-region", bucket.region)])


async def delete_bucket(ctx: Context) -> Response:
    await ctx.service.buckets.delete(ctx.user, ctx.bucket)
    return Response(204)


async def get_bucket_location(ctx: Context) -> Response:
    bucket = await ctx.owned_bucket()
    # S3 reports us-east-1 as an empty constraint; SDKs map it back.
    value = "" if bucket.region == "us-east-1" else bucket.region
    return Response(200, [XML_TYPE], xml.render("LocationConstraint", [], text=value))
