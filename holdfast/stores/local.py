"""A blob store on a local directory (one drive).

Layout under the drive's root::

    .holdfast-drive                   identity marker: the drive's uuid, as the index knows it
    tmp/<random>                      bytes being received; never referenced by the index
    blobs/<hour>/<xx>/<blob id>       finished blobs, grouped by the hour they were finished
    quarantine/<blob id>.<time>       copies that failed verification: kept aside, never served

The marker is how a pulled drive is told apart from an empty one: once a drive is unmounted
its mount point is an empty directory on another filesystem, and writing ``tmp/`` there would
silently put blobs on the wrong disk. Nothing here ever creates directories on a drive whose
marker is missing; :meth:`LocalStore.initialize` is the only place that writes a marker.

Blob ids (holdfast/stores/base.py) are never derived from object keys, so no key can name a
path. Grouping by finishing hour lets the orphan sweeper look only at hours it has not yet
swept, instead of scanning the whole drive at start-up.

This is the Store interface's "local" kind; all methods block, callers run them in threads
(base.py says why). Paths exist only in this module.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

from holdfast.stores.base import (
    BLOB_ID_CHARS,
    FULL_ERRNOS,
    BlobInfo,
    BlobLayout,
    BlobPage,
    BlobReader,
    BlobWriter,
    Capability,
    Store,
    StoreFull,
    StoreMissing,
    blob_hour,
    is_blob_id,
    new_blob_id,
    qualify_store_id,
)
from holdfast.stores.blocks import BlockChecksummer, CorruptBlock, first_mismatch, verify_block

MARKER = ".holdfast-drive"


class DriveMissing(StoreMissing):
    """The drive's identity marker is absent or names another drive: it was pulled, or a
    different (or blank) disk is mounted where it used to be."""


def _full(e: OSError) -> bool:
    return e.errno in FULL_ERRNOS


class LocalBlobWriter(BlobWriter):
    """Receives a blob's bytes in order into a temporary file, checksumming each block as
    it arrives (the Store contract: :meth:`finish` keeps nothing that does not match)."""

    def __init__(self, store: LocalStore, block_size: int) -> None:
        self.store = store
        self.tmp_path = store.root / "tmp" / secrets.token_hex(16)
        self._fd = os.open(self.tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._blocks = BlockChecksummer(block_size)
        self.size = 0
        self._closed = False

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        self._blocks.update(view)
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError as e:
            if _full(e):
                self.store.forget_space()
                raise StoreFull(str(e)) from e
            raise
        self.size += len(data)

    def _check(self, blob_id: str, crcs: bytes) -> None:
        received = self._blocks.finish()
        if received != crcs:
            self.abort_quietly()
            bad = first_mismatch(received, crcs)
            raise CorruptBlock(blob_id, bad, "received bytes do not match their checksum")

    def _sync_and_close(self) -> None:
        try:
            os.fsync(self._fd)
        except OSError as e:
            if _full(e):
                self.store.forget_space()
                raise StoreFull(str(e)) from e
            raise
        os.close(self._fd)
        self._closed = True

    def finish(self, blob_id: str, crcs: bytes) -> None:
        """Check, fsync the data, rename into place, fsync the directory: only after this
        may the index refer to the blob (DESIGN.md invariant 1; the order is tested by
        tests/e2e/test_durability_order.py)."""
        self._check(blob_id, crcs)
        self._sync_and_close()
        final = self.store.blob_path(blob_id)
        self.store.ensure_dir(final.parent)
        os.rename(self.tmp_path, final)
        self.store.fsync_dir(final.parent)

    def finish_replacing(self, blob_id: str, crcs: bytes) -> str | None:
        """Like :meth:`finish`, for a repair: a copy already at the blob's path (a bad one)
        is moved to quarantine first, never deleted. Returns its quarantine name."""
        self._check(blob_id, crcs)
        self._sync_and_close()
        final = self.store.blob_path(blob_id)
        self.store.ensure_dir(final.parent)
        moved = self.store.quarantine(blob_id)
        os.rename(self.tmp_path, final)
        self.store.fsync_dir(final.parent)
        return moved

    def abort(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._fd)
        try:
            os.unlink(self.tmp_path)
        except FileNotFoundError:
            pass


class LocalBlobReader(BlobReader):
    def __init__(self, path: Path, blob: BlobLayout) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self._blob = blob

    def read_block(self, block: int) -> bytes:
        b = self._blob
        length = min(b.block_size, b.size - block * b.block_size)
        data = os.pread(self._fd, length, block * b.block_size)
        verify_block(data, length, b.crcs, block, b.blob_id)
        return data

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


SPACE_TTL = 0.5


class LocalStore(Store):
    """One drive. Foreground writes keep ``reserve_percent`` of it free, repair the (normally
    larger) ``repair_reserve_percent``, so background work can never fill a drive (EBS,
    2011), and the index, which shares the first drive, always has room to record deletes.
    Construction touches nothing on disk."""

    kind = "local"
    capabilities = frozenset(Capability)

    def __init__(
        self,
        store_id: str,
        root: Path,
        reserve_percent: float = 0.0,
        repair_reserve_percent: float = 0.0,
    ) -> None:
        self.store_id = store_id
        self.root = root
        self.reserve_percent = reserve_percent
        self.repair_reserve_percent = repair_reserve_percent
        self._dirs: set[Path] = set()
        self._space_cache: tuple[float, tuple[int, int]] | None = None

    def location(self) -> str:
        return str(self.root)

    # -- identity ----------------------------------------------------------------------------

    def identity(self) -> str | None:
        """The uuid in the drive's marker, or None when there is no marker."""
        try:
            return json.loads((self.root / MARKER).read_text())["uuid"]
        except FileNotFoundError:
            return None
        except (ValueError, KeyError) as e:
            raise DriveMissing(errno.EIO, f"{self.root}: unreadable drive marker: {e}") from e

    def initialize(self, uuid: str) -> None:
        """Adopt this directory as a drive: create its layout and write its marker (once)."""
        for sub in ("tmp", "blobs", "quarantine"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        marker = self.root / MARKER
        if not marker.exists():
            tmp = self.root / "tmp" / f"marker-{secrets.token_hex(4)}"
            payload = {"uuid": uuid, "store_id": self.store_id, "created": time.time()}
            tmp.write_text(json.dumps(payload))
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.rename(tmp, marker)
        self.fsync_dir(self.root)
        self.fsync_dir(self.root.parent)

    def probe(self, uuid: str) -> None:
        """Prove the drive is the expected one and takes a durable write. Raises
        DriveMissing, or OSError (EROFS for a read-only drive). A full drive passes: being
        full is a capacity question, not a health one."""
        found = self.identity()
        if found != uuid:
            what = "no marker" if found is None else f"marker of drive {found}"
            raise DriveMissing(errno.ENODEV, f"{self.root}: {what}, expected drive {uuid}")
        path = self.root / "tmp" / f".probe-{os.getpid()}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, b"probe")
                os.fsync(fd)
            finally:
                os.close(fd)
            os.unlink(path)
        except OSError as e:
            if not _full(e):
                raise

    def forget_cached_state(self) -> None:
        self.forget_dirs()

    # -- layout (this module only: nothing above holdfast/stores/ sees a path) ----------------

    def blob_path(self, blob_id: str) -> Path:
        if not is_blob_id(blob_id):
            raise ValueError("not a blob id")
        return self.root / "blobs" / blob_hour(blob_id) / blob_id[30:] / blob_id

    def ensure_dir(self, path: Path) -> None:
        """Create the missing levels below ``blobs/`` or ``quarantine/`` (never those two nor
        anything above them: if they are gone the drive is gone, see the module docstring),
        making each new directory entry durable."""
        if path in self._dirs:
            return
        missing: list[Path] = []
        while not path.exists():
            if path.parent == self.root or not path.is_relative_to(self.root):
                raise DriveMissing(errno.ENOENT, f"{path} is gone: drive {self.store_id} pulled?")
            missing.append(path)
            path = path.parent
        for d in reversed(missing):
            try:
                d.mkdir()
            except FileExistsError:
                pass
            self.fsync_dir(d.parent)
        self._dirs.update(missing)
        self._dirs.add(path)

    def forget_dirs(self) -> None:
        """Drop the cache of existing directories (the drive was re-inserted or replaced)."""
        self._dirs.clear()

    @staticmethod
    def fsync_dir(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- capacity ----------------------------------------------------------------------------

    def space(self, fresh: bool = False) -> tuple[int, int]:
        """(available, total) bytes of the filesystem holding the drive. Cached for
        SPACE_TTL seconds: placement asks on every PUT, and a statvfs costs more than a small
        PUT's hashing. A write that outruns the cache still fails cleanly with ENOSPC (and
        drops the cache). Repair asks ``fresh``: it must never overshoot its reserve."""
        now = time.monotonic()
        cached = self._space_cache
        if not fresh and cached is not None and now - cached[0] < SPACE_TTL:
            return cached[1]
        st = os.statvfs(self.root)
        value = (st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize)
        self._space_cache = (now, value)
        return value

    def forget_space(self) -> None:
        """Drop the cached free space (a write just found the drive full)."""
        self._space_cache = None

    # -- blobs -------------------------------------------------------------------------------

    def writer(self, block_size: int) -> LocalBlobWriter:
        return LocalBlobWriter(self, block_size)

    def read_blocks(self, blob: BlobLayout, start: int, end: int) -> Iterator[bytes]:
        """Yield the bytes [start, end) of a blob, verifying every block they touch before a
        single byte of it is handed out. Raises CorruptBlock on a mismatch."""
        if start >= end:
            return
        blob_id, crcs, block_size, size = blob.blob_id, blob.crcs, blob.block_size, blob.size
        with open(self.blob_path(blob_id), "rb", buffering=0) as f:
            first = start // block_size
            last = (end - 1) // block_size
            f.seek(first * block_size)
            for block in range(first, last + 1):
                expected_len = min(block_size, size - block * block_size)
                data = f.read(expected_len)
                verify_block(data, expected_len, crcs, block, blob_id)
                lo = start - block * block_size if block == first else 0
                hi = end - block * block_size if block == last else len(data)
                yield data if (lo == 0 and hi == len(data)) else data[lo:hi]

    def open_blob(self, blob: BlobLayout, copy: str | None = None) -> LocalBlobReader:
        if copy is None:
            return LocalBlobReader(self.blob_path(blob.blob_id), blob)
        if not copy.startswith(blob.blob_id + ".") or "/" in copy:
            raise FileNotFoundError(2, f"no quarantined copy {copy!r} of {blob.blob_id}")
        return LocalBlobReader(self.root / "quarantine" / copy, blob)

    def verify(self, blob: BlobLayout) -> Iterator[int]:
        """Read and verify a whole copy block by block, yielding the bytes of each verified
        block (so a caller can pace itself). Raises CorruptBlock (including for a copy of the
        wrong length) or OSError (FileNotFoundError for a missing copy)."""
        blob_id, crcs, block_size, size = blob.blob_id, blob.crcs, blob.block_size, blob.size
        with open(self.blob_path(blob_id), "rb", buffering=0) as f:
            actual = os.fstat(f.fileno()).st_size
            if actual != size:
                raise CorruptBlock(blob_id, -1, f"length {actual}, expected {size}")
            for block in range(-(-size // block_size)):
                expected_len = min(block_size, size - block * block_size)
                verify_block(f.read(expected_len), expected_len, crcs, block, blob_id)
                yield expected_len

    def stat(self, blob_id: str) -> BlobInfo | None:
        try:
            st = os.stat(self.blob_path(blob_id))
        except FileNotFoundError:
            return None
        return BlobInfo(blob_id, st.st_size, st.st_mtime)

    def delete(self, blob_id: str) -> None:
        try:
            os.unlink(self.blob_path(blob_id))
        except FileNotFoundError:
            pass

    # -- listing -----------------------------------------------------------------------------

    def hours(self) -> list[str]:
        """Finishing hours present on this drive, oldest first (orphan sweep)."""
        return sorted(p.name for p in (self.root / "blobs").iterdir() if p.is_dir())

    def list_blobs(self, hour: str, cursor: str | None = None, limit: int = 1000) -> BlobPage:
        """A page of one hour's blobs: whole sub-directories (``<xx>``, in name order) until
        ``limit`` is reached; the cursor is the last sub-directory listed."""
        base = self.root / "blobs" / hour
        try:
            subs = sorted(e.name for e in os.scandir(base) if e.is_dir())
        except FileNotFoundError:
            return BlobPage()
        out: list[BlobInfo] = []
        for sub in (s for s in subs if cursor is None or s > cursor):
            for entry in os.scandir(base / sub):
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue  # deleted while we looked
                out.append(BlobInfo(entry.name, st.st_size, st.st_mtime))
            if len(out) >= limit:
                remaining = [s for s in subs if s > sub]
                return BlobPage(out, sub if remaining else None)
        return BlobPage(out, None)

    def leaf_blobs(self, hour: str, leaf: str) -> dict[str, int]:
        """One sub-directory: a leaf is exactly one directory of this layout."""
        if len(hour) != 8 or len(leaf) != 2 or not all(c in BLOB_ID_CHARS for c in hour + leaf):
            raise ValueError(f"not a blob hour and leaf: {hour!r} {leaf!r}")
        out: dict[str, int] = {}
        try:
            entries = list(os.scandir(self.root / "blobs" / hour / leaf))
        except FileNotFoundError:
            return out
        for entry in entries:
            try:
                if is_blob_id(entry.name):
                    out[entry.name] = entry.stat().st_size
            except FileNotFoundError:
                continue  # deleted while we looked
        return out

    # -- quarantine --------------------------------------------------------------------------

    def quarantine(self, blob_id: str) -> str | None:
        """Move a bad copy aside (never delete it: a block of it may still be the only good
        one, and an operator may want to look). None if there was no copy."""
        dest_dir = self.root / "quarantine"
        name = f"{blob_id}.{time.time_ns()}"
        self.ensure_dir(dest_dir)
        try:
            os.rename(self.blob_path(blob_id), dest_dir / name)
        except FileNotFoundError:
            return None
        self.fsync_dir(dest_dir)
        return name

    def quarantined(self, blob_id: str | None = None) -> list[str]:
        """Quarantined copies (of one blob, or all of them)."""
        try:
            entries = list(os.scandir(self.root / "quarantine"))
        except FileNotFoundError:
            return []
        return sorted(
            e.name for e in entries if blob_id is None or e.name.startswith(blob_id + ".")
        )

    # -- leftovers of interrupted writes ------------------------------------------------------

    def _stale_tmp(self, older_than: float) -> Iterator[Path]:
        cutoff = time.time() - older_than
        for entry in os.scandir(self.root / "tmp"):
            if entry.stat().st_mtime < cutoff:
                yield Path(entry.path)

    def stale_temporary(self, older_than: float) -> int:
        return sum(1 for _ in self._stale_tmp(older_than))

    def remove_stale_temporary(self, older_than: float) -> int:
        removed = 0
        for path in self._stale_tmp(older_than):
            path.unlink(missing_ok=True)
            removed += 1
        return removed


def local_drives(
    node: str,
    data_dirs: list[str],
    reserve_percent: float = 0.0,
    repair_reserve_percent: float = 0.0,
) -> list[LocalStore]:
    """The node's drives: ``DIR/drive`` for each ``--data DIR``, named ``d0``, ``d1``, …
    in the order given, with ids ``<node>/d0``, … (docs/integrity.md)."""
    return [
        LocalStore(
            qualify_store_id(node, f"d{i}"),
            Path(d) / "drive",
            reserve_percent,
            repair_reserve_percent,
        )
        for i, d in enumerate(data_dirs)
    ]


def drive_present(data_dir: str) -> bool:
    """Whether ``--data DIR`` holds a drive's layout (the ops status page's filesystem-only
    check: no marker read, no index)."""
    return (Path(data_dir) / "drive" / "blobs").is_dir()


def drive_identities(data_dirs: list[str]) -> list[str | None]:
    """The uuid in each drive's marker (None where there is none or it cannot be read)."""
    out: list[str | None] = []
    for store in local_drives("-", data_dirs):
        try:
            out.append(store.identity())
        except OSError:
            out.append(None)
    return out


__all__ = [
    "LocalStore",
    "LocalBlobWriter",
    "local_drives",
    "drive_identities",
    "drive_present",
    "StoreFull",
    "DriveMissing",
    "CorruptBlock",
    "new_blob_id",
]
