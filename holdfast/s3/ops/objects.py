"""Object operations: PUT, GET, HEAD, DELETE, DeleteObjects, CopyObject."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import unquote

from holdfast.checksums import (
    BodyVerifier,
    ExpectedChecksums,
    VerifiedBody,
    expected_from_headers,
    to_b64,
)
from holdfast.errors import S3Error
from holdfast.index.records import ObjectRecord, VersionRef
from holdfast.s3.body import IncomingBody
from holdfast.s3.http import Response, http_date, iso8601
from holdfast.s3.ops import lifecycle as lifecycle_ops
from holdfast.s3.ops import objectlock, sse, versions
from holdfast.s3.ops.access import apply_request_acl
from holdfast.s3.ops.buckets import read_xml_body, xml_response
from holdfast.s3.ops.common import (
    MAX_PUT_SIZE,
    Context,
    content_type,
    object_headers,
    reject_unsupported_headers,
    request_tags,
    stored_headers,
    user_metadata,
    validate_key,
)
from holdfast.s3.ops.conditions import (
    parse_range,
    raise_for_copy_conditions,
    raise_for_read_conditions,
)
from holdfast.service.encryption import (
    META_HEADER,
    BlockCipher,
    Encryption,
    Encryptor,
    cipher_block,
    cipher_size,
    plain_size,
)
from holdfast.service.objects import EncryptingBody, Received

# S3 now computes a CRC64NVME for every upload that names no checksum; so does Holdfast, so
# that every object can be checked end to end with x-amz-checksum-mode.
DEFAULT_ALGORITHM = "CRC64NVME"

RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}


def checksum_response_headers(algorithm: str | None, value: bytes | None) -> list:
    if algorithm is None or value is None:
        return []
    return [
        (f"x-amz-checksum-{algorithm.lower()}", to_b64(value)),
        ("x-amz-checksum-type", "FULL_OBJECT"),
    ]


def _put_conditions(ctx: Context) -> tuple[bool, str | None]:
    if_none_match = ctx.request.headers.get("if-none-match")
    if if_none_match is not None and if_none_match.strip() != "*":
        raise S3Error("NotImplemented", "If-None-Match on PUT supports only '*'.")
    if_match = ctx.request.headers.get("if-match")
    return if_none_match is not None, if_match.strip().strip('"') if if_match else None


def attrs_from_request(ctx: Context) -> ObjectRecord:
    """Content type, stored headers and user metadata as this request sets them, checked
    before any byte of the body is received."""
    return ObjectRecord(
        bucket=ctx.bucket,
        key=ctx.key,
        size=0,
        etag="",
        last_modified=0,
        segments=[],
        content_type=content_type(ctx.request),
        headers=stored_headers(ctx.request),
        meta=user_metadata(ctx.request),
        tags=request_tags(ctx.request),
    )


def new_record(
    ctx: Context, received: Received, attrs: ObjectRecord, sealed: Sealing | None = None
) -> ObjectRecord:
    """The record for a freshly received single-blob (or inline) object; ``sealed`` when it
    was stored encrypted (its size is the plaintext's; an SSE-C object's ETag is the MD5 of
    what was stored, not of its data, as on S3)."""
    segment, verified = received.segment, received.verified
    headers = sse.public_headers(attrs.headers)
    size, etag = segment.size, verified.etag
    if sealed is not None:
        headers[META_HEADER] = sealed.enc.to_header()
        size = plain_size(segment.size, sealed.enc.plain_block)
        if sealed.enc.kind == "C":
            etag = f'"{sealed.body.cipher_md5.hexdigest()}"'
    return ObjectRecord(
        bucket=ctx.bucket,
        key=ctx.key,
        size=size,
        etag=etag,
        last_modified=time.time(),
        segments=[segment],
        content_type=attrs.content_type,
        headers=headers,
        meta=attrs.meta,
        checksum_algorithm=verified.algorithm,
        checksum_type="FULL_OBJECT" if verified.algorithm else None,
        checksum_value=verified.checksum_b64,
        inline=received.inline,
        tags=attrs.tags,
        retention_mode=attrs.retention_mode,
        retain_until=attrs.retain_until,
        legal_hold=attrs.legal_hold,
    )


def _check_before_body(ctx: Context, size: int | None) -> bool:
    """Whether to check the bucket before reading the body. A large body must be refused
    before it is sent; so must any body whose client asked to be told first (Expect:
    100-continue). A small body already on the wire costs nothing to read, and the commit
    transaction checks the bucket anyway: one index round trip fewer on the commonest PUT."""
    return ctx.request.expects_continue() or not ctx.service.objects.fits_inline(size)


async def put_object(ctx: Context) -> Response:
    validate_key(ctx.key)
    reject_unsupported_headers(ctx.request, acls=True, lock_ok=True)
    if_absent, if_etag = _put_conditions(ctx)
    attrs = attrs_from_request(ctx)
    await apply_request_acl(ctx, attrs.headers)
    await objectlock.apply_request_lock(ctx, attrs)
    expected = expected_from_headers(ctx.request.headers)
    body = IncomingBody(
        ctx.request, ctx.auth, expected, MAX_PUT_SIZE, default_algorithm=DEFAULT_ALGORITHM
    )
    sealing = await sealing_for(ctx, body)
    if sealing is not None or _check_before_body(ctx, body.declared):
        await ctx.owned_bucket()
    received = await receive(ctx, body, body.declared, sealing)
    record = new_record(ctx, received, attrs, sealing)
    ref = await ctx.service.objects.commit(record, if_absent, if_etag, owner=ctx.user)
    response = Response(200, [("ETag", record.etag), *versions.written_headers(ref)])
    verified = received.verified
    response.headers += checksum_response_headers(verified.algorithm, verified.checksum)
    if sealing is not None:
        response.headers += sealing.enc.response_headers()
    return response


@dataclass
class Sealing:
    """One object being written encrypted: how, and the body that encrypts it."""

    enc: Encryption
    body: EncryptingBody


async def sealing_for(ctx: Context, body, bucket_checked: bool = False) -> Sealing | None:
    """The encryption this write asks for (headers, else the bucket's default)."""
    if not bucket_checked:
        # The bucket's default is read from the bucket: it must be the caller's first.
        await ctx.owned_bucket()
    chosen = await sse.for_write(ctx)
    if chosen is None:
        return None
    enc, data_key, _ = chosen
    return Sealing(enc, EncryptingBody(body, Encryptor(BlockCipher(data_key, enc.plain_block))))


async def receive(ctx: Context, body, size: int | None, sealing: Sealing | None) -> Received:
    if sealing is None:
        return await ctx.service.objects.receive(body, size, bucket=ctx.bucket)
    pbs = sealing.enc.plain_block
    return await ctx.service.objects.receive(
        sealing.body,
        cipher_size(size, pbs) if size is not None else None,
        bucket=ctx.bucket,
        block_size=cipher_block(pbs),
    )


async def _current(ctx: Context) -> ObjectRecord:
    """The current version the request names: the one the access decision read with the
    bucket's documents (in the same statement, so as fresh as a read of its own), else read
    now (the website endpoint)."""
    request = ctx.request
    if not request.object_read:
        return await ctx.service.objects.get_owned(ctx.user, ctx.bucket, ctx.key)
    if request.object is None:
        raise S3Error("NoSuchKey", Key=ctx.key)
    return request.object


async def _readable(ctx: Context) -> ObjectRecord:
    validate_key(ctx.key)
    version = ctx.request.query.get("versionId")
    if version:
        await ctx.owned_bucket()
        obj = await ctx.service.versions.get(ctx.bucket, ctx.key, version)
        if obj.delete_marker:
            raise versions.marker_error(obj, "MethodNotAllowed", 405)
    else:
        try:
            obj = await _current(ctx)
        except S3Error as e:
            if e.code != "NoSuchKey":
                raise
            marker = await ctx.service.versions.current_marker(ctx.bucket, ctx.key)
            if marker is None:
                raise
            raise versions.marker_error(marker, "NoSuchKey", 404, Key=ctx.key) from None
    raise_for_read_conditions(ctx.request.headers, obj)
    return obj


def _part_bounds(ctx: Context, obj: ObjectRecord) -> tuple[int, int] | None:
    raw = ctx.request.query.get("partNumber")
    if raw is None:
        return None
    if "range" in ctx.request.headers:
        raise S3Error(
            "InvalidRequest", "Cannot specify both Range header and partNumber query parameter"
        )
    number = ctx.query_int("partNumber", 1, low=1, high=10_000)
    segments = obj.segments if obj.parts_count else [None]
    if number > len(segments):
        raise S3Error(
            "InvalidPartNumber", "The requested partnumber is not satisfiable", status=416
        )
    if not obj.parts_count:
        return 0, obj.size
    enc = Encryption.from_headers(obj.headers)
    sizes = [plain_size(s.size, enc.plain_block) if enc else s.size for s in obj.segments]
    start = sum(sizes[: number - 1])
    return start, start + sizes[number - 1]


def _object_response(ctx: Context, obj: ObjectRecord) -> tuple[Response, int, int]:
    size = obj.size
    bounds = _part_bounds(ctx, obj)
    rng = bounds or parse_range(ctx.request.headers.get("range"), size)
    whole = rng is None
    start, end = rng if rng else (0, size)
    mode = (ctx.request.headers.get("x-amz-checksum-mode") or "").upper() == "ENABLED"
    response = Response(200 if whole and bounds is None else 206)
    object_headers(obj, response, with_checksum=mode and whole)
    if bounds is not None and obj.parts_count:  # S3 names the count only for part reads
        response.add("x-amz-mp-parts-count", str(obj.parts_count))
    if not whole:
        response.add(
            "Content-Range", f"bytes {start}-{end - 1}/{size}" if end > start else f"bytes */{size}"
        )
    response.add("Content-Length", str(end - start))
    for param, header in RESPONSE_OVERRIDES.items():
        value = ctx.request.query.get(param)
        if value is not None:
            response.headers = [(n, v) for n, v in response.headers if n.lower() != header.lower()]
            response.add(header, _header_value(param, value))
    return response, start, end


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _header_value(param: str, value: str) -> str:
    """A response-* override as header text: UTF-8 bytes on the wire (a filename in
    Content-Disposition, say), never a control character. Either was a 500 (the header could
    not be encoded, or uvicorn refused it after the answer had started)."""
    if _CONTROL.search(value):
        raise S3Error(
            "InvalidArgument",
            f"{param} must not contain control characters",
            ArgumentName=param,
            ArgumentValue=value.encode("unicode_escape").decode()[:200],
        )
    return value.encode("utf-8", "surrogatepass").decode("latin-1")


async def _version_headers(ctx: Context, obj: ObjectRecord) -> list[tuple[str, str]]:
    """The version's id and, for the current version, the lifecycle expiration."""
    out = versions.read_headers(obj, await versions.bucket_versioned(ctx))
    if not ctx.request.query.get("versionId"):
        out += await lifecycle_ops.expiration_headers(ctx, obj)
    return out


async def get_object(ctx: Context) -> Response:
    return await object_response(ctx, await _readable(ctx), head=False)


async def object_response(ctx: Context, obj: ObjectRecord, head: bool) -> Response:
    """GET's (or with ``head`` HEAD's) answer for ``obj``, read already and its conditions
    checked (the website endpoint serves objects through this too)."""
    cipher = sse.cipher_for_read(ctx, obj)
    response, start, end = _object_response(ctx, obj)
    response.headers += await _version_headers(ctx, obj)
    response.headers += objectlock.read_headers(obj)
    if head:
        return response
    if end <= start:
        response.body = b""
    elif cipher is not None:
        response.body = ctx.service.objects.read_decrypted(obj, cipher, start, end)
    else:
        response.body = await ctx.service.objects.body(obj, start, end)
    return response


async def head_object(ctx: Context) -> Response:
    return await object_response(ctx, await _readable(ctx), head=True)


async def delete_object(ctx: Context) -> Response:
    validate_key(ctx.key)
    # Conditional deletes are not implemented; deleting anyway would be a wrong success.
    for name in ("if-match", "x-amz-if-match-last-modified-time", "x-amz-if-match-size"):
        if name in ctx.request.headers:
            raise S3Error("NotImplemented", f"The {name} header is not implemented on DELETE.")
    await ctx.owned_bucket()
    version = ctx.request.query.get("versionId")
    if version:
        removed = await ctx.service.versions.delete(
            ctx.bucket, ctx.key, version, objectlock.bypass_requested(ctx)
        )
        headers = [("x-amz-version-id", version)]
        if removed is not None and removed.delete_marker:
            headers.append(("x-amz-delete-marker", "true"))
        return Response(204, headers)
    marker = await ctx.service.versions.delete_current(ctx.bucket, ctx.key)
    if marker is None:
        return Response(204)
    return Response(204, [("x-amz-delete-marker", "true"), *versions.written_headers(marker)])


async def delete_objects(ctx: Context) -> Response:
    await ctx.owned_bucket()
    doc = await read_xml_body(ctx)
    assert doc is not None
    if doc.tag != "Delete":
        raise S3Error("MalformedXML")
    quiet = (doc.findtext("Quiet") or "").strip().lower() == "true"
    objects = doc.findall("Object")
    if not objects or len(objects) > 1000:
        raise S3Error("MalformedXML")
    deleted: list[str] = []
    by_version: list[tuple[str, str]] = []
    errors: list[tuple[str, str, str]] = []
    for item in objects:
        key = item.findtext("Key")
        if key is None:
            raise S3Error("MalformedXML")
        if len(key.encode()) > 1024:
            errors.append((key, "KeyTooLongError", "Your key is too long."))
            continue
        version = item.findtext("VersionId")
        if version:
            by_version.append((key, version))
        else:
            deleted.append(key)
    results = await ctx.service.objects.delete_many(ctx.bucket, deleted) if deleted else []
    done: list = []
    for key, result in zip(deleted, results, strict=False):
        entry: list = [("Key", key)]
        if isinstance(result, VersionRef):
            entry += [
                ("DeleteMarker", True),
                ("DeleteMarkerVersionId", versions.version_id(result.seq, result.null)),
            ]
        done.append(("Deleted", entry))
    for key, version in by_version:
        try:
            removed = await ctx.service.versions.delete(
                ctx.bucket, key, version, objectlock.bypass_requested(ctx)
            )
        except S3Error as e:
            errors.append((key, e.code, e.message))
            continue
        entry = [("Key", key), ("VersionId", version)]
        if removed is not None and removed.delete_marker:
            entry += [("DeleteMarker", True), ("DeleteMarkerVersionId", version)]
        done.append(("Deleted", entry))
    children: list = []
    if not quiet:
        children += done
    children += [
        ("Error", [("Key", key), ("Code", code), ("Message", message)])
        for key, code, message in errors
    ]
    return xml_response("DeleteResult", children)


# -- copy ------------------------------------------------------------------------------------


def parse_copy_source(value: str) -> tuple[str, str, str | None]:
    """``/bucket/key`` or ``bucket/key``, URL-encoded, optionally with ``?versionId=``."""
    path, _, query = value.partition("?")
    version = None
    if query:
        name, _, version = query.partition("=")
        if name != "versionId" or "&" in version:
            raise S3Error("InvalidArgument", "Unsupported copy source parameter.")
        version = unquote(version) or None
    path = unquote(path).lstrip("/")
    bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise S3Error(
            "InvalidArgument",
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            ArgumentName="x-amz-copy-source",
        )
    return bucket, key, version


class CopiedBody:
    """The body of a copy: bytes read (and block-verified) from the source object, digested
    afresh so the copy's ETag and checksum describe exactly what was written."""

    def __init__(self, source: AsyncIterator[bytes], algorithm: str | None) -> None:
        self.source = source
        self.verifier = BodyVerifier(
            ExpectedChecksums(None, algorithm, None, None), default_algorithm=None
        )

    def chunks(self) -> AsyncIterator[bytes]:
        return self.source

    def update(self, data: bytes) -> None:
        self.verifier.update(data)

    def finish(self) -> VerifiedBody:
        return self.verifier.finish({})


def source_bytes(ctx: Context, source: ObjectRecord, start: int, end: int) -> AsyncIterator[bytes]:
    """The copy source's plaintext [start, end): an SSE-C source needs its key in the
    x-amz-copy-source-server-side-encryption-customer-* headers."""
    cipher = sse.cipher_for_read(ctx, source, sse.COPY_C_PREFIX)
    if cipher is not None:
        return ctx.service.objects.read_decrypted(source, cipher, start, end)
    return ctx.service.objects.read(source, start, end)


async def copy_source(ctx: Context) -> ObjectRecord:
    src_bucket, src_key, version = parse_copy_source(ctx.request.headers["x-amz-copy-source"])
    validate_key(src_key)
    await ctx.service.buckets.get_owned(ctx.request.source_owner or ctx.user, src_bucket)
    if version:
        source = await ctx.service.versions.get(src_bucket, src_key, version)
        if source.delete_marker:  # S3: a copy source may not be a delete marker
            raise S3Error(
                "InvalidRequest",
                "The source of a copy request may not specifically "
                "refer to a delete marker by version id.",
            )
    else:
        source = await ctx.service.objects.get(src_bucket, src_key)
    raise_for_copy_conditions(ctx.request.headers, source)
    return source


def _copy_attrs(ctx: Context, source: ObjectRecord) -> ObjectRecord:
    directive = (ctx.request.headers.get("x-amz-metadata-directive") or "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise S3Error(
            "InvalidArgument",
            "Unknown metadata directive.",
            ArgumentName="x-amz-metadata-directive",
            ArgumentValue=directive,
        )
    same = source.bucket == ctx.bucket and source.key == ctx.key
    changes_encryption = (
        sse.SSE in ctx.request.headers or sse.C_PREFIX + "key" in ctx.request.headers
    )
    if same and directive == "COPY" and not changes_encryption:
        raise S3Error(
            "InvalidRequest",
            "This copy request is illegal because it is trying to copy an object to itself "
            "without changing the object's metadata, storage class, website redirect location "
            "or encryption attributes.",
        )
    attrs = source if directive == "COPY" else attrs_from_request(ctx)
    tagging = (ctx.request.headers.get("x-amz-tagging-directive") or "COPY").upper()
    if tagging not in ("COPY", "REPLACE"):
        raise S3Error(
            "InvalidArgument",
            "Unknown tagging directive.",
            ArgumentName="x-amz-tagging-directive",
            ArgumentValue=tagging,
        )
    tags = list(source.tags) if tagging == "COPY" else request_tags(ctx.request)
    # The source's lock is never copied (S3): the copy has only what its own headers give.
    return dataclasses.replace(
        attrs,
        headers=dict(attrs.headers),
        tags=tags,
        retention_mode=None,
        retain_until=None,
        legal_hold=False,
    )


async def copy_object(ctx: Context) -> Response:
    validate_key(ctx.key)
    reject_unsupported_headers(ctx.request, acls=True, lock_ok=True)
    # If-Match / If-None-Match: * on a copy are conditions on the destination, as on PUT.
    if_absent, if_etag = _put_conditions(ctx)
    await ctx.owned_bucket()
    source = await copy_source(ctx)
    attrs = _copy_attrs(ctx, source)
    await apply_request_acl(ctx, attrs.headers)
    await objectlock.apply_request_lock(ctx, attrs)
    if source.size > MAX_PUT_SIZE:
        raise S3Error(
            "InvalidRequest",
            "The specified copy source is larger than the maximum "
            "allowable size for a copy source: 5368709120",
        )
    algorithm = (ctx.request.headers.get("x-amz-checksum-algorithm") or "").upper() or (
        source.checksum_algorithm or DEFAULT_ALGORITHM
    )
    body = CopiedBody(source_bytes(ctx, source, 0, source.size), algorithm)
    sealing = await sealing_for(ctx, body, bucket_checked=True)
    received = await receive(ctx, body, source.size, sealing)
    record = new_record(ctx, received, attrs, sealing)
    record.origin = "Copy"  # event notifications: s3:ObjectCreated:Copy
    ref = await ctx.service.objects.commit(record, if_absent, if_etag)
    children: list = [("LastModified", iso8601(record.last_modified)), ("ETag", record.etag)]
    if record.checksum_algorithm and record.checksum_value:
        children += [
            ("ChecksumType", "FULL_OBJECT"),
            (f"Checksum{record.checksum_algorithm}", record.checksum_value),
        ]
    response = xml_response("CopyObjectResult", children)
    response.add("x-amz-copy-source-last-modified", http_date(source.last_modified))
    if sealing is not None:
        response.headers += sealing.enc.response_headers()
    response.headers += versions.written_headers(ref)
    source_version = versions.read_headers(source)
    if source_version:
        response.add("x-amz-copy-source-version-id", source_version[0][1])
    return response
