"""Multipart uploads. Parts are blobs of their own; completing an upload copies no bytes: the
object's segments are the chosen parts' blobs, made visible in one index transaction."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from holdfast import checksums
from holdfast.errors import S3Error
from holdfast.index.records import ObjectRecord, PartRecord, UploadRecord, VersionRef
from holdfast.service.encryption import Encryption, cipher_block, cipher_size, plain_size
from holdfast.service.locks import UPLOAD_LOCK_HEADER
from holdfast.service.node import Node
from holdfast.service.objects import BodySource, EncryptingBody, Objects

MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_NUMBER = 10_000


@dataclass(frozen=True)
class RequestedPart:
    """One <Part> of a CompleteMultipartUpload body."""

    number: int
    etag: str
    checksums: dict[str, str]  # algorithm -> base64 value, as the client sent them


def _norm_etag(etag: str) -> str:
    return etag.strip().strip('"')


class Multipart:
    def __init__(self, node: Node, objects: Objects) -> None:
        self.node = node
        self.objects = objects

    async def create(
        self,
        owner: str,
        bucket: str,
        key: str,
        content_type: str,
        headers: dict[str, str],
        meta: dict[str, str],
        checksum_algorithm: str | None,
        checksum_type: str | None,
        tags: list[tuple[str, str]] | None = None,
    ) -> UploadRecord:
        upload = UploadRecord(
            upload_id=secrets.token_urlsafe(24),
            bucket=bucket,
            key=key,
            owner=owner,
            initiated=time.time(),
            content_type=content_type,
            headers=headers,
            meta=meta,
            checksum_algorithm=checksum_algorithm,
            checksum_type=checksum_type,
            tags=tags or [],
        )
        await self.node.index.create_upload(upload)
        return upload

    async def get(self, bucket: str, key: str, upload_id: str) -> UploadRecord:
        upload = await self.node.index.get_upload(upload_id)
        if upload is None or upload.bucket != bucket or upload.key != key:
            raise S3Error("NoSuchUpload", UploadId=upload_id)
        return upload

    async def upload_part(
        self,
        upload: UploadRecord,
        number: int,
        body: BodySource,
        size_hint: int,
        sealed: EncryptingBody | None = None,
    ) -> PartRecord:
        """Receive one part; with ``sealed`` (``body`` wrapped to encrypt it, see
        holdfast/service/encryption.py) the part's size is its plaintext's, and an SSE-C
        part's ETag is the MD5 of what was stored, as on S3."""
        check_part_number(number)
        block_size = None
        if sealed is not None:
            pbs = sealed.encryptor.cipher.plain_block
            body, size_hint, block_size = sealed, cipher_size(size_hint, pbs), cipher_block(pbs)
        received = await self.objects.receive(
            body, size_hint, allow_inline=False, bucket=upload.bucket, block_size=block_size
        )
        segment, verified = received.segment, received.verified
        size, md5 = segment.size, verified.md5
        if sealed is not None:
            size = plain_size(segment.size, sealed.encryptor.cipher.plain_block)
            enc = Encryption.from_headers(upload.headers)
            if enc is not None and enc.kind == "C":
                md5 = sealed.cipher_md5.digest()
        part = PartRecord(
            upload_id=upload.upload_id,
            part_number=number,
            size=size,
            etag=f'"{md5.hex()}"',
            md5=md5,
            checksum=verified.checksum,
            last_modified=time.time(),
            segment=segment,
        )
        if not await self.node.index.put_part(part):
            await self.objects.discard([segment])
            raise S3Error("NoSuchUpload", UploadId=upload.upload_id)
        return part

    async def list_parts(self, upload: UploadRecord, after: int, limit: int) -> list[PartRecord]:
        return await self.node.index.list_parts(upload.upload_id, after, limit)

    async def list_uploads(
        self,
        bucket: str,
        prefix: str,
        key_marker: str | None,
        upload_id_marker: str | None,
        limit: int,
    ) -> list[UploadRecord]:
        return await self.node.index.list_uploads(
            bucket, prefix, key_marker, upload_id_marker, limit
        )

    async def abort(self, upload: UploadRecord) -> None:
        if not await self.node.index.abort_upload(upload.upload_id):
            raise S3Error("NoSuchUpload", UploadId=upload.upload_id)

    async def complete(
        self,
        upload: UploadRecord,
        requested: list[RequestedPart],
        expected_full_checksum: tuple[str, str] | None,
        lock: tuple[str | None, float | None, bool] = (None, None, False),
    ) -> ObjectRecord:
        """``lock``: the new version's (retention mode, retain-until, legal hold)."""
        stored = {p.part_number: p for p in await self.node.index.list_parts(upload.upload_id)}
        chosen = select_parts(requested, stored)
        _require_composite_part_checksums(upload, requested)
        record = ObjectRecord(
            bucket=upload.bucket,
            key=upload.key,
            size=sum(p.size for p in chosen),
            etag=checksums.multipart_etag([p.md5 for p in chosen]),
            last_modified=time.time(),
            segments=[p.segment for p in chosen],
            content_type=upload.content_type,
            headers={k: v for k, v in upload.headers.items() if k != UPLOAD_LOCK_HEADER},
            meta=upload.meta,
            parts_count=len(chosen),
            tags=upload.tags,
            retention_mode=lock[0],
            retain_until=lock[1],
            legal_hold=lock[2],
        )
        if upload.checksum_algorithm:
            record.checksum_algorithm = upload.checksum_algorithm
            record.checksum_type = upload.checksum_type or checksums.default_checksum_type(
                upload.checksum_algorithm
            )
            record.checksum_value = _object_checksum(upload, record.checksum_type, chosen)
        if expected_full_checksum is not None:
            _check_full_checksum(record, *expected_full_checksum)
        result = await self.node.index.complete_upload(upload.upload_id, record)
        if not result:
            raise S3Error("NoSuchUpload", UploadId=upload.upload_id)
        if isinstance(result, VersionRef):
            record.vseq, record.vnull = result.seq, result.null
        return record


