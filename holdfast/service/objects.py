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
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from holdfast.errors import S3Error
from holdfast.index.records import ObjectRecord, Segment
from holdfast.index.sqlite import ConditionFailed
from holdfast.placement.policy import NoCapacity, choose_stores
from holdfast.service.node import Node
from holdfast.stores.blocks import BlockChecksummer, CorruptBlock, verify_block
from holdfast.stores.local import BlobWriter, LocalStore, StoreFull, new_blob_id

log = logging.getLogger("holdfast.objects")

FLUSH_BYTES = 1024 * 1024
READ_BATCH_BLOCKS = 4


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


class _BlobSink:
    """The writers of one new blob (one per chosen store) plus its block checksums."""

    def __init__(self, stores: Sequence[LocalStore], block_size: int) -> None:
        self.stores = stores
        self.blocks = BlockChecksummer(block_size)
        self.writers: list[BlobWriter] = []
        self.size = 0
        for store in stores:
            self.writers.append(store.writer())

    def absorb(self, body: BodySource, data: bytes) -> None:
        if not data:
            return
        body.update(data)
        self.blocks.update(data)
        for w in self.writers:
            w.write(data)
        self.size += len(data)

    def seal(self, body: BodySource, data: bytes) -> tuple[Segment, object]:
        """Last bytes, then verify, then make durable: a digest mismatch stores nothing."""
        self.absorb(body, data)
        verified = body.finish()
        blob_id = new_blob_id()
        for w in self.writers:
            w.finish(blob_id)
        segment = Segment(
            blob_id=blob_id,
            size=self.size,
            block_size=self.blocks.block_size,
            crcs=self.blocks.finish(),
            stores=tuple(s.store_id for s in self.stores),
        )
        return segment, verified

    def abort(self) -> None:
        for w in self.writers:
            w.abort()


def _storage_error(exc: Exception) -> S3Error:
    return S3Error("InsufficientStorage", str(exc), status=507)


