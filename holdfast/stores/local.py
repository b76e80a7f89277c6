"""A blob store on a local directory (one drive).

Layout under the drive's root::

    tmp/<random>                      bytes being received; never referenced by the index
    blobs/<hour>/<xx>/<blob id>       finished blobs, grouped by the hour they were finished

Blob ids are generated here and never derived from object keys, so no key can name a path.
Grouping by finishing hour lets the orphan sweeper look only at hours it has not yet swept,
instead of scanning the whole drive at start-up.

All methods block; callers run them in threads.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

from holdfast.stores.blocks import CorruptBlock, verify_block


class StoreFull(Exception):
    """The drive cannot take the bytes (ENOSPC or the configured reserve)."""


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
            if e.errno in (28, 122):  # ENOSPC, EDQUOT
                raise StoreFull(str(e)) from e
            raise
        self.size += len(data)

    def finish(self, blob_id: str) -> None:
        """fsync the data, rename into place, fsync the directory: only after this may the
        index refer to the blob."""
        try:
            os.fsync(self._fd)
        except OSError as e:
            if e.errno in (28, 122):
                raise StoreFull(str(e)) from e
            raise
        os.close(self._fd)
        self._closed = True
        final = self.store.blob_path(blob_id)
        self.store.ensure_dir(final.parent)
        os.rename(self.tmp_path, final)
        self.store.fsync_dir(final.parent)

    def abort(self) -> None:
        if not self._closed:
            os.close(self._fd)
            self._closed = True
        try:
            os.unlink(self.tmp_path)
        except FileNotFoundError:
            pass


class LocalStore:
    kind = "local"

    def __init__(self, store_id: str, root: Path, reserve_bytes: int = 0) -> None:
        self.store_id = store_id
        self.root = root
        self.reserve_bytes = reserve_bytes
        self._dirs: set[Path] = set()
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        (root / "blobs").mkdir(parents=True, exist_ok=True)

    def blob_path(self, blob_id: str) -> Path:
        if len(blob_id) != 32 or not all(c in "0123456789abcdef" for c in blob_id):
            raise ValueError("not a blob id")
        return self.root / "blobs" / _hour_of(blob_id) / blob_id[30:] / blob_id

    def ensure_dir(self, path: Path) -> None:
        if path in self._dirs:
            return
        created = not path.exists()
        path.mkdir(parents=True, exist_ok=True)
        if created:  # make the new directory entries themselves durable
            self.fsync_dir(path.parent)
            self.fsync_dir(path.parent.parent)
        self._dirs.add(path)

    @staticmethod
    def fsync_dir(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def free_bytes(self) -> int:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize - self.reserve_bytes

    def total_bytes(self) -> int:
        st = os.statvfs(self.root)
        return st.f_blocks * st.f_frsize

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

    def delete(self, blob_id: str) -> None:
        try:
            os.unlink(self.blob_path(blob_id))
        except FileNotFoundError:
            pass

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


__all__ = ["LocalStore", "BlobWriter", "StoreFull", "CorruptBlock", "new_blob_id"]
