"""Multipart upload operations."""

from __future__ import annotations

import re

from holdfast.checksums import (
    ALGORITHMS,
    ExpectedChecksums,
    default_checksum_type,
    expected_from_headers,
    to_b64,
    validate_checksum_type,
)
from holdfast.errors import S3Error
from holdfast.index.records import UploadRecord
from holdfast.s3 import xml
from holdfast.s3.body import IncomingBody
from holdfast.s3.http import Response, iso8601
from holdfast.s3.ops import objectlock, sse, versions
from holdfast.s3.ops.access import apply_request_acl
from holdfast.s3.ops.buckets import xml_response
from holdfast.s3.ops.common import (
    Context,
    owner_xml,
    reject_unsupported_headers,
    validate_key,
)
from holdfast.s3.ops.objects import (
    CopiedBody,
    attrs_from_request,
    checksum_response_headers,
    copy_source,
    source_bytes,
)
from holdfast.service.encryption import (
    META_HEADER,
    BlockCipher,
    Encryption,
    Encryptor,
    WrongKey,
    open_data_key,
)
from holdfast.service.listing import common_prefix
from holdfast.service.multipart import RequestedPart, check_part_number
from holdfast.service.objects import EncryptingBody

MAX_PART_SIZE = 5 * 1024**3


async def _upload(ctx: Context) -> UploadRecord:
    validate_key(ctx.key)
    await ctx.owned_bucket()
    upload_id = ctx.request.query.get("uploadId", "")
    return await ctx.service.multipart.get(ctx.bucket, ctx.key, upload_id)


def _requested_checksum(ctx: Context) -> tuple[str | None, str | None]:
    algorithm = ctx.request.headers.get("x-amz-checksum-algorithm")
    checksum_type = ctx.request.headers.get("x-amz-checksum-type")
    if algorithm is None:
        if checksum_type is not None:
            raise S3Error(
                "InvalidRequest",
                "The x-amz-checksum-type header can only be used "
                "with the x-amz-checksum-algorithm header.",
            )
        return None, None
    algorithm = algorithm.upper()
    if algorithm not in ALGORITHMS:
        raise S3Error("InvalidRequest", "Checksum algorithm provided is unsupported.")
    checksum_type = (checksum_type or default_checksum_type(algorithm)).upper()
    validate_checksum_type(algorithm, checksum_type)
    return algorithm, checksum_type


async def create_multipart_upload(ctx: Context) -> Response:
    validate_key(ctx.key)
    reject_unsupported_headers(ctx.request, acls=True, lock_ok=True)
    await ctx.owned_bucket()
    attrs = attrs_from_request(ctx)
    algorithm, checksum_type = _requested_checksum(ctx)
    chosen = await sse.for_write(ctx)
    headers = dict(attrs.headers)
    await apply_request_acl(ctx, headers)
    await objectlock.lock_for_upload(ctx, headers)
    if chosen is not None:  # kept wrapped with the upload; every part opens it
        headers[META_HEADER] = chosen[0].to_header()
    upload = await ctx.service.multipart.create(
        ctx.user,
        ctx.bucket,
        ctx.key,
        attrs.content_type,
        headers,
        attrs.meta,
        algorithm,
        checksum_type,
        attrs.tags,
    )
    response = xml_response(
        "InitiateMultipartUploadResult",
        [("Bucket", ctx.bucket), ("Key", ctx.key), ("UploadId", upload.upload_id)],
    )
    if algorithm:
        response.add("x-amz-checksum-algorithm", algorithm)
        response.add("x-amz-checksum-type", checksum_type)
    if chosen is not None:
        response.headers += chosen[0].response_headers()
    return response


def _part_sealing(ctx: Context, upload: UploadRecord, body) -> EncryptingBody | None:
    """An encrypted upload's parts are encrypted under its data key; SSE-C parts must each
    carry the upload's key."""
    enc = Encryption.from_headers(upload.headers)
    key = sse.customer_key(ctx.request)
    if enc is None:
        if key is not None:
            raise S3Error(
                "InvalidRequest", "The encryption parameters are not applicable to this upload."
            )
        return None
    if enc.kind == "C" and key is None:
        raise S3Error(
            "InvalidRequest",
            "The multipart upload initiate requested encryption. Subsequent part requests "
            "must include the appropriate encryption parameters.",
        )
    try:
        data_key = open_data_key(enc, ctx.service.users.keyring, key)
    except WrongKey:
        raise S3Error(
            "InvalidRequest",
            "The provided encryption parameters did not match the ones used originally.",
        ) from None
    return EncryptingBody(body, Encryptor(BlockCipher(data_key, enc.plain_block)))


def _part_number(ctx: Context) -> int:
    number = ctx.query_int("partNumber", 0, low=0)  # not clamped: the error names the value
    check_part_number(number)
    return number