class Objects:
    def __init__(self, node: Node) -> None:
        self.node = node

    # -- writing -----------------------------------------------------------------------------

    async def receive(
        self, body: BodySource, size: int | None, allow_inline: bool = True
    ) -> Received:
        """Take in ``body`` (``size`` bytes if known): small ones are kept in memory to be
        committed inline with their metadata; others stream into a new durable blob, not yet
        referenced by the index. The digests are verified either way."""
        if allow_inline and size is not None and size <= self.node.config.inline_max_bytes:
            return await self._receive_inline(body)
        size_hint = size or 0
        try:
            stores = choose_stores(list(self.node.stores.values()), self.node.policy, size_hint)
        except NoCapacity as e:
            raise _storage_error(e) from None
        sink = await self.node.run(_BlobSink, stores, self.node.config.block_size)
        pending: asyncio.Future | None = None
        buf = bytearray()
        try:
            async for piece in body.chunks():
                buf += piece
                if len(buf) >= FLUSH_BYTES:
                    if pending is not None:
                        await pending
                    data, buf = bytes(buf), bytearray()
                    pending = asyncio.ensure_future(self.node.run(sink.absorb, body, data))
            if pending is not None:
                await pending
                pending = None
            segment, verified = await self.node.run(sink.seal, body, bytes(buf))
            return Received(segment, verified)
        except BaseException as exc:
            if pending is not None:
                await asyncio.gather(pending, return_exceptions=True)
            await self.node.run(sink.abort)
            if isinstance(exc, StoreFull):
                raise _storage_error(exc) from None
            raise

    async def _receive_inline(self, body: BodySource) -> Received:
        """Hashing a few KiB is cheaper than a thread hop, so this stays on the event loop."""
        buf = bytearray()
        async for piece in body.chunks():
            buf += piece
            if len(buf) > self.node.config.inline_max_bytes:
                raise S3Error("IncompleteBody", "The body is longer than declared.")
        data = bytes(buf)
        body.update(data)
        verified = body.finish()
        blocks = BlockChecksummer(self.node.config.block_size)
        blocks.update(data)
        segment = Segment("inline", len(data), blocks.block_size, blocks.finish(), ())
        return Received(segment, verified, data)

    async def commit(
        self, record: ObjectRecord, if_absent: bool = False, if_etag: str | None = None
    ) -> None:
        try:
            await self.node.run(self.node.index.put_object, record, if_absent, if_etag)
        except ConditionFailed as e:
            await self.discard(record.segments)
            if e.missing:
                raise S3Error("NoSuchKey", Key=record.key) from None
            raise S3Error("PreconditionFailed", Condition="If-Match") from None
        except BaseException:
            # The blob never became visible; let the GC reclaim it promptly.
            await self.discard(record.segments)
            raise

    async def discard(self, segments: Sequence[Segment]) -> None:
        for seg in segments:
            for store_id in seg.stores:
                store = self.node.stores.get(store_id)
                if store is not None:
                    await self.node.run(store.delete, seg.blob_id)

    # -- reading -----------------------------------------------------------------------------

    async def get(self, bucket: str, key: str) -> ObjectRecord:
        obj = await self.node.lookup(self.node.index.get_object, bucket, key)
        if obj is None:
            raise S3Error("NoSuchKey", Key=key)
        return obj

    async def find(self, bucket: str, key: str) -> ObjectRecord | None:
        return await self.node.lookup(self.node.index.get_object, bucket, key)

    async def read(self, obj: ObjectRecord, start: int, end: int) -> AsyncIterator[bytes]:
        """Verified bytes [start, end) of ``obj``, segment by segment."""
        if obj.inline is not None:
            yield await self._read_inline(obj, start, end)
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

    async def _read_inline(self, obj: ObjectRecord, start: int, end: int) -> bytes:
        seg = obj.segments[0]
        try:
            for block in range(-(-seg.size // seg.block_size)):
                lo = block * seg.block_size
                piece = obj.inline[lo : lo + seg.block_size]
                verify_block(piece, len(piece), seg.crcs, block, "inline")
        except CorruptBlock as e:
            await self._lost(obj, start, [f"inline: {e}"])
        return obj.inline[start:end]

    async def _lost(self, obj: ObjectRecord, pos: int, failures: list[str]) -> None:
        await self.node.run(
            self.node.index.mark_object_state, obj.bucket, obj.key, obj.etag, "corrupt"
        )
        log.critical("no good copy of %s/%s at offset %d: %s", obj.bucket, obj.key, pos, failures)
        raise DataLost(f"{obj.bucket}/{obj.key}: no good copy ({'; '.join(failures)})")

    async def _read_segment(
        self, obj: ObjectRecord, seg: Segment, start: int, end: int
    ) -> AsyncIterator[bytes]:
        """Read from the first store that works; on a bad block or an I/O error carry on
        from the next copy at the same offset, so the client still gets every byte right."""
        pos = start
        failures: list[str] = []
        for store_id in seg.stores:
            store = self.node.stores.get(store_id)
            if store is None:
                failures.append(f"{store_id}: unknown store")
                continue
            try:
                async for chunk in self.node.iterate(
                    lambda s=store, p=pos: s.read_blocks(
                        seg.blob_id, seg.crcs, seg.block_size, seg.size, p, end
                    ),
                    batch=READ_BATCH_BLOCKS,
                ):
                    pos += len(chunk)
                    yield chunk
                return
            except (CorruptBlock, OSError) as e:
                log.error("read of %s/%s failed on %s: %s", obj.bucket, obj.key, store_id, e)
                failures.append(f"{store_id}: {e}")
        await self.node.run(
            self.node.index.mark_object_state, obj.bucket, obj.key, obj.etag, "corrupt"
        )
        log.critical("no good copy of %s/%s at offset %d: %s", obj.bucket, obj.key, pos, failures)
        raise DataLost(f"{obj.bucket}/{obj.key}: no good copy ({'; '.join(failures)})")

    # -- deleting ----------------------------------------------------------------------------

    async def delete(self, bucket: str, key: str) -> None:
        await self.node.run(self.node.index.delete_object, bucket, key)

    async def delete_many(self, bucket: str, keys: list[str]) -> None:
        await self.node.run(self.node.index.delete_objects, bucket, keys)
