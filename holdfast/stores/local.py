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

Blob ids are generated here and never derived from object keys, so no key can name a path.
Grouping by finishing hour lets the orphan sweeper look only at hours it has not yet swept,
instead of scanning the whole drive at start-up.

All methods block; callers run them in threads.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

from holdfast.stores.blocks import CorruptBlock, verify_block

MARKER = ".holdfast-drive"
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class StoreFull(Exception):
    """The drive cannot take the bytes (ENOSPC or the configured reserve)."""


class DriveMissing(OSError):
    """The drive's identity marker is absent or names another drive: it was pulled, or a
    different (or blank) disk is mounted where it used to be."""


def _full(e: OSError) -> bool:
    return e.errno in FULL_ERRNOS


def _hour_of(blob_id: str) -> str:
    return blob_id[:8]


def new_blob_id(now: float | None = None) -> str:
    hour = int((time.time() if now is None else now) // 3600)
    return f"{hour:08x}{secrets.token_hex(12)}"


class BlobWriter:
    """Receives a blob's bytes in order into a temporary file."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self.tmp_path = store.root / "tmp" / secrets.token_hex(16)
        self._fd = os.open(self.tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.size = 0
        self._closed = False

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
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

    def finish(self, blob_id: str) -> None:
        """fsync the data, rename into place, fsync the directory: only after this may the
        index refer to the blob."""
        self._sync_and_close()
        final = self.store.blob_path(blob_id)
        self.store.ensure_dir(final.parent)
        os.rename(self.tmp_path, final)
        self.store.fsync_dir(final.parent)

    def finish_replacing(self, blob_id: str) -> Path | None:
        """Like :meth:`finish`, for a repair: a copy already at the blob's path (a bad one)
        is moved to quarantine first, never deleted. Returns where it went."""
        self._sync_and_close()
        final = self.store.blob_path(blob_id)
        self.store.ensure_dir(final.parent)
        moved = self.store.quarantine(blob_id)
        os.rename(self.tmp_path, final)
        self.store.fsync_dir(final.parent)
        return moved

    def abort(self) -> None:
        if not self._closed:
            os.close(self._fd)
            self._closed = True
        try:
            os.unlink(self.tmp_path)
        except FileNotFoundError:
            pass

    def abort_quietly(self) -> None:
        """Abort on a drive that may be failing or gone: errors are the caller's news
        already, and the stale temporary file (if any) is swept later."""
        try:
            self.abort()
        except OSError:
            self._closed = True


SPACE_TTL = 0.5


class LocalStore:
    """One drive. Foreground writes keep ``reserve_percent`` of it free, repair the (normally
    larger) ``repair_reserve_percent``, so background work can never fill a drive (EBS,
    2011), and the index, which shares the first drive, always has room to record deletes.
    Construction touches nothing on disk."""

    kind = "local"

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

    # -- identity ----------------------------------------------------------------------------

    def identity(self) -> str | None:
        """The uuid in the drive's marker, or None when there is no marker."""
        try:
            return json.loads((self.root / MARKER).read_text())["uuid"]
        except FileNotFoundError:
            return None
        except (ValueError, KeyError) as e:
            raise DriveMissing(errno.EIO, f"{self.root}: unreadable drive marker: {e}") from e

    def initialize(self, drive_uuid: str) -> None:
        """Adopt this directory as a drive: create its layout and write its marker (once)."""
        for sub in ("tmp", "blobs", "quarantine"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        marker = self.root / MARKER
        if not marker.exists():
            tmp = self.root / "tmp" / f"marker-{secrets.token_hex(4)}"
            payload = {"uuid": drive_uuid, "store_id": self.store_id, "created": time.time()}
            tmp.write_text(json.dumps(payload))
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.rename(tmp, marker)
        self.fsync_dir(self.root)
        self.fsync_dir(self.root.parent)

    def probe(self, drive_uuid: str) -> None:
        """Prove the drive is the expected one and takes a durable write. Raises
        DriveMissing, or OSError (EROFS for a read-only drive). A full drive passes: being
        full is a capacity question, not a health one."""
        found = self.identity()
        if found != drive_uuid:
            what = "no marker" if found is None else f"marker of drive {found}"
            raise DriveMissing(errno.ENODEV, f"{self.root}: {what}, expected drive {drive_uuid}")
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

    def blob_path(self, blob_id: str) -> Path:
        if len(blob_id) != 32 or not all(c in "0123456789abcdef" for c in blob_id):
            raise ValueError("not a blob id")
        return self.root / "blobs" / _hour_of(blob_id) / blob_id[30:] / blob_id

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

    def free_bytes(self) -> int:
        """Bytes a foreground write may still use (the write reserve held back)."""
        avail, total = self.space()
        return avail - int(total * self.reserve_percent / 100)

    def repair_room(self) -> int:
        """Bytes repair may still use: it stops short of the larger repair reserve."""
        avail, total = self.space(fresh=True)
        return avail - int(total * self.repair_reserve_percent / 100)

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def read_blocks(
        self, blob_id: str, crcs: bytes, block_size: int, size: int, start: int, end: int
    ) -> Iterator[bytes]:
        """Yield the bytes [start, end) of a blob, verifying every block they touch before a
        single byte of it is handed out. Raises CorruptBlock on a mismatch."""
        if start >= end:
            return
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

    def verify(self, blob_id: str, crcs: bytes, block_size: int, size: int) -> Iterator[int]:
        """Read and verify a whole copy block by block, yielding the bytes of each verified
        block (so a caller can pace itself). Raises CorruptBlock (including for a copy of the
        wrong length) or OSError (FileNotFoundError for a missing copy)."""
        with open(self.blob_path(blob_id), "rb", buffering=0) as f:
            actual = os.fstat(f.fileno()).st_size
            if actual != size:
                raise CorruptBlock(blob_id, -1, f"length {actual}, expected {size}")
            for block in range(-(-size // block_size)):
                expected_len = min(block_size, size - block * block_size)
                verify_block(f.read(expected_len), expected_len, crcs, block, blob_id)
                yield expected_len

    def delete(self, blob_id: str) -> None:
        try:
            os.unlink(self.blob_path(blob_id))
        except FileNotFoundError:
            pass

    # -- quarantine --------------------------------------------------------------------------

    def quarantine(self, blob_id: str) -> Path | None:
        """Move a bad copy aside (never delete it: a block of it may still be the only good
        one, and an operator may want to look). None if there was no copy."""
        dest_dir = self.root / "quarantine"
        dest = dest_dir / f"{blob_id}.{time.time_ns()}"
        self.ensure_dir(dest_dir)
        try:
            os.rename(self.blob_path(blob_id), dest)
        except FileNotFoundError:
            return None
        self.fsync_dir(dest_dir)
        return dest

    def quarantined(self, blob_id: str | None = None) -> list[Path]:
        """Quarantined copies (of one blob, or all of them)."""
        try:
            entries = list(os.scandir(self.root / "quarantine"))
        except FileNotFoundError:
            return []
        return sorted(
            Path(e.path) for e in entries if blob_id is None or e.name.startswith(blob_id + ".")
        )

    def hours(self) -> list[str]:
        """Finishing hours present on this drive, oldest first (orphan sweep)."""
        return sorted(p.name for p in (self.root / "blobs").iterdir() if p.is_dir())

    def blobs_in_hour(self, hour: str) -> Iterator[tuple[str, float]]:
        base = self.root / "blobs" / hour
        for sub in base.iterdir():
            for entry in os.scandir(sub):
                yield entry.name, entry.stat().st_mtime

    def stale_tmp(self, older_than: float) -> Iterator[Path]:
        cutoff = time.time() - older_than
        for entry in os.scandir(self.root / "tmp"):
            if entry.stat().st_mtime < cutoff:
                yield Path(entry.path)


__all__ = [
    "LocalStore",
    "BlobWriter",
    "StoreFull",
    "DriveMissing",
    "CorruptBlock",
    "new_blob_id",
]
