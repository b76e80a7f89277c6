"""Writing one new blob to several drives at once, with mid-stream failover.

Each chosen drive gets its own temporary file. The copies are written concurrently: each
piece of the body goes to every writer at once, one thread per further writer, and the
copies are made durable (fsync, or a remote node's finish) at once too, so a PUT waits for
its slowest copy, not for the sum of them. If a drive fails while the body streams in
(an I/O error, the drive pulled, the drive full), its writer is dropped and the others carry
on: the write still succeeds as long as the policy's write quorum (``min_copies``) of copies
becomes durable, and every copy that could not be made is recorded in ``Segment.deferred``,
so the commit that makes the blob live also queues its repair. Below the quorum the write
fails and nothing is left behind but temporary files being removed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from holdfast.index.records import Segment
from holdfast.stores.base import BlobWriter, Store, StoreFull, new_blob_id
from holdfast.stores.blocks import BlockChecksummer, CorruptBlock
from holdfast.stores.health import Drives

log = logging.getLogger("holdfast.objects")

# The threads that write the second and further copies of a blob while the caller's thread
# writes the first. Shared by every PUT of the process; a writer blocks on its drive or its
# peer (I/O, not CPU), so it is sized for many concurrent uploads times their copies.
FANOUT = ThreadPoolExecutor(max_workers=32, thread_name_prefix="holdfast-fanout")


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
        self._each(lambda w: w.write(data), (OSError, StoreFull))
        self._check_quorum()
        self.size += len(data)

    def seal(self, body: Digesting, data: bytes | bytearray) -> tuple[Segment, object]:
        """Last bytes, then verify, then make durable: a digest mismatch stores nothing.
        The last bytes are digested first and handed to each writer with its finish, in one
        step per writer (one hand-off to the fan-out threads, not two: a small body is
        nothing but its last bytes)."""
        if data:
            body.update(data)
            self.blocks.update(data)
        verified = body.finish()
        blob_id = new_blob_id()
        crcs = self.blocks.finish()

        def last(w: BlobWriter) -> None:
            if data:
                w.write(data)
            w.finish(blob_id, crcs)

        # A copy whose write or finish failed may exist but is not known durable: dropped,
        # and repair makes (or verifies) it later.
        self._each(last, (OSError, StoreFull, CorruptBlock))
        self._check_quorum()
        self.size += len(data)
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

    def _each(self, step: Callable[[BlobWriter], None], failures: tuple[type, ...]) -> None:
        """``step`` on every writer at once (the first in this thread, the others in
        FANOUT); waits for all, then drops each writer that failed with one of
        ``failures``. Anything else (a bug) is raised once all have stopped, so no thread
        still uses a writer when the caller aborts them."""
        writers = list(self.writers)
        if len(writers) == 1:
            outcomes: list[BaseException | None] = [_attempt(step, writers[0])]
        else:
            futures = [FANOUT.submit(_attempt, step, w) for w in writers[1:]]
            first = _attempt(step, writers[0])
            outcomes = [first] + [f.result() for f in futures]
        unexpected = None
        for w, exc in zip(writers, outcomes, strict=True):
            if exc is None:
                continue
            if isinstance(exc, failures):
                self._drop(w, exc)
            elif unexpected is None:
                unexpected = exc
        if unexpected is not None:
            raise unexpected

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


def _attempt(step: Callable[[BlobWriter], None], writer: BlobWriter) -> BaseException | None:
    try:
        step(writer)
    except BaseException as e:  # handed back to the sink, which decides (see _each)
        return e
    return None