def check_part_number(number: int) -> None:
    if not 1 <= number <= MAX_PART_NUMBER:
        raise S3Error(
            "InvalidArgument",
            f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive",
            ArgumentName="partNumber",
            ArgumentValue=str(number),
        )


def select_parts(requested: list[RequestedPart], stored: dict[int, PartRecord]) -> list[PartRecord]:
    if not requested:
        raise S3Error("MalformedXML", "You must specify at least one part")
    chosen: list[PartRecord] = []
    previous = 0
    for req in requested:
        if req.number <= previous:
            raise S3Error("InvalidPartOrder")
        previous = req.number
        part = stored.get(req.number)
        if part is None or _norm_etag(part.etag) != _norm_etag(req.etag):
            raise S3Error("InvalidPart", PartNumber=str(req.number), ETag=req.etag)
        _check_part_checksums(req, part)
        chosen.append(part)
    for part in chosen[:-1]:
        if part.size < MIN_PART_SIZE:
            raise S3Error(
                "EntityTooSmall",
                ProposedSize=str(part.size),
                MinSizeAllowed=str(MIN_PART_SIZE),
                PartNumber=str(part.part_number),
            )
    return chosen


def _require_composite_part_checksums(upload: UploadRecord, requested: list[RequestedPart]) -> None:
    """S3 completes a COMPOSITE checksum upload only when every <Part> names its checksum
    (the object's checksum is built from them); for FULL_OBJECT they are optional."""
    algorithm = upload.checksum_algorithm
    if not algorithm:
        return
    if (upload.checksum_type or checksums.default_checksum_type(algorithm)) != "COMPOSITE":
        return
    for req in requested:
        if algorithm not in req.checksums:
            raise S3Error(
                "InvalidRequest",
                f"The upload was created using a {algorithm.lower()} checksum. The complete "
                "request must include the checksum for each part. It was missing for part "
                f"{req.number} in the request.",
            )


def _check_part_checksums(req: RequestedPart, part: PartRecord) -> None:
    for _algorithm, value in req.checksums.items():
        if part.checksum is None or checksums.to_b64(part.checksum) != value:
            raise S3Error(
                "InvalidPart",
                f"The checksum of part {req.number} does not match the uploaded part.",
                PartNumber=str(req.number),
            )


def _object_checksum(upload: UploadRecord, checksum_type: str, parts: list[PartRecord]) -> str:
    algorithm = upload.checksum_algorithm
    assert algorithm is not None
    if any(p.checksum is None for p in parts):
        raise S3Error(
            "InvalidRequest",
            f"The upload was created using a {algorithm} checksum; every part needs one.",
        )
    values = [p.checksum for p in parts if p.checksum is not None]
    if checksum_type == "FULL_OBJECT":
        combined = checksums.full_object_crc(
            algorithm, [(v, p.size) for v, p in zip(values, parts, strict=True)]
        )
        return checksums.to_b64(combined)
    return checksums.composite_checksum(algorithm, values)


def _check_full_checksum(record: ObjectRecord, algorithm: str, value: str) -> None:
    if record.checksum_algorithm != algorithm or record.checksum_value != value:
        raise S3Error(
            "BadDigest",
            f"The {algorithm} you specified for the whole object did not match the calculated "
            "checksum.",
        )
