"""The Store interface: the only way anything above ``holdfast/stores/`` reaches blob bytes.

A store is anything that holds blobs: a drive on this node (:class:`~holdfast.stores.local.
LocalStore`, kind ``"local"``), and later a drive on another node (``"node"``, over mutual
TLS) and an external S3-compatible service (``"s3"``). Repair, the scrubber, the garbage
collector, fsck, the read and write paths and ops see only this interface: no file path,
no ``open()`` of a blob, no ``os.path`` above this package (``tests/unit/test_store_seam.py``
fails the build otherwise). Every kind passes ``tests/contract/test_store_contract.py``.

**Blocking methods, called from thread pools — deliberately not ``async``.** Today every
store call already runs in a thread: the node's pool (``Node.run``) for requests, the
repair and scrub workers' own pools for background work, and ``Node.iterate`` drives a
read ``READ_BATCH_BLOCKS`` blocks per thread hop. That pool is what docs/performance.md
tuned for throughput: a local read or write is a ``pread``/``write``/``fsync`` that
releases the GIL, and the CRC32C of each block is computed in the same thread without
another hop. An async interface would put an extra await and task per block on the event
loop for the local kind (the common one) and buy nothing: the remote kinds can use a
blocking HTTPS client (a pooled ``urllib3``/``http.client`` connection with mutual TLS) in
the same pool threads, so one interface serves all kinds, and a slow remote store ties up
pool threads, which the per-store concurrency caps of the cluster work bound anyway.

**What a store promises** (the contract suite checks each):

* ``writer()``: bytes stream in; the writer computes its own per-block CRC32C of what it
  received and ``finish(blob_id, crcs)`` refuses (``CorruptBlock``, nothing durable, no
  trace but a temporary file being removed) unless they equal the ``crcs`` the caller
  computed. Only after ``finish`` returns is the copy durable (for a local drive: data
  fsync'd, renamed into place, directory fsync'd, in that order: DESIGN.md invariant 1), and
  only then may the index refer to it.
* ``read_blocks()``: yields only bytes of blocks whose CRC32C was checked, before any byte
  of a block is handed out; a bad block raises ``CorruptBlock``, a missing copy
  ``FileNotFoundError``, a store that is gone ``StoreMissing`` (an ``OSError``). Picking
  another copy is not the store's business: :mod:`holdfast.stores.verify` does that, once,
  for every reader.
* Blob ids are made by :func:`new_blob_id` and never derived from object keys, so no key
  can name a location in any store; they start with the hour the blob was finished, so
  listing by hour lets the sweeper visit only hours it has not swept.
"""

from __future__ import annotations

import errno
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar, Protocol

from holdfast.merkle import Tree, leaf_of
from holdfast.stores.blocks import CorruptBlock

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)  # an OSError that means "no room", not "broken"
BLOB_ID_CHARS = frozenset("0123456789abcdef")
BLOB_ID_LENGTH = 32


class Capability(StrEnum):
    """What a kind of store can do; placement, repair and the sweeper ask before relying
    on it (an S3 back-end that cannot report free space gets a configured quota)."""

    RANGED_READS = "ranged-reads"  # read_blocks can start at any block
    LISTING = "listing"  # hours() / list_blobs(): the sweeper, scrubber, anti-entropy
    FREE_SPACE = "free-space"  # space() reports the medium's real numbers
    QUARANTINE = "quarantine"  # bad copies are kept aside, and repair can read them
    IDENTITY = "identity"  # a marker proves the medium is the one the index knows
    TEMPORARY_FILES = "temporary-files"  # interrupted writes leave files to sweep


class StoreFull(Exception):
    """The store cannot take the bytes (ENOSPC, a quota, or the configured reserve)."""


class StoreMissing(OSError):
    """The store is not the one expected, or not there at all (a drive pulled, a blank
    disk where it was, a back-end that answers for something else)."""


