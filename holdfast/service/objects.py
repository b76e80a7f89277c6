"""Object data paths: receive a body into blobs, commit metadata, read verified bytes back.

The write path keeps DESIGN.md's first invariant: bytes are written to temporary files, checked
against every digest the client sent, fsync'd and renamed on as many stores as the policy
requires, and only then does one index transaction make the object visible. Any failure before
the commit leaves at most a temporary file or an unreferenced blob for the sweeper.

Receiving overlaps network and disk: while one buffer is hashed and written in a worker thread
(hashlib and crc32c release the GIL), the event loop is already receiving the next.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from holdfast.errors import S3Error
from holdfast.index.errors import ConditionFailed, Forbidden, IndexFull, NotFound, OutcomeUnknown
from holdfast.index.records import ObjectRecord, Segment, VersionRef
from holdfast.placement.policy import NoCapacity, choose_stores
from holdfast.service.blobsink import BlobSink, QuorumLost
from holdfast.service.encryption import BlockCipher, Encryptor, plain_size
from holdfast.service.node import Node
from holdfast.service.versions import parse_version_id
from holdfast.stores.blocks import BlockChecksummer, CorruptBlock, verify_block
from holdfast.stores.verify import Copy, CopyReader, NoGoodCopy, copies_of

log = logging.getLogger("holdfast.objects")

FLUSH_BYTES = 1024 * 1024
INDEX_ROW_SLACK = 64 * 1024  # room an inline object's row needs beyond its bytes
READ_BATCH_BLOCKS = 4
# hashlib releases the GIL for 2,048 bytes or more; on the event loop, taking it back from
# the commit thread cost more than hashing a small body (docs/performance.md).
HASH_SLICE_BYTES = 2047


class BodySource(Protocol):
    """A request body as the front end delivers it: decoded, and verified at the end."""

    def chunks(self) -> AsyncIterator[bytes]: ...

    def update(self, data: bytes) -> None:
        """Digest ``data``; called in order, from a worker thread."""

    def finish(self) -> object:
        """Check every digest the client sent; raises S3Error on a mismatch."""


@dataclass(frozen=True)
class Received:
    """A verified body, either durable in a blob (``segment``) or held for an inline commit."""

    segment: Segment
    verified: Any
    inline: bytes | None = None


class DataLost(Exception):
    """No store could deliver a verified copy of some bytes: the response must be aborted."""

    def __init__(self, bucket: str, key: str, offset: int, failures: list[str]) -> None:
        super().__init__(f"{bucket}/{key}: no good copy ({'; '.join(failures)})")
        self.bucket, self.key, self.offset, self.failures = bucket, key, offset, failures


def _storage_error(exc: Exception) -> S3Error:
    return S3Error("InsufficientStorage", str(exc), status=507)


def _outcome_unknown(exc: OutcomeUnknown) -> S3Error:
    """500 InternalError, which SDKs retry; a retried PUT or DELETE is harmless either way."""
    return S3Error("InternalError", f"The write may not have been applied: {exc}")


def _placement_error(exc: NoCapacity | QuorumLost) -> S3Error:
    """Out of space: InsufficientStorage (507, docs/integrity.md). Too few drives up:
    ServiceUnavailable (503), which SDKs retry."""
    if exc.full:
        return _storage_error(exc)
    return S3Error("ServiceUnavailable", f"Not enough drives are available: {exc}", status=503)


class Objects:
    def __init__(self, node: Node) -> None:
        self.node = node

    # -- writing -----------------------------------------------------------------------------

    def fits_inline(self, size: int | None) -> bool:
        return size is not None and size <= self.node.config.inline_max_bytes

    async def receive(
        self,
        body: BodySource,
        size: int | None,
        allow_inline: bool = True,
        bucket: str | None = None,
        block_size: int | None = None,
    ) -> Received:
        """Take in ``body`` (``size`` bytes if known): small ones are kept in memory to be
        committed inline with their metadata; others stream into a new durable blob, not yet
        referenced by the index. The digests are verified either way.

        ``bucket`` selects the placement policy. Only a single-copy policy stores small
        objects inline: an inline object has exactly one copy, in the index row, so a
        policy of two copies on distinct drives writes them as blobs like any other."""
        policy = self.node.policies.policy_for(bucket)
        if allow_inline and policy.copies == 1 and self.fits_inline(size):
            self._check_index_room(size or 0)
            return await self._receive_inline(body, block_size)
        self.node.foreground.touch()
        try:
            choice = choose_stores(
                list(self.node.all_stores.values()),
                policy,
                size or 0,
                self.node.writable,
                self.node.zone_of,
                self.node.prefer,
            )
        except NoCapacity as e:
            raise _placement_error(e) from None
        sink_args = (
            choice.targets,
            block_size or self.node.config.block_size,
            self.node.drives,
            policy.min_copies,
            choice.deferred,
        )
        if size is not None and size < FLUSH_BYTES:
            return await self._receive_small(body, sink_args)
        try:
            sink = await self.node.run(BlobSink, *sink_args)
        except QuorumLost as e:
            raise _placement_error(e) from None
        pending: asyncio.Future | None = None
        buf = bytearray()
        try:
            async for piece in body.chunks():
                buf += piece
                if len(buf) >= FLUSH_BYTES:
                    if pending is not None:
                        await pending
                    data, buf = buf, bytearray()  # handed over whole: no copy
                    # A long upload is foreground work throughout, not only at its start,
                    # or the scrubber resumes 0.2 s into it and takes CPU from it.
                    self.node.foreground.touch()
                    pending = asyncio.ensure_future(self.node.run(sink.absorb, body, data))
            if pending is not None:
                await pending
                pending = None
            segment, verified = await self.node.run(sink.seal, body, buf)
            if segment.deferred:
                self.node.integrity.counters.degraded_writes += 1
            return Received(segment, verified)
        except BaseException as exc:
            if pending is not None:
                await asyncio.gather(pending, return_exceptions=True)
            await self.node.run(sink.abort)
            # A full drive never gets here as StoreFull: the sink drops that writer and
            # raises QuorumLost(full=True) once too few copies remain.
            if isinstance(exc, QuorumLost):
                raise _placement_error(exc) from None
            raise

    async def _receive_small(self, body: BodySource, sink_args: tuple) -> Received:
        """A body of less than one buffer: taken whole on the event loop, then its blob
        made in one hop to a pool thread (open the writers, write, verify, make durable)
        instead of one hop to open and another to seal."""
        buf = bytearray()
        async for piece in body.chunks():
            buf += piece

        def write() -> tuple[Segment, object]:
            sink = BlobSink(*sink_args)
            try:
                return sink.seal(body, buf)
            except BaseException:
                sink.abort()
                raise

        try:
            segment, verified = await self.node.run(write)
        except QuorumLost as e:
            raise _placement_error(e) from None
        if segment.deferred:
            self.node.integrity.counters.degraded_writes += 1
        return Received(segment, verified)

    def _check_index_room(self, size: int) -> None:
        """Inline bytes go into the index, on the first drive: they must leave that drive's
        reserve alone like any blob, or a full drive could not even record a delete."""
        store = self.node.stores.first
        try:
            free = store.free_bytes() if store is not None else None
        except OSError:
            return
        if free is not None and free < size + INDEX_ROW_SLACK:
            raise _storage_error(NoCapacity(f"the index drive has {free} bytes free", full=True))

    async def _receive_inline(self, body: BodySource, block_size: int | None = None) -> Received:
        """Hashing a few KiB is cheaper than a thread hop, so this stays on the event loop."""
        buf = bytearray()
        async for piece in body.chunks():
            buf += piece
            if len(buf) > self.node.config.inline_max_bytes:
                raise S3Error("IncompleteBody", "The body is longer than declared.")
        data = bytes(buf)
        view = memoryview(data)
        for lo in range(0, len(data), HASH_SLICE_BYTES):
            body.update(view[lo : lo + HASH_SLICE_BYTES])
        verified = body.finish()
        blocks = BlockChecksummer(block_size or self.node.config.block_size)
        blocks.update(data)
        segment = Segment("inline", len(data), blocks.block_size, blocks.finish(), ())
        return Received(segment, verified, data)

    async def commit(
        self,
        record: ObjectRecord,
        if_absent: bool = False,
        if_etag: str | None = None,
        owner: str | None = None,
    ) -> VersionRef | None:
        """Make ``record`` visible (in a versioned bucket: a new version, whose VersionRef
        is returned). With ``owner``, the bucket's existence and ownership are checked in
        the commit transaction itself (the only check small PUTs get)."""
        try:
            return await self.node.index.put_object(record, if_absent, if_etag, owner)
        except (NotFound, Forbidden) as e:
            await self.discard(record.segments)
            if isinstance(e, NotFound):
                raise S3Error("NoSuchBucket", BucketName=record.bucket) from None
            raise S3Error("AccessDenied") from None
        except ConditionFailed as e:
            await self.discard(record.segments)
            if e.missing:
                raise S3Error("NoSuchKey", Key=record.key) from None
            raise S3Error("PreconditionFailed", Condition="If-Match") from None
        except IndexFull as e:
            await self.discard(record.segments)
            raise _storage_error(e) from None
        except OutcomeUnknown as e:
            # Maybe committed: its blobs may be live, so nothing is discarded here (the
            # sweeper removes them if the commit never happened).
            raise _outcome_unknown(e) from None
        except BaseException:
            # The blob never became visible; let the GC reclaim it promptly.
            await self.discard(record.segments)
            raise

    async def discard(self, segments: Sequence[Segment]) -> None:
        for seg in segments:
            for store_id in seg.stores:
                store = self.node.all_stores.get(store_id)
                if store is not None:
                    try:
                        await self.node.run(store.delete, seg.blob_id)
                    except OSError as e:  # a peer down: the orphan sweep there removes it
                        log.warning("discard of blob %s on %s: %s", seg.blob_id, store_id, e)

    # -- reading -----------------------------------------------------------------------------

    async def get_owned(self, owner: str, bucket: str, key: str) -> ObjectRecord:
        """The object, after checking the bucket exists and belongs to ``owner``: one index
        read for the bucket and the key together."""
        bucket_owner, obj = await self.node.index.get_object_in(bucket, key)
        if bucket_owner is None:
            raise S3Error("NoSuchBucket", BucketName=bucket)
        if bucket_owner != owner:
            raise S3Error("AccessDenied")
        if obj is None:
            raise S3Error("NoSuchKey", Key=key)
        return obj

    async def get(self, bucket: str, key: str) -> ObjectRecord:
        obj = await self.node.index.get_object(bucket, key)
        if obj is None:
            raise S3Error("NoSuchKey", Key=key)
        return obj

    async def find(self, bucket: str, key: str) -> ObjectRecord | None:
        return await self.node.index.get_object(bucket, key)

    async def read(self, obj: ObjectRecord, start: int, end: int) -> AsyncIterator[bytes]:
        """Verified bytes [start, end) of ``obj``, segment by segment."""
        if obj.inline is not None:
            yield await self.read_inline(obj, start, end)
            return
        offset = 0
        for seg in obj.segments:
            lo, hi = max(start - offset, 0), min(end - offset, seg.size)
            if lo < hi:
                async for chunk in self._read_segment(obj, seg, lo, hi):
                    yield chunk
            offset += seg.size
            if offset >= end:
                return

    async def body(self, obj: ObjectRecord, start: int, end: int) -> bytes | AsyncIterator[bytes]:
        """What a GET sends for bytes [start, end): an inline object verified whole, as
        bytes (one response with its length, and a damaged row DataLost before any byte,
        which the front answers InternalError), anything else as the verified stream of
        :meth:`read`."""
        if obj.inline is None:
            return self.read(obj, start, end)
        return await self.read_inline(obj, start, end)

    async def read_inline(self, obj: ObjectRecord, start: int, end: int) -> bytes:
        """An inline object's bytes, every block verified before any is returned."""
        seg = obj.segments[0]
        try:
            for block in range(-(-seg.size // seg.block_size)):
                lo = block * seg.block_size
                piece = obj.inline[lo : lo + seg.block_size]
                verify_block(piece, len(piece), seg.crcs, block, "inline")
        except CorruptBlock as e:
            await self._lost(obj, start, [f"inline: {e}"])
        return obj.inline[start:end]

    async def read_decrypted(
        self, obj: ObjectRecord, cipher: BlockCipher, start: int, end: int
    ) -> AsyncIterator[bytes]:
        """Plaintext bytes [start, end) of an encrypted object: only the ciphertext blocks
        that hold them are read (verified and failed over like any read), then decrypted."""
        pbs, cbs = cipher.plain_block, cipher.cipher_block
        offset = 0
        for seg in obj.segments:
            plain = plain_size(seg.size, pbs)
            lo, hi = max(start - offset, 0), min(end - offset, plain)
            if lo < hi:
                first, last = lo // pbs, (hi - 1) // pbs + 1
                clo, chi = first * cbs, min(last * cbs, seg.size)
                if obj.inline is not None:
                    source = _once(await self.read_inline(obj, clo, chi))
                else:
                    source = self._read_segment(obj, seg, clo, chi)
                buf = bytearray()
                block, pos = first, first * pbs
                async for chunk in source:
                    buf += chunk
                    done = 0
                    while len(buf) - done >= cbs:
                        text = cipher.decrypt(block, memoryview(buf)[done : done + cbs])
                        yield text[max(lo - pos, 0) : hi - pos]
                        block, pos, done = block + 1, pos + len(text), done + cbs
                    del buf[:done]
                if buf:
                    text = cipher.decrypt(block, buf)
                    yield text[max(lo - pos, 0) : hi - pos]
            offset += plain
            if offset >= end:
                return

    async def _lost(self, obj: ObjectRecord, pos: int, failures: list[str]) -> None:
        # Not announced here: the front logs the one line for the request that met it.
        await self.node.run(self.node.integrity.object_damaged, obj, pos, failures, False)
        raise DataLost(obj.bucket, obj.key, pos, failures)

    async def _read_segment(
        self, obj: ObjectRecord, seg: Segment, start: int, end: int
    ) -> AsyncIterator[bytes]:
        """Read from the best copy (healthy drives first), failing over to another copy at
        the same offset on a bad block, a missing blob or an I/O error
        (holdfast/stores/verify.py, shared with repair and the scrubber). Each failure is
        reported as it happens: its drive's breaker counts it and a repair is queued
        (docs/integrity.md). If no copy has some block right, the object is marked and
        the response cut short."""
        ref = f"{obj.bucket}/{obj.key}"
        integrity = self.node.integrity

        def failed(copy: Copy, exc: BaseException) -> None:  # in a pool thread
            log.error("read of %s failed on %s: %s", ref, copy.store_id, exc)
            integrity.copy_failed(seg, copy.store_id, exc, ref)

        def failover() -> None:
            integrity.counters.failovers += 1

        order = self.node.read_order(seg.stores, seg.blob_id)
        reader = CopyReader(seg, copies_of(order, self.node.all_stores), failed, failover)
        try:
            async for chunk in self.node.iterate(
                lambda: reader.stream(start, end), batch=READ_BATCH_BLOCKS
            ):
                self.node.foreground.touch()
                yield chunk
        except NoGoodCopy as e:
            await self._lost(obj, e.offset, [str(f) for f in e.failures])

    # -- deleting ----------------------------------------------------------------------------

    async def delete(self, bucket: str, key: str) -> None:
        await self._index_write(self.node.index.delete_object, bucket, key)

    async def delete_many(self, bucket: str, keys: list[str]) -> list:
        """One answer per key: a VersionRef where a delete marker was written."""
        return await self._index_write(self.node.index.delete_objects, bucket, keys)

    async def set_tags(
        self, owner: str, bucket: str, key: str, tags: list[tuple[str, str]]
    ) -> None:
        """Replace the current version's tags (after the bucket and key checks)."""
        await self.get_owned(owner, bucket, key)
        try:
            changed = await self.node.index.set_object_tags(bucket, key, tags)
        except IndexFull as e:
            raise _storage_error(e) from None
        except OutcomeUnknown as e:
            raise _outcome_unknown(e) from None
        if not changed:  # deleted since the check
            raise S3Error("NoSuchKey", Key=key)

    async def set_header(
        self, bucket: str, key: str, version: str | None, name: str, value: str | None
    ) -> None:
        """Set (None: remove) one entry of a version's stored-header map (the current
        version's without ``version``; an object's ACL lives there), in a bucket already
        checked. NoSuchKey/NoSuchVersion when there is no such version (or it is a delete
        marker)."""
        seq = parse_version_id(version) if version else None

        def change(headers: dict[str, str]) -> dict[str, str]:
            headers.pop(name, None)
            if value is not None:
                headers[name] = value
            return headers

        found = await self._index_write(
            self.node.index.set_object_headers, bucket, key, seq, change, not version
        )
        if found is None:
            if version:
                raise S3Error("NoSuchVersion", Key=key, VersionId=version)
            raise S3Error("NoSuchKey", Key=key)

    async def set_version_tags(
        self, owner: str, bucket: str, key: str, version: str, tags: list[tuple[str, str]]
    ) -> ObjectRecord:
        """Replace the tags of the version named by ``version`` (a version id), current or
        not; NoSuchVersion if there is none, 405 MethodNotAllowed for a delete marker (S3)."""
        seq = parse_version_id(version)
        bucket_owner, _ = await self.node.index.get_object_in(bucket, key)
        if bucket_owner is None:
            raise S3Error("NoSuchBucket", BucketName=bucket)
        if bucket_owner != owner:
            raise S3Error("AccessDenied")

        def check(version: ObjectRecord) -> None:
            if version.delete_marker:
                raise S3Error("MethodNotAllowed", status=405)

        try:
            found = await self.node.index.set_version_tags(bucket, key, seq, tags, check)
        except IndexFull as e:
            raise _storage_error(e) from None
        except OutcomeUnknown as e:
            raise _outcome_unknown(e) from None
        if found is None:
            raise S3Error("NoSuchVersion", Key=key, VersionId=version)
        return found

    async def _index_write(self, fn, *args) -> None:
        """An index write whose drive may be full: InsufficientStorage, not a 500. The
        write reserve normally leaves room for deletes; this covers a drive that something
        else filled."""
        try:
            return await fn(*args)
        except IndexFull as e:
            raise _storage_error(e) from None
        except OutcomeUnknown as e:
            raise _outcome_unknown(e) from None


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


class EncryptingBody:
    """A body source whose chunks are the ciphertext blocks of ``inner``'s: ``inner`` digests
    the plaintext (checksums at the edge are the client's), the sink stores ciphertext, and
    ``cipher_md5`` is the MD5 of what was stored (the ETag S3 gives an SSE-C object is not the
    MD5 of its data)."""

    def __init__(self, inner: BodySource, encryptor: Encryptor) -> None:
        self.inner = inner
        self.encryptor = encryptor
        self.cipher_md5 = hashlib.md5()

    async def chunks(self) -> AsyncIterator[bytes]:
        async for piece in self.inner.chunks():
            self.inner.update(piece)
            out = self.encryptor.feed(piece)
            if out:
                yield out
        out = self.encryptor.close()
        if out:
            yield out

    def update(self, data: bytes) -> None:
        self.cipher_md5.update(data)

    def finish(self) -> object:
        return self.inner.finish()