async def upload_part(ctx: Context) -> Response:
    number = _part_number(ctx)
    upload = await _upload(ctx)
    expected = expected_from_headers(ctx.request.headers)
    if (
        upload.checksum_algorithm
        and expected.algorithm
        and expected.algorithm != upload.checksum_algorithm
    ):
        raise S3Error(
            "InvalidRequest",
            f"Checksum Type mismatch occurred, expected checksum "
            f"Type: {upload.checksum_algorithm.lower()}, actual checksum Type: "
            f"{expected.algorithm.lower()}",
        )
    body = IncomingBody(
        ctx.request,
        ctx.auth,
        expected,
        MAX_PART_SIZE,
        default_algorithm=upload.checksum_algorithm,
    )
    sealed = _part_sealing(ctx, upload, body)
    part = await ctx.service.multipart.upload_part(upload, number, body, body.declared or 0, sealed)
    response = Response(200, [("ETag", part.etag)])
    if sealed is not None:
        response.headers += Encryption.from_headers(upload.headers).response_headers()
    response.headers += checksum_response_headers(upload.checksum_algorithm, part.checksum)
    return response


async def upload_part_copy(ctx: Context) -> Response:
    number = _part_number(ctx)
    upload = await _upload(ctx)
    source = await copy_source(ctx)
    start, end = 0, source.size
    header = ctx.request.headers.get("x-amz-copy-source-range")
    if header is not None:
        start, end = _copy_range(header, source.size)
    if end - start > MAX_PART_SIZE:
        raise S3Error("InvalidRequest", "The specified copy range is larger than a part may be.")
    body = CopiedBody(source_bytes(ctx, source, start, end), upload.checksum_algorithm)
    sealed = _part_sealing(ctx, upload, body)
    part = await ctx.service.multipart.upload_part(upload, number, body, end - start, sealed)
    children: list = [("ETag", part.etag), ("LastModified", iso8601(part.last_modified))]
    if upload.checksum_algorithm and part.checksum:
        children.append((f"Checksum{upload.checksum_algorithm}", to_b64(part.checksum)))
    return xml_response("CopyPartResult", children)


_COPY_RANGE = re.compile(r"^bytes=(\d+)-(\d+)$")


def _copy_range(header: str, size: int) -> tuple[int, int]:
    """[start, end) of ``bytes=first-last``. Any other form is InvalidArgument; a range
    reaching past the end of the source is InvalidRange (it is never silently clamped)."""
    m = _COPY_RANGE.match(header.strip())
    if m is None or int(m[1]) > int(m[2]):
        raise S3Error(
            "InvalidArgument",
            "The x-amz-copy-source-range value must be of the "
            "form bytes=first-last where first and last are the zero-based "
            "offsets of the first and last bytes to copy",
            ArgumentName="x-amz-copy-source-range",
            ArgumentValue=header,
        )
    first, last = int(m[1]), int(m[2])
    if last >= size:
        raise S3Error("InvalidRange", ActualObjectSize=str(size), RangeRequested=header)
    return first, last + 1


def _requested_parts(doc) -> list[RequestedPart]:
    if doc.tag != "CompleteMultipartUpload":
        raise S3Error("MalformedXML")
    parts = []
    for el in doc.findall("Part"):
        number_text = el.findtext("PartNumber")
        etag = el.findtext("ETag")
        number = (number_text or "").strip()
        # isascii: "²" is a digit to str.isdigit, and int() refuses it (a 500, once).
        if etag is None or not (number.isascii() and number.isdigit()):
            raise S3Error("MalformedXML")
        sums = {
            alg: el.findtext(f"Checksum{alg}").strip()
            for alg in ALGORITHMS
            if el.findtext(f"Checksum{alg}")
        }
        parts.append(RequestedPart(int(number), etag, sums))
    return parts


def _whole_object_checksum(ctx: Context) -> tuple[str, str] | None:
    for alg in ALGORITHMS:
        value = ctx.request.headers.get(f"x-amz-checksum-{alg.lower()}")
        if value is not None:
            return alg, value
    return None


async def complete_multipart_upload(ctx: Context) -> Response:
    upload = await _upload(ctx)
    # The x-amz-checksum-* headers here describe the whole object, not this XML body, so the
    # body is read without them.
    body = IncomingBody(
        ctx.request, ctx.auth, ExpectedChecksums(None, None, None, None), 4 * 1024 * 1024
    )
    doc = xml.parse(await body.read_all())
    requested = _requested_parts(doc)
    lock = await objectlock.lock_at_complete(ctx, upload)
    record = await ctx.service.multipart.complete(
        upload, requested, _whole_object_checksum(ctx), lock
    )
    children: list = [
        ("Location", f"/{ctx.bucket}/{ctx.key}"),
        ("Bucket", ctx.bucket),
        ("Key", ctx.key),
        ("ETag", record.etag),
    ]
    if record.checksum_algorithm:
        children += [
            (f"Checksum{record.checksum_algorithm}", record.checksum_value),
            ("ChecksumType", record.checksum_type),
        ]
    response = xml_response("CompleteMultipartUploadResult", children)
    enc = Encryption.from_headers(record.headers)
    if enc is not None:
        response.headers += enc.response_headers()
    response.headers += versions.read_headers(record)
    return response


