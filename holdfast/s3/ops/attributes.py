"""GetObjectAttributes: an object's ETag, checksum, parts, storage class and size in one call.

Clients (the AWS SDKs' transfer managers, rclone, backup tools) use it to check an upload
without a HEAD per attribute and without reading the body. The caller names the attributes it
wants in ``x-amz-object-attributes``; only those are returned.
"""

from __future__ import annotations

from holdfast.errors import S3Error
from holdfast.index.records import ObjectRecord
from holdfast.s3.http import Response, http_date
from holdfast.s3.ops import versions
from holdfast.s3.ops.buckets import xml_response
from holdfast.s3.ops.common import Context, validate_key

ATTRIBUTES = ("ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize")
MAX_PARTS = 1000

# Customer-provided keys: Holdfast stores no SSE-C object, and answering as if the key had
# been checked would be a wrong success.
SSE_C_HEADERS = (
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-server-side-encryption-customer-key",
    "x-amz-server-side-encryption-customer-key-md5",
)


def requested_attributes(value: str | None) -> set[str]:
    """The attributes named in the header (comma-separated; SDKs send a list that way).
    None named, or a name S3 does not define, is the error S3 answers."""
    names = {name.strip() for name in (value or "").split(",") if name.strip()}
    if not names or not names <= set(ATTRIBUTES):
        raise S3Error(
            "InvalidArgument",
            "Invalid attribute name specified.",
            ArgumentName="x-amz-object-attributes",
            ArgumentValue=value or "",
        )
    return names


def header_int(ctx: Context, name: str, default: int, high: int) -> int:
    raw = ctx.request.headers.get(name)
    if raw is None or raw.strip() == "":
        return default
    raw = raw.strip()
    if not raw.isdigit():
        raise S3Error(
            "InvalidArgument",
            f"Provided {name} not an integer or within integer range",
            ArgumentName=name,
            ArgumentValue=raw,
        )
    return min(int(raw), high)


def checksum_children(obj: ObjectRecord) -> list | None:
    """The stored checksum. A composite one (a multipart upload's checksum of its parts'
    checksums) is stored and sent on HEAD as ``<b64>-<parts>``; S3 answers it here without
    the part count."""
    if not (obj.checksum_algorithm and obj.checksum_value):
        return None
    value = obj.checksum_value
    if obj.checksum_type == "COMPOSITE":
        value = value.rsplit("-", 1)[0]
    return [
        (f"Checksum{obj.checksum_algorithm}", value),
        ("ChecksumType", obj.checksum_type or "FULL_OBJECT"),
    ]


def parts_children(obj: ObjectRecord, marker: int, max_parts: int) -> list | None:
    """A multipart object's parts, a page at a time. A part is numbered by its place in the
    object, as GetObject's ``partNumber`` reads it. Per-part checksums are not kept once an
    upload completes, so a Part carries its number and size only. A single PUT has no parts:
    the element is left out, as S3 does."""
    if not obj.parts_count:
        return None
    after = range(marker + 1, len(obj.segments) + 1)
    page = after[:max_parts]
    children: list = [
        ("IsTruncated", len(after) > len(page)),
        ("MaxParts", max_parts),
        ("NextPartNumberMarker", page[-1] if page else marker),
        ("PartNumberMarker", marker),
    ]
    children += [("Part", [("PartNumber", n), ("Size", obj.segments[n - 1].size)]) for n in page]
    children.append(("PartsCount", obj.parts_count))
    return children


async def get_object_attributes(ctx: Context) -> Response:
    validate_key(ctx.key)
    for name in SSE_C_HEADERS:
        if name in ctx.request.headers:
            raise S3Error("NotImplemented", f"The {name} header is not implemented by Holdfast.")
    wanted = requested_attributes(ctx.request.headers.get("x-amz-object-attributes"))
    max_parts = header_int(ctx, "x-amz-max-parts", MAX_PARTS, MAX_PARTS)
    marker = header_int(ctx, "x-amz-part-number-marker", 0, 10_000)
    version = ctx.request.query.get("versionId")
    if version:
        await ctx.owned_bucket()
        obj = await ctx.service.versions.get(ctx.bucket, ctx.key, version)
        if obj.delete_marker:
            raise versions.marker_error(obj, "MethodNotAllowed", 405)
    else:
        obj = await ctx.service.objects.get_owned(ctx.user, ctx.bucket, ctx.key)
    values = {
        # Unquoted here, unlike the ETag header: S3 answers it so in this document.
        "ETag": obj.etag.strip('"'),
        "Checksum": checksum_children(obj),
        "ObjectParts": parts_children(obj, marker, max_parts),
        "StorageClass": "STANDARD",
        "ObjectSize": obj.size,
    }
    response = xml_response(
        "GetObjectAttributesResponse",
        [(name, values[name]) for name in ATTRIBUTES if name in wanted],
    )
    response.add("Last-Modified", http_date(obj.last_modified))
    response.headers += versions.read_headers(obj, await versions.bucket_versioned(ctx))
    return response
