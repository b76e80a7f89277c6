"""Per-block CRC32C checksums of stored blobs.

A drive can return wrong bytes without an error (bit rot, misdirected writes), so each block
of about 1 MiB carries its own checksum, recorded when the blob is received and verified on
every read before the block leaves the process.
"""

from __future__ import annotations

import struct

import crc32c


class CorruptBlock(Exception):
    def __init__(self, blob_id: str, block: int, reason: str) -> None:
        super().__init__(f"blob {blob_id} block {block}: {reason}")
        self.blob_id = blob_id
        self.block = block


class BlockChecksummer:
    """Splits a byte stream into fixed blocks however it arrives, one CRC32C per block."""

    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self._crcs = bytearray()
        self._crc = 0
        self._filled = 0

    def update(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            room = self.block_size - self._filled
            piece = view[:room]
            self._crc = crc32c.crc32c(piece, self._crc)
            self._filled += len(piece)
            view = view[len(piece) :]
            if self._filled == self.block_size:
                self._crcs += struct.pack(">I", self._crc)
                self._crc = 0
                self._filled = 0

    def finish(self) -> bytes:
        if self._filled:
            self._crcs += struct.pack(">I", self._crc)
            self._crc = 0
            self._filled = 0
        return bytes(self._crcs)


def block_crc(crcs: bytes, block: int) -> int:
    return struct.unpack_from(">I", crcs, block * 4)[0]


def verify_block(data: bytes, expected_len: int, crcs: bytes, block: int, blob_id: str) -> None:
    if len(data) != expected_len:
        raise CorruptBlock(blob_id, block, f"short read {len(data)} of {expected_len}")
    if (block + 1) * 4 > len(crcs):
        raise CorruptBlock(blob_id, block, "no checksum recorded")
    if crc32c.crc32c(data) != block_crc(crcs, block):
        raise CorruptBlock(blob_id, block, "checksum mismatch")


def first_mismatch(received: bytes, expected: bytes) -> int:
    """The index of the first block whose 4-byte CRC32C differs between two packed CRC
    lists (either may be shorter), or -1 when they agree."""
    for i in range(0, max(len(received), len(expected)), 4):
        if received[i : i + 4] != expected[i : i + 4]:
            return i // 4
    return -1
