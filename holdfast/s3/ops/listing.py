"""ListObjects (v1) and ListObjectsV2."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import quote

from holdfast.errors import S3Error
from holdfast.index.records import ListedEntry
from holdfast.s3.http import Response, iso8601
from holdfast.s3.ops.buckets import xml_response
from holdfast.s3.ops.common import Context, owner_xml
from holdfast.service.listing import ListPage


def _encoder(ctx: Context):
    encoding = ctx.request.query.get("encoding-type")
    if encoding is None:
        return lambda s: s
    if encoding != "url":
        raise S3Error(
            "InvalidArgument",
            "Invalid Encoding Method specified in Request",
            ArgumentName="encoding-type",
            ArgumentValue=encoding,
        )
    return lambda s: None if s is None else quote(s, safe="/")


def _contents(entry: ListedEntry, enc, owner: str | None) -> tuple[str, list]:
    children: list = [
        ("Key", enc(entry.key)),
        ("LastModified", iso8601(entry.last_modified)),
        ("ETag", entry.etag),
        ("Size", entry.size),
        ("StorageClass", "STANDARD"),
    ]
    if entry.checksum_algorithm:
        children.insert(3, ("ChecksumAlgorithm", entry.checksum_algorithm))
        children.insert(4, ("ChecksumType", entry.checksum_type or "FULL_OBJECT"))
    if owner is not None:
        children.append(("Owner", owner_xml(owner)))
    return ("Contents", children)


def _common(page: ListPage, enc) -> list:
    return [("CommonPrefixes", [("Prefix", enc(p))]) for p in page.prefixes]


async def _page(ctx: Context, after: str | None) -> tuple[ListPage, str, str, int]:
    await ctx.service.buckets.get_owned(ctx.user, ctx.bucket)
    prefix = ctx.request.query.get("prefix", "")
    delimiter = ctx.request.query.get("delimiter", "")
    max_keys = ctx.query_int("max-keys", 1000, low=0, high=1000)
    page = await ctx.service.listing.page(ctx.bucket, prefix, delimiter, after, max_keys)
    return page, prefix, delimiter, max_keys


async def list_objects(ctx: Context) -> Response:
    enc = _encoder(ctx)
    marker = ctx.request.query.get("marker") or None
    page, prefix, delimiter, max_keys = await _page(ctx, marker)
    children: list = [
        ("Name", ctx.bucket),
        ("Prefix", enc(prefix)),
        ("Marker", enc(marker or "")),
        ("MaxKeys", max_keys),
        ("Delimiter", enc(delimiter) if delimiter else None),
        ("IsTruncated", page.truncated),
        ("NextMarker", enc(page.last) if page.truncated else None),
        ("EncodingType", ctx.request.query.get("encoding-type")),
    ]
    children += [_contents(e, enc, ctx.user) for e in page.entries]
    children += _common(page, enc)
    return xml_response("ListBucketResult", children)


def encode_token(last: str) -> str:
    return base64.urlsafe_b64encode(last.encode()).decode()


def decode_token(token: str) -> str:
    try:
        # validate=True: characters outside the alphabet are an error, not silently dropped
        # (which turned a garbage token such as "!!!" into "", a listing from the start).
        last = base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
        if not last:
            raise ValueError("empty token")
        return last
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise S3Error(
            "InvalidArgument",
            "The continuation token provided is incorrect",
            ArgumentName="continuation-token",
        ) from None


async def list_objects_v2(ctx: Context) -> Response:
    enc = _encoder(ctx)
    token = ctx.request.query.get("continuation-token")
    start_after = ctx.request.query.get("start-after") or None
    after = decode_token(token) if token else start_after
    fetch_owner = ctx.request.query.get("fetch-owner", "").lower() == "true"
    page, prefix, delimiter, max_keys = await _page(ctx, after)
    children: list = [
        ("Name", ctx.bucket),
        ("Prefix", enc(prefix)),
        ("MaxKeys", max_keys),
        ("KeyCount", len(page.entries) + len(page.prefixes)),
        ("Delimiter", enc(delimiter) if delimiter else None),
        ("IsTruncated", page.truncated),
        ("ContinuationToken", token),
        (
            "NextContinuationToken",
            encode_token(page.last) if page.truncated and page.last else None,
        ),
        ("StartAfter", enc(start_after) if start_after else None),
        ("EncodingType", ctx.request.query.get("encoding-type")),
    ]
    owner = ctx.user if fetch_owner else None
    children += [_contents(e, enc, owner) for e in page.entries]
    children += _common(page, enc)
    return xml_response("ListBucketResult", children)
