"""Writing one new blob to several drives at once, with mid-stream failover.

Each chosen drive gets its own temporary file. If a drive fails while the body streams in
(an I/O error, the drive pulled, the drive full), its writer is dropped and the others carry
on: the write still succeeds as long as the policy's write quorum (``min_copies``) of copies
becomes durable, and every copy that could not be made is recorded in ``Segment.deferred``,
so the commit that makes the blob live also queues its repair. Below the quorum the write
fails and nothing is left behind but temporary files being removed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from holdfast.index.records import Segment
from holdfast.stores.base import BlobWriter, Store, StoreFull, new_blob_id
from holdfast.stores.blocks import BlockChecksummer, CorruptBlock
from holdfast.stores.health import Drives

log = logging.getLogger("holdfast.objects")


class Digesting(Protocol):
    def update(self, data: bytes | bytearray) -> None: ...

    def finish(self) -> object: ...


class QuorumLost(Exception):
    """Fewer than the write quorum of copies can still be made. ``full`` when it is for lack
    of space (InsufficientStorage), not failing drives (ServiceUnavailable)."""

    def __init__(self, message: str, full: bool) -> None:
        super().__init__(message)
        self.full = full


class BlobSink:
    """The writers of one new blob (one per target drive) plus its block checksums."""

    def __init__(
        self,
        stores: Sequence[Store],
        block_size: int,
        drives: Drives | None = None,
        min_copies: int = 1,
        deferred: tuple[str, ...] = (),
    ) -> None:
        self.blocks = BlockChecksummer(block_size)
        self.drives = drives
        self.min_copies = min_copies
        self.deferred = list(deferred)
        self.writers: list[BlobWriter] = []
        self.size = 0
        self._full_failures = 0
        for store in stores:
            try:
                self.writers.append(store.writer(block_size))
            except OSError as e:
                self._lost_store(store, e)
        self._check_quorum()

    def absorb(self, body: Digesting, data: bytes | bytearray) -> None:
        if not data:
            return
        body.update(data)
        self.blocks.update(data)
        for w in list(self.writers):
            try:
                w.write(data)
            except (OSError, StoreFull) as e:
                self._drop(w, e)
        self._check_quorum()
        self.size += len(data)

    def seal(self, body: Digesting, data: bytes | bytearray) -> tuple[Segment, object]:
        """Last bytes, then verify, then make durable: a digest mismatch stores nothing."""
        self.absorb(body, data)
        verified = body.finish()
        blob_id = new_blob_id()
        crcs = self.blocks.finish()
        for w in list(self.writers):
            try:
                w.finish(blob_id, crcs)
            except (OSError, StoreFull, CorruptBlock) as e:
                # A copy that may exist but is not known durable: repair verifies it later.
                self._drop(w, e)
        self._check_quorum()
        written = tuple(w.store.store_id for w in self.writers)
        segment = Segment(
            blob_id=blob_id,
            size=self.size,
            block_size=self.blocks.block_size,
            crcs=crcs,
            # Copies owed come last, so readers try the copies that exist first.
            stores=written + tuple(self.deferred),
            deferred=tuple(self.deferred),
        )
        return segment, verified

    def abort(self) -> None:
        for w in self.writers:
            w.abort()

    # -- failover ----------------------------------------------------------------------------

    def _drop(self, writer: BlobWriter, exc: BaseException) -> None:
        self.writers.remove(writer)
        writer.abort_quietly()
        self._lost_store(writer.store, exc)

    def _lost_store(self, store: Store, exc: BaseException) -> None:
        log.error("write to drive %s failed, carrying on without it: %s", store.store_id, exc)
        if isinstance(exc, StoreFull):
            self._full_failures += 1
        elif self.drives is not None:
            self.drives.copy_failed(store.store_id, None, exc)
        self.deferred.append(store.store_id)

    def _check_quorum(self) -> None:
        if len(self.writers) < self.min_copies:
            self.abort()
            raise QuorumLost(
                f"only {len(self.writers)} of the {self.min_copies} copies required can be written",
                full=self._full_failures > 0,
            )
