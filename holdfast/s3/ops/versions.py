"""Versioning: Put/GetBucketVersioning and ListObjectVersions, and the version headers the
object operations share (holdfast/s3/ops/objects.py reads and deletes single versions)."""

from __future__ import annotations

from holdfast.errors import S3Error
from holdfast.index.records import ObjectRecord, VersionRef
from holdfast.s3 import versioning, xml
from holdfast.s3.http import Response, http_date, iso8601
from holdfast.s3.ops.buckets import XML_TYPE, read_small_body, xml_response
from holdfast.s3.ops.common import Context, bucket_config, owner_xml
from holdfast.s3.ops.listing import _encoder
from holdfast.s3.router import Operation
from holdfast.service.versions import CONFIG, record_version_id, version_id


def written_headers(ref: VersionRef | None) -> list[tuple[str, str]]:
    """``x-amz-version-id`` of a version just written (none in a bucket never versioned)."""
    return [] if ref is None else [("x-amz-version-id", version_id(ref.seq, ref.null))]


def read_headers(obj: ObjectRecord, versioned: bool = False) -> list[tuple[str, str]]:
    """``x-amz-version-id`` of a version read. A version written before the bucket was ever
    versioned has none in a bucket that still is not, and is the "null" version once the
    bucket is (``versioned``: Enabled or Suspended), as S3 answers."""
    vid = record_version_id(obj)
    if vid is None and versioned:
        vid = version_id(obj.vseq, True)
    return [] if vid is None else [("x-amz-version-id", vid)]


async def bucket_versioned(ctx: Context) -> bool:
    return await bucket_config(ctx, CONFIG) is not None


def marker_error(marker: ObjectRecord, code: str, status: int, **extra: str) -> S3Error:
    """A read that meets a delete marker: 404 NoSuchKey for the current version, 405
    MethodNotAllowed for a marker named by its id; both say it is a marker."""
    headers = {"x-amz-delete-marker": "true", "Last-Modified": http_date(marker.last_modified)}
    vid = record_version_id(marker)
    if vid is not None:
        headers["x-amz-version-id"] = vid
    return S3Error(code, status=status, headers=headers, **extra)


async def get_bucket_versioning(ctx: Context) -> Response:
    await ctx.owned_bucket()
    state = await ctx.service.versions.state(ctx.bucket)
    return Response(200, [XML_TYPE], versioning.render(state))


async def put_bucket_versioning(ctx: Context) -> Response:
    await ctx.owned_bucket()
    status = versioning.parse(await read_small_body(ctx))
    await ctx.service.versions.set_state(ctx.bucket, status)
    return Response(200)


async def list_object_versions(ctx: Context) -> Response:
    enc = _encoder(ctx)
    await ctx.owned_bucket()
    q = ctx.request.query
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    key_marker = q.get("key-marker") or None
    version_marker = q.get("version-id-marker") or None
    max_keys = ctx.query_int("max-keys", 1000, low=0, high=1000)
    page = await ctx.service.versions.page(
        ctx.bucket, prefix, delimiter, key_marker, version_marker, max_keys
    )
    owner = owner_xml(ctx.user)
    children: list = [
        ("Name", ctx.bucket),
        ("Prefix", enc(prefix)),
        ("KeyMarker", enc(key_marker or "")),
        ("VersionIdMarker", version_marker or ""),
        ("MaxKeys", max_keys),
        ("Delimiter", enc(delimiter) if delimiter else None),
        ("IsTruncated", page.truncated),
    ]
    if page.truncated:
        children.append(("NextKeyMarker", enc(page.next_key or "")))
        if page.next_version is not None:
            children.append(("NextVersionIdMarker", page.next_version))
    for e in page.entries:
        common = [
            ("Key", enc(e.key)),
            ("VersionId", version_id(e.seq, e.null)),
            ("IsLatest", e.latest),
            ("LastModified", iso8601(e.last_modified)),
        ]
        if e.marker:
            children.append(("DeleteMarker", [*common, ("Owner", owner)]))
        else:
            children.append(
                (
                    "Version",
                    [
                        *common,
                        ("ETag", e.etag),
                        ("Size", e.size),
                        ("StorageClass", "STANDARD"),
                        ("Owner", owner),
                    ],
                )
            )
    children += [("CommonPrefixes", [("Prefix", enc(p))]) for p in page.prefixes]
    children.append(("EncodingType", q.get("encoding-type")))
    return xml_response("ListVersionsResult", children)


Op = Operation
HANDLERS = {
    Op.GET_BUCKET_VERSIONING: get_bucket_versioning,
    Op.PUT_BUCKET_VERSIONING: put_bucket_versioning,
    Op.LIST_OBJECT_VERSIONS: list_object_versions,
}

__all__ = ["HANDLERS", "marker_error", "read_headers", "written_headers", "xml"]