class BlobLayout(Protocol):
    """What a store needs to verify a blob: the index's Segment has exactly these."""

    @property
    def blob_id(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def block_size(self) -> int: ...

    @property
    def crcs(self) -> bytes: ...


@dataclass(frozen=True)
class BlobInfo:
    blob_id: str
    size: int
    mtime: float  # when the copy was finished (epoch seconds)


@dataclass(frozen=True)
class BlobPage:
    """One page of a listing; ``cursor`` continues it (None: the listing is complete)."""

    blobs: list[BlobInfo] = field(default_factory=list)
    cursor: str | None = None


def new_blob_id(now: float | None = None) -> str:
    """A fresh blob id: the finishing hour (8 hex digits), then 96 random bits."""
    hour = int((time.time() if now is None else now) // 3600)
    return f"{hour:08x}{secrets.token_hex(12)}"


def is_blob_id(text: str) -> bool:
    return len(text) == BLOB_ID_LENGTH and all(c in BLOB_ID_CHARS for c in text)


def blob_hour(blob_id: str) -> str:
    return blob_id[:8]


def hour_start(hour: str) -> float:
    """Epoch seconds at which the hour named by a blob id prefix began."""
    return int(hour, 16) * 3600.0


def qualify_store_id(node: str, drive: str) -> str:
    """A store id unique in the cluster: the node's name, then the drive's."""
    return f"{node}/{drive}"


class BlobWriter(ABC):
    """Receives one blob's bytes in order; nothing is durable before :meth:`finish`."""

    store: Store
    size: int

    @abstractmethod
    def write(self, data: bytes | memoryview) -> None:
        """Append bytes. Raises StoreFull, or OSError for a failing store."""

    @abstractmethod
    def finish(self, blob_id: str, crcs: bytes) -> None:
        """Check the received bytes against ``crcs`` (one CRC32C per block), then make the
        copy durable under ``blob_id``. CorruptBlock on a mismatch, and nothing is kept."""

    @abstractmethod
    def finish_replacing(self, blob_id: str, crcs: bytes) -> str | None:
        """:meth:`finish` for a repair: a copy already under ``blob_id`` (a bad one) is put
        in quarantine first, never deleted. Returns its quarantine name, if there was one."""

    @abstractmethod
    def abort(self) -> None:
        """Drop what was received."""

    def abort_quietly(self) -> None:
        """Abort on a store that may be failing or gone: the error is the caller's news
        already, and what is left behind is swept later."""
        try:
            self.abort()
        except OSError:
            pass


class BlobReader(ABC):
    """One copy of a blob, opened for reading single blocks (repair reads block ``n``
    from whichever copy has it right)."""

    @abstractmethod
    def read_block(self, block: int) -> bytes:
        """Block ``block``, verified. Raises CorruptBlock or OSError."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Store(ABC):
    """One store. All methods block (see the module docstring); construction touches
    nothing on the medium."""

    kind: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]]

    store_id: str  # unique in the cluster: "<node>/<drive>"
    reserve_percent: float = 0.0  # kept free by foreground writes
    repair_reserve_percent: float = 0.0  # kept free by repair

    def can(self, capability: Capability) -> bool:
        return capability in self.capabilities

    @property
    def name(self) -> str:
        """The store's name on its node (``d0``)."""
        return self.store_id.rpartition("/")[2]

    # -- identity and health ----------------------------------------------------------------

    @abstractmethod
    def location(self) -> str:
        """Where the store is, for people (a directory, a URL): logs and the status page."""

    @abstractmethod
    def identity(self) -> str | None:
        """The uuid the medium carries, or None when it carries none. StoreMissing when
        what is there cannot be read as an identity at all."""

    @abstractmethod
    def initialize(self, uuid: str) -> None:
        """Adopt a blank medium as this store (keeps an identity it already has)."""

    @abstractmethod
    def probe(self, uuid: str) -> None:
        """Prove the store is ``uuid`` and takes a durable write; StoreMissing or OSError
        (EROFS: read-only) otherwise. A full store passes: full is not unhealthy."""

    def forget_cached_state(self) -> None:
        """The store came back (re-inserted, reconnected): drop anything cached about it."""
        return None

    def take_slow(self) -> list[str]:
        """Requests that succeeded but too slowly since the last call (one reason each), for
        the health breaker: a store that answers, but at a crawl, holds every request that
        waits for it, so slowness counts like failure. Local drives report none."""
        return []

    # -- capacity ---------------------------------------------------------------------------

    @abstractmethod
    def space(self, fresh: bool = False) -> tuple[int, int]:
        """(available, total) bytes; may be cached briefly unless ``fresh``."""

    def forget_space(self) -> None:
        """A write just found the store full: the next space() asks again."""
        return None

    def free_bytes(self) -> int:
        """Bytes a foreground write may still use (the write reserve held back)."""
        avail, total = self.space()
        return avail - int(total * self.reserve_percent / 100)

    def repair_room(self) -> int:
        """Bytes repair may still use: it stops short of the larger repair reserve."""
        avail, total = self.space(fresh=True)
        return avail - int(total * self.repair_reserve_percent / 100)

    # -- blobs ------------------------------------------------------------------------------

    @abstractmethod
    def writer(self, block_size: int) -> BlobWriter:
        """Start receiving a new blob (its id is given when it is finished)."""

    @abstractmethod
    def read_blocks(self, blob: BlobLayout, start: int, end: int) -> Iterator[bytes]:
        """The bytes [start, end) of the blob, each block verified before any of its bytes
        is yielded; only the blocks the range touches are read."""

    @abstractmethod
    def open_blob(self, blob: BlobLayout, copy: str | None = None) -> BlobReader:
        """Open the blob's copy (or, with ``copy``, one of its quarantined copies) for
        single-block reads. FileNotFoundError when there is none."""

    def verify(self, blob: BlobLayout) -> Iterator[int]:
        """Read and verify the whole copy, yielding the size of each verified block (so a
        caller can pace itself). CorruptBlock (a copy of the wrong length too) or OSError
        (FileNotFoundError for a missing copy)."""
        info = self.stat(blob.blob_id)
        if info is None:
            raise FileNotFoundError(2, f"no copy of blob {blob.blob_id} on {self.store_id}")
        if info.size != blob.size:
            raise CorruptBlock(blob.blob_id, -1, f"length {info.size}, expected {blob.size}")
        for data in self.read_blocks(blob, 0, blob.size):
            yield len(data)

    @abstractmethod
    def stat(self, blob_id: str) -> BlobInfo | None:
        """Size and finishing time of the copy, None if there is none."""

    @abstractmethod
    def delete(self, blob_id: str) -> None:
        """Remove the copy; no error if there is none."""

    # -- listing (Capability.LISTING) -------------------------------------------------------

    @abstractmethod
    def hours(self) -> list[str]:
        """The finishing hours (blob id prefixes) that hold blobs, oldest first."""

    @abstractmethod
    def list_blobs(self, hour: str, cursor: str | None = None, limit: int = 1000) -> BlobPage:
        """A page of the blobs finished in ``hour``; pass the page's cursor for the next."""

    # -- anti-entropy digests (holdfast/merkle.py; needs Capability.LISTING) ----------------

    def tree_digests(self, hour: str | None = None) -> dict[str, str]:
        """Digests of what the drive holds: one per finishing hour, or, given ``hour``, one
        per leaf of that hour. Built from the listing (names and lengths, no data read); a
        ``node`` store has its node build them, so only the digests cross the network."""
        tree = Tree()
        for h in [hour] if hour is not None else self.hours():
            for blob_id, size in self._listing(h):
                tree.add(blob_id, size)
        return tree.subs(hour) if hour is not None else tree.hours()

    def leaf_blobs(self, hour: str, leaf: str) -> dict[str, int]:
        """The blobs of one leaf of one hour, with their lengths."""
        return {b: n for b, n in self._listing(hour) if leaf_of(b) == leaf}

    def _listing(self, hour: str) -> Iterator[tuple[str, int]]:
        cursor: str | None = None
        while True:
            page = self.list_blobs(hour, cursor, 10_000)
            yield from ((b.blob_id, b.size) for b in page.blobs if is_blob_id(b.blob_id))
            cursor = page.cursor
            if cursor is None:
                return

    # -- quarantine (Capability.QUARANTINE) --------------------------------------------------

    def quarantine(self, blob_id: str) -> str | None:
        """Move a bad copy aside (never delete it: a block of it may be the only good one).
        Returns its quarantine name, None if there was no copy."""
        return None

    def quarantined(self, blob_id: str | None = None) -> list[str]:
        """Names of quarantined copies (of one blob, or all of them)."""
        return []

    # -- leftovers of interrupted writes (Capability.TEMPORARY_FILES) -------------------------

    def stale_temporary(self, older_than: float) -> int:
        """How many unfinished writes have been left untouched for ``older_than`` seconds."""
        return 0

    def remove_stale_temporary(self, older_than: float) -> int:
        """Remove those; returns how many went."""
        return 0


__all__ = [
    "BlobInfo",
    "BlobLayout",
    "BlobPage",
    "BlobReader",
    "BlobWriter",
    "Capability",
    "CorruptBlock",
    "Store",
    "StoreFull",
    "StoreMissing",
    "blob_hour",
    "hour_start",
    "is_blob_id",
    "new_blob_id",
    "qualify_store_id",
]