async def abort_multipart_upload(ctx: Context) -> Response:
    upload = await _upload(ctx)
    await ctx.service.multipart.abort(upload)
    return Response(204)


async def list_parts(ctx: Context) -> Response:
    upload = await _upload(ctx)
    marker = ctx.query_int("part-number-marker", 0)
    max_parts = ctx.query_int("max-parts", 1000, low=0, high=1000)
    parts = await ctx.service.multipart.list_parts(upload, marker, max_parts + 1)
    truncated = len(parts) > max_parts
    parts = parts[:max_parts]
    children: list = [
        ("Bucket", ctx.bucket),
        ("Key", ctx.key),
        ("UploadId", upload.upload_id),
        ("PartNumberMarker", marker),
        ("NextPartNumberMarker", parts[-1].part_number if parts else None),
        ("MaxParts", max_parts),
        ("IsTruncated", truncated),
        ("Initiator", owner_xml(upload.owner)),
        ("Owner", owner_xml(upload.owner)),
        ("StorageClass", "STANDARD"),
        ("ChecksumAlgorithm", upload.checksum_algorithm),
        ("ChecksumType", upload.checksum_type),
    ]
    for p in parts:
        part_children: list = [
            ("PartNumber", p.part_number),
            ("LastModified", iso8601(p.last_modified)),
            ("ETag", p.etag),
            ("Size", p.size),
        ]
        if upload.checksum_algorithm and p.checksum:
            part_children.append((f"Checksum{upload.checksum_algorithm}", to_b64(p.checksum)))
        children.append(("Part", part_children))
    return xml_response("ListPartsResult", children)


_UPLOADS_BATCH = 1000


async def list_multipart_uploads(ctx: Context) -> Response:
    await ctx.owned_bucket()
    prefix = ctx.request.query.get("prefix", "")
    delimiter = ctx.request.query.get("delimiter", "")
    key_marker = ctx.request.query.get("key-marker") or None
    id_marker = ctx.request.query.get("upload-id-marker") or None
    max_uploads = ctx.query_int("max-uploads", 1000, low=0, high=1000)
    # Uploads and common prefixes both count against max-uploads, and a common prefix is
    # listed once: on later pages (its key-marker is the prefix) its uploads are skipped.
    prefixes: list[str] = []
    listed: list[UploadRecord] = []
    truncated = False
    next_key: str | None = None
    next_id: str | None = None
    after_key, after_id = key_marker, id_marker
    while not truncated:
        batch = await ctx.service.multipart.list_uploads(
            ctx.bucket, prefix, after_key, after_id, _UPLOADS_BATCH
        )
        for up in batch:
            group = common_prefix(up.key, prefix, delimiter)
            if group is not None and (
                (key_marker is not None and group <= key_marker)
                or (prefixes and prefixes[-1] == group)
            ):
                continue
            if len(listed) + len(prefixes) >= max_uploads:
                truncated = True
                break
            if group is not None:
                prefixes.append(group)
                next_key, next_id = group, None
            else:
                listed.append(up)
                next_key, next_id = up.key, up.upload_id
        if len(batch) < _UPLOADS_BATCH:
            break
        after_key, after_id = batch[-1].key, batch[-1].upload_id
    children: list = [
        ("Bucket", ctx.bucket),
        ("KeyMarker", key_marker or ""),
        ("UploadIdMarker", id_marker or ""),
        ("NextKeyMarker", next_key if truncated else None),
        ("NextUploadIdMarker", next_id if truncated else None),
        ("Delimiter", delimiter or None),
        ("Prefix", prefix),
        ("MaxUploads", max_uploads),
        ("IsTruncated", truncated),
    ]
    children += [
        (
            "Upload",
            [
                ("Key", up.key),
                ("UploadId", up.upload_id),
                ("Initiator", owner_xml(up.owner)),
                ("Owner", owner_xml(up.owner)),
                ("StorageClass", "STANDARD"),
                ("Initiated", iso8601(up.initiated)),
                ("ChecksumAlgorithm", up.checksum_algorithm),
                ("ChecksumType", up.checksum_type),
            ],
        )
        for up in listed
    ]
    children += [("CommonPrefixes", [("Prefix", p)]) for p in prefixes]
    return xml_response("ListMultipartUploadsResult", children)
