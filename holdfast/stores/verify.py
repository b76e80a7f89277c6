""" "A good block from any copy", written once: GET, repair and the scrubber all read
through here (DESIGN.md invariant 2: never serve a corrupted byte).

Each store verifies every block it returns against the blob's CRC32C before handing out a
byte of it (the Store contract, holdfast/stores/base.py; for a remote store that is on
receipt, end to end). What is decided here is *which copy* to read: the copies are tried in
the caller's preferred order (healthy stores first, see ``Drives.read_order``); on a bad
block, a missing copy or an I/O error the read carries on from the next copy at the same
offset, and a copy that failed is tried again once the read has moved past the offset where
it failed, so copies damaged in different places still make a whole, correct blob. Every
failure is recorded (and handed to ``on_failure`` as it happens), so the caller can count
it against the store, queue a repair, or mark the object when no copy had some block.

Two ways to read, one rule for choosing copies:

* :meth:`CopyReader.stream`: sequential bytes of a range, staying on one copy while it is
  good (the store's own streaming read, with its batching and read-ahead): GET;
* :meth:`CopyReader.block`: one block at a time, from the first copy (quarantined copies
  included) that has it right: repair rebuilding a copy.

:func:`verify_copy` / :func:`copy_state` read one whole copy, paced: the scrubber, fsck and
repair's first look at a target.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from holdfast.stores.base import BlobLayout, BlobReader, Store
from holdfast.stores.blocks import CorruptBlock

log = logging.getLogger("holdfast.verify")

NEVER = float("inf")


@dataclass(frozen=True)
class Copy:
    """One copy of a blob: on ``store`` (None when this node does not know ``store_id``),
    or, with ``quarantined``, a copy that store set aside."""

    store_id: str
    store: Store | None
    quarantined: str | None = None

    def __str__(self) -> str:
        return self.store_id if self.quarantined is None else f"{self.store_id} (quarantined)"


@dataclass
class CopyFailure:
    copy: Copy
    offset: int  # byte offset in the blob where it failed
    error: BaseException

    def __str__(self) -> str:
        return f"{self.copy}: {self.error}"


class NoGoodCopy(Exception):
    """No copy could deliver a verified version of the bytes at ``offset``."""

    def __init__(self, blob_id: str, offset: int, failures: list[CopyFailure]) -> None:
        detail = "; ".join(str(f) for f in failures[-8:]) or "no copies"
        super().__init__(f"blob {blob_id}: no good copy at offset {offset} ({detail})")
        self.blob_id = blob_id
        self.offset = offset
        self.failures = failures


class UnknownStore(LookupError):
    def __init__(self, store_id: str) -> None:
        super().__init__(f"unknown store {store_id}")


def copies_of(store_ids: Sequence[str], stores: Mapping[str, Store]) -> list[Copy]:
    """The copies named by ``store_ids``, in that order (the preferred one first)."""
    return [Copy(sid, stores.get(sid)) for sid in store_ids]


def with_quarantined(blob_id: str, copies: list[Copy], stores: Mapping[str, Store]) -> list[Copy]:
    """``copies`` followed by every quarantined copy of ``blob_id`` on ``stores``."""
    out = list(copies)
    for sid, store in stores.items():
        try:
            names = store.quarantined(blob_id)
        except OSError:
            continue
        out.extend(Copy(sid, store, name) for name in names)
    return out


@dataclass
class CopyReader:
    """Reads one blob from its copies (see the module docstring). Blocking; one reader per
    read, used from one thread at a time."""

    blob: BlobLayout
    copies: Sequence[Copy]
    # Called in the reading thread for each failure as it happens (not for unknown stores).
    on_failure: Callable[[Copy, BaseException], None] | None = None
    # Called each time the read moves to another copy after a failure.
    on_failover: Callable[[], None] | None = None
    failures: list[CopyFailure] = field(default_factory=list)
    _failed_at: dict[Copy, float] = field(default_factory=dict)
    _open: dict[Copy, BlobReader] = field(default_factory=dict)

    # -- the rule, shared by both ways of reading ---------------------------------------------

    def _candidates(self, pos: int) -> Iterator[Copy]:
        """Copies worth trying at ``pos``, best first: those that have not failed at or
        beyond it."""
        for copy in self.copies:
            if self._failed_at.get(copy, -1) < pos:
                yield copy

    def _failed(self, copy: Copy, pos: int, exc: BaseException, retry: bool = True) -> None:
        self._failed_at[copy] = pos if retry else NEVER
        self.failures.append(CopyFailure(copy, pos, exc))
        if self.on_failure is not None and copy.store is not None:
            self.on_failure(copy, exc)

    def _lost(self, pos: int) -> NoGoodCopy:
        return NoGoodCopy(self.blob.blob_id, pos, self.failures)

    # -- streaming (GET) ----------------------------------------------------------------------

    def stream(self, start: int, end: int) -> Iterator[bytes]:
        """Verified bytes [start, end), failing over block by block as needed. Raises
        NoGoodCopy when no copy has some block right (the bytes before it were yielded)."""
        pos = start
        switched = False
        while pos < end:
            copy = next(self._candidates(pos), None)
            if copy is None:
                raise self._lost(pos)
            if copy.store is None:
                self._failed(copy, pos, UnknownStore(copy.store_id), retry=False)
                continue
            if switched and self.on_failover is not None:
                self.on_failover()
            try:
                for chunk in copy.store.read_blocks(self.blob, pos, end):
                    pos += len(chunk)
                    yield chunk
                return
            except (CorruptBlock, OSError) as e:
                self._failed(copy, pos, e)
                switched = True

    # -- block by block (repair) --------------------------------------------------------------

    def block(self, block: int) -> bytes:
        """Block ``block``, verified, from the first copy that has it right. A copy that
        cannot even be opened is not tried again by this reader."""
        pos = block * self.blob.block_size
        for copy in list(self._candidates(pos)):
            if copy.store is None:
                self._failed(copy, pos, UnknownStore(copy.store_id), retry=False)
                continue
            reader = self._open.get(copy)
            if reader is None:
                try:
                    reader = copy.store.open_blob(self.blob, copy.quarantined)
                except OSError as e:
                    self._failed(copy, pos, e, retry=False)
                    continue
                self._open[copy] = reader
            try:
                return reader.read_block(block)
            except (CorruptBlock, OSError) as e:
                self._failed(copy, pos, e)
        raise self._lost(pos)

    def close(self) -> None:
        for reader in self._open.values():
            try:
                reader.close()
            except OSError:
                pass
        self._open.clear()

    def __enter__(self) -> CopyReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- one whole copy (scrub, fsck, repair's first look) -----------------------------------------


def verify_copy(store: Store, blob: BlobLayout, pace: Callable[[int], None] | None = None) -> int:
    """Read and verify every block of ``store``'s copy, calling ``pace`` with each block's
    size; returns the bytes verified. Raises CorruptBlock (a copy of the wrong length too)
    or OSError (FileNotFoundError for a missing copy)."""
    done = 0
    for nbytes in store.verify(blob):
        if pace is not None:
            pace(nbytes)
        done += nbytes
    return done


def copy_state(store: Store, blob: BlobLayout, pace: Callable[[int], None] | None = None) -> str:
    """ "ok", "missing" or "bad" for ``store``'s copy; other I/O errors propagate (they say
    something about the store, not the copy)."""
    try:
        verify_copy(store, blob, pace)
    except FileNotFoundError:
        return "missing"
    except CorruptBlock:
        return "bad"
    return "ok"


__all__ = [
    "Copy",
    "CopyFailure",
    "CopyReader",
    "NoGoodCopy",
    "UnknownStore",
    "copies_of",
    "copy_state",
    "verify_copy",
    "with_quarantined",
]
