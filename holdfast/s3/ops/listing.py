"""ListObjects (v1) and ListObjectsV2."""

from __future__ import annotations

import base64
import binascii
import functools
import re
from urllib.parse import quote

from holdfast.errors import S3Error
from holdfast.index.records import ListedEntry
from holdfast.s3 import xml
from holdfast.s3.http import Response, iso8601
from holdfast.s3.ops.buckets import xml_response
from holdfast.s3.ops.common import Context, owner_xml
from holdfast.service.listing import ListPage

_SAFE_KEY = re.compile(r"[A-Za-z0-9_.~/-]*")


def _url_encode(value: str | None) -> str | None:
    if value is None or _SAFE_KEY.fullmatch(value):
        return value
    return quote(value, safe="/")


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
    return _url_encode


@functools.lru_cache(maxsize=4096)
def _timestamp(last_modified: float) -> str:
    return iso8601(last_modified)


def _contents(entry: ListedEntry, enc, owner: str | None) -> tuple[str, xml.Fragment]:
    """One <Contents> rendered directly: this runs 1,000 times per page."""
    checksum = ""
    if entry.checksum_algorithm:
        checksum = (
            f"<ChecksumAlgorithm>{entry.checksum_algorithm}</ChecksumAlgorithm>"
            f"<ChecksumType>{entry.checksum_type or 'FULL_OBJECT'}</ChecksumType>"
        )
    owner_part = ""
    if owner is not None:
        owner_part = (
            "<Owner>" + "".join(xml.element(t, v) for t, v in owner_xml(owner)) + "</Owner>"
        )
    return (
        "",
        xml.Fragment(
            f"<Contents>{xml.element('Key', enc(entry.key))}"
            f"<LastModified>{_timestamp(entry.last_modified)}</LastModified>"
            f"<ETag>{entry.etag}</ETag>{checksum}<Size>{entry.size}</Size>"
            f"<StorageClass>STANDARD</StorageClass>{owner_part}</Contents>"
        ),
    )


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
